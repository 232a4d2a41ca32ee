"""train/'s shape: no two of its modules import each other in a circle (imports inside
functions and under TYPE_CHECKING included), and every --task value has its Task."""

from __future__ import annotations

import ast
from pathlib import Path

from train.config import TASKS as TASK_NAMES
from train.tasks import TASKS

PACKAGE = Path(__file__).resolve().parents[2] / "train"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, whether it is a package's ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["train", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return found


def _import_graph() -> dict[str, set[str]]:
    """Each module's imports of train modules, from every import statement in its file."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, (path, is_pkg) in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".")[: len(name.split(".")) - (not is_pkg)]
                    package = package[: len(package) - node.level + 1]
                    base = ".".join([*package, *([base] if base else [])])
                # "from . import x" imports the module x; "from .m import f", the module m.
                edges |= {known(f"{base}.{a.name}") if f"{base}.{a.name}" in modules
                          else known(base) for a in node.names}  # fmt: skip
        graph[name] = edges - {None, name}
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done, path = set(), []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return path[path.index(name) :] + [name]
        if name in done:
            return None
        path.append(name)
        for other in sorted(graph[name]):
            if cycle := visit(other):
                return cycle
        path.pop()
        done.add(name)
        return None

    return next((c for name in sorted(graph) if (c := visit(name))), None)


def test_no_import_cycle_among_train_modules():
    graph = _import_graph()
    assert {"train.engine", "train.run", "train.tasks.segmentation"} <= set(graph)
    assert "train.run" in graph["train.tasks.classification"]  # the graph sees imports
    cycle = _a_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_every_task_name_has_its_task():
    assert list(TASKS) == list(TASK_NAMES)
    assert all(task.name == name for name, task in TASKS.items())


def test_imports_run_one_way():
    """common <- weights <- nets <- train <- benchmarks, imports inside functions included:
    no module of a package imports a package above it."""
    import ast as _ast

    order = ["common", "weights", "nets", "train", "benchmarks"]
    root = PACKAGE.parent
    upward = []
    for level, package in enumerate(order[:-1]):
        above = set(order[level + 1 :])
        for path in (root / package).rglob("*.py"):
            for node in _ast.walk(_ast.parse(path.read_text())):
                names = []
                if isinstance(node, _ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, _ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                upward += [f"{path.relative_to(root)}:{node.lineno} imports {n}"
                           for n in names if n.split(".")[0] in above]  # fmt: skip
    assert not upward, upward
