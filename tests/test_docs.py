"""The documentation is code's output where code can produce it, and its code runs: the model
table is regenerated from the registry and compared, the figures the registry knows are
checked, and every Python block of README.md and docs/ runs (weights that cannot be had
offline are replaced by random ones with the tag's preprocessing; the block is unchanged)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nets
import nets.factory
import weights
from nets.catalog import catalog, markdown_table

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list:
    return [
        pytest.param(code, id=f"{page.name}-{i}")
        for page in PAGES
        for i, code in enumerate(BLOCK.findall(page.read_text()))
    ]


def test_model_table_is_current():
    """docs/model_table.md is what the registry gives now."""
    page = (ROOT / "docs" / "model_table.md").read_text()
    want = markdown_table(catalog(macs=True)) + "\n"
    regenerate = "python -m nets list --markdown -o docs/model_table.md"
    assert page == want, f"docs/model_table.md is stale: {regenerate}"


def test_figures_the_registry_knows():
    readme = (ROOT / "README.md").read_text()
    names = nets.list_models()
    families = {nets.get_spec(n).family for n in names}
    assert f"{len(names)} models in {len(families)} families" in readme
    tags = len(weights.list_tags())
    for page in PAGES:
        for found in re.findall(r"(\d+) weights tags", page.read_text()):
            assert int(found) == tags, (page.name, found, tags)
    assert f"{tags} weights tags" in readme


def test_links_between_pages_resolve():
    """Every relative link of README.md and docs/ names a file of the checkout."""
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)


def _offline_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights that need a download (or a file the reader would bring) load as the model's
    random initialisation, with the tag's preprocessing recorded as a real load would."""
    real = nets.factory.load_pretrained

    def load(model, arch, spec, **kwargs):  # noqa: ANN001, ANN202
        try:
            return real(model, arch, spec, **kwargs)
        except (weights.DownloadError, weights.CheckpointFormatError):
            name = weights.default_tag(arch) if spec == "imagenet" else str(spec)
            if name in weights.list_tags():
                tag = weights.get_tag(name)
                model.pretrained_cfg = model.pretrained_cfg.replace(
                    tag=tag.name, preprocessing=tag.preprocessing,
                    preprocessing_from=f"the tag {tag.name}")  # fmt: skip
            return None

    monkeypatch.setattr(nets.factory, "load_pretrained", load)


@pytest.mark.slow
@pytest.mark.parametrize("code", _blocks())
def test_python_block_runs(code, tmp_path, monkeypatch):
    """Run in a scratch folder that has the sample photos, as a reader's checkout does."""
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    monkeypatch.chdir(tmp_path)
    _offline_weights(monkeypatch)
    exec(compile(code, "<doc block>", "exec"), {"__name__": "__doc_block__"})  # noqa: S102


def test_results_hold_data_and_readmes_only():
    """A results folder is what ran and what it showed; code lives in the packages."""
    code = [p for p in (ROOT / "benchmarks" / "results").rglob("*") if p.suffix in (".py", ".sh")]
    assert not code, code
    for folder in (ROOT / "benchmarks" / "results").iterdir():
        if folder.is_dir():
            assert (folder / "README.md").is_file(), f"{folder.name} has no README.md"


def test_help_texts_are_whole(capsys):
    """The command lines' --help: whole sentences, and every command named."""
    from benchmarks import cli as bench_cli
    from nets.__main__ import build_parser

    nets_help = " ".join(build_parser().format_help().split())  # argparse wraps the lines
    assert "exits with code 2." in nets_help and "``" not in nets_help
    bench_help = " ".join(bench_cli.parser().format_help().split())
    assert "train-loop --help" in bench_help and "chart --help" in bench_help
    assert "every registered model" in bench_help
    from train.__main__ import build_parser as train_parser

    fit = train_parser()._subparsers._group_actions[0].choices["fit"]
    for action in fit._actions:  # each option states its default once
        assert len(re.findall(r"(?<!%)\(default", action.help or "")) <= 1, action.help


def test_a_bare_benchmark_run_says_it_measures_every_model(tmp_path, monkeypatch, capsys):
    from benchmarks import cli as bench_cli

    monkeypatch.setattr(bench_cli, "iter_measure", lambda *a, **k: iter(()))
    assert bench_cli.main(["--no-charts", "--out", str(tmp_path / "res")]) == 0
    err = capsys.readouterr().err
    assert f"no models named: measuring all {len(nets.list_models())} registered models" in err


def test_weights_convert_points_to_nets(capsys):
    """Converting needs the architecture, so it is nets' command; weights' old name says so
    in one line rather than importing nets from below."""
    from weights.__main__ import main as weights_main

    assert weights_main(["convert", "x.pth", "--arch", "resnet18", "-o", "y.safetensors"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: convert needs the architecture") and "\n" not in err
    assert "python -m nets convert" in err


def _build_site(config: Path, site: Path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d"]
    return subprocess.run(
        [*command, str(site)], capture_output=True, text=True, env=env, timeout=300
    )


def test_the_site_builds_strictly(tmp_path):
    """make docs: every page, link and anchor of docs/ resolves, and the measured results the
    pages link outside docs/ are copied into the site."""
    done = _build_site(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    assert {"index.html", "model_table.html", "training.html"} <= {p.name for p in site.iterdir()}
    assert (site / "_repo/benchmarks/results/cpu-2026-11-22/throughput.png").is_file()


def test_the_site_refuses_a_broken_link(tmp_path):
    import shutil

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "cli.md", "a", encoding="utf-8") as page:
        page.write("\n[a page that is not there](nowhere.md)\n")
    done = _build_site(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "nowhere.md" in done.stderr
