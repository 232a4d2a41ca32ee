"""The conformance checks: every registered model against the shared anatomy and the
PyTorch ecosystem's tools, at the smallest input it allows, random weights, eval mode.

Each check returns the largest absolute difference from the eager model where it compares
outputs (``None`` where it checks a shape or a count), or raises ``AssertionError`` saying
what differs. ``tests/benchmarks/test_conformance.py`` runs them under pytest; ``python -m
benchmarks.conformance -o docs/conformance.md`` (``make conformance``) runs them all for
every model and writes the table.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable

import torch
from torch import nn

import common
import nets
from nets.registry import natural_key

# How far a traced or exported float32 model may be from eager, relative to the largest
# logit: they reorder float32 sums at most (docs/conformance.md has the measured ones).
TOLERANCE = 1e-4


def build(name: str, *, seed: int = 0) -> nn.Module:
    """``name`` with random weights and non-trivial BatchNorm statistics (so that a tool
    that mixed up train and eval BatchNorm would change the logits), in eval mode."""
    torch.manual_seed(seed)
    model = nets.create_model(name)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
    return model.eval()


def example(model: nn.Module, batch: int = 1, *, seed: int = 1) -> torch.Tensor:
    size = nets.get_spec(model.arch).min_input_size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.in_chans, size, size, generator=g)


def _diff(got: torch.Tensor, want: torch.Tensor, what: str) -> float:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    diff = (got.float() - want.float()).abs().max().item()
    bound = TOLERANCE * want.abs().max().item() + 1e-5
    assert diff <= bound, f"{what}: max difference {diff:.3g} > {bound:.3g}"
    return diff


# -- the anatomy -----------------------------------------------------------------------------
def dense(model: nn.Module) -> bool:
    """A dense-prediction network (U-Net): a map of class scores, not a vector."""
    return nets.get_spec(model.arch).family == "unet"


def check_forward(model: nn.Module) -> None:
    x = example(model)
    with torch.no_grad():
        out = model(x)
    if dense(model):  # (N, classes, H, W): the input's size
        want = (1, model.head.fc.out_channels, *x.shape[-2:])
    else:
        want = (1, model.head.fc.out_features)
    assert out.shape == want, f"output shape {tuple(out.shape)}, expected {want}"
    assert torch.isfinite(out).all(), "non-finite logits"


def check_backward(model: nn.Module) -> None:
    """Training mode, batch 2 (BatchNorm needs two values per channel on a 1x1 map)."""
    model.train()
    try:
        out = model(example(model, 2))
        logits = out.logits if isinstance(out, nets.AuxOutputs) else out
        logits.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"no gradient for {len(missing)} parameters, e.g. {missing[:3]}"
        bad = [
            n
            for n, p in model.named_parameters()
            if p.grad is not None and not p.grad.isfinite().all()
        ]
        assert not bad, f"non-finite gradients in {bad[:3]}"
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def check_features_head(model: nn.Module) -> float:
    x = example(model)
    with torch.no_grad():
        return _diff(model.forward_head(model.forward_features(x)), model(x), "features+head")


def check_pre_logits(model: nn.Module) -> None:
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(example(model)), pre_logits=True)
    want = model.head.num_features
    # A dense network's pre-logits are the decoder's last map, (N, C, H, W).
    got = pooled.shape[:2] if dense(model) and pooled.dim() == 4 else pooled.shape
    assert got == (1, want), f"pre_logits shape {tuple(pooled.shape)}, expected (1, {want})"


def check_reset_classifier(model: nn.Module) -> float:
    """``reset_classifier(0)`` on a copy: its output is what ``pre_logits`` gave."""
    headless = copy.deepcopy(model)
    headless.reset_classifier(0)
    x = example(model)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        return _diff(headless(x), pooled, "reset_classifier(0)")


def check_no_top(model: nn.Module) -> None:
    """``include_top=False, pooling=None``: the last feature map. Built on the meta device
    (shapes only, nothing allocated)."""
    with torch.device("meta"):
        bare = nets.create_model(model.arch, include_top=False, pooling=None).eval()
        x = example(model).to("meta")
        got = bare(x).shape
        # A dense network's top is its 1x1 classifier: without it, the decoder's last map.
        maps = bare.forward_head(bare.forward_features(x), pre_logits=True)
        want = maps.shape if dense(model) else bare.forward_features(x).shape
    assert got == want and len(got) == 4, f"include_top=False, pooling=None gave {tuple(got)}"
    assert got[1] == model.num_features, f"{got[1]} channels, num_features {model.num_features}"


def check_feature_info(model: nn.Module) -> None:
    """Every stage's declared channels and reduction against the maps it really returns.

    Channels exactly. The reduction is a stage's total stride: an input larger by R (a
    multiple of every reduction) gives a map larger by exactly R / reduction on each
    side, whatever valid convolutions or ceil-mode pools trimmed or added at the border.
    """
    stages = list(range(len(model.stages)))
    extractor = nets.feature_extractor(model, stages)
    x = example(model)
    grow = math.lcm(*(info.reduction for info in model.feature_info))
    bigger = torch.randn(1, model.in_chans, x.shape[-2] + grow, x.shape[-1] + grow)
    with torch.no_grad():
        small, large = extractor(x), extractor(bigger)
    for info, a, b in zip(model.feature_info, small, large, strict=True):
        assert a.shape[1] == info.channels, (
            f"stage {info.stage}: {a.shape[1]} channels, feature_info says {info.channels}"
        )
        grew = (b.shape[-2] - a.shape[-2], b.shape[-1] - a.shape[-1])
        want = grow // info.reduction
        assert grew == (want, want), (
            f"stage {info.stage}: {grow} more input pixels gave {grew} more map pixels, "
            f"not {want} (reduction {info.reduction})"
        )


def check_fx(model: nn.Module) -> float:
    x = example(model)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        return _diff(traced(x), model(x), "fx symbolic_trace")


def check_fx_features(model: nn.Module) -> float:
    """torchvision's create_feature_extractor on every stage's output node."""
    from torchvision.models.feature_extraction import create_feature_extractor

    stages = list(range(len(model.stages)))
    extractor = create_feature_extractor(model, {f"stages.{i}": str(i) for i in stages})
    x = example(model)
    with torch.no_grad():
        got = extractor(x)
        want = nets.feature_extractor(model, stages)(x)
    return max(
        _diff(got[str(i)], w, f"create_feature_extractor stage {i}") for i, w in enumerate(want)
    )


# -- compilers and exporters ---------------------------------------------------------------
def check_dynamo(model: nn.Module) -> None:
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(example(model))
    assert explained.graph_break_count == 0, (
        f"{explained.graph_break_count} graph breaks: {explained.break_reasons[:2]}"
    )
    assert explained.graph_count == 1, f"{explained.graph_count} graphs"


def _exported(model: nn.Module) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        return torch.export.export(model, (example(model, 2),), dynamic_shapes=({0: batch},))


def check_export(model: nn.Module, program: torch.export.ExportedProgram | None = None) -> float:
    """torch.export with a dynamic batch, run at batch 1 and 3 (2 was the example)."""
    program = program or _exported(model)
    run = program.module()
    with torch.no_grad():
        return max(
            _diff(run(x), model(x), f"torch.export batch {x.shape[0]}")
            for x in (example(model, 1), example(model, 3, seed=2))
        )


def check_onnx(model: nn.Module, program: torch.export.ExportedProgram | None = None) -> float:
    """The default (dynamo) ONNX exporter with a dynamic batch, run by onnxruntime."""
    import onnxruntime as ort

    program = program or _exported(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(program, (), dynamo=True, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx_program.save(path, external_data=False)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    diffs = []
    for x in (example(model, 1), example(model, 3, seed=2)):
        got = torch.from_numpy(session.run(None, {name: x.numpy()})[0])
        with torch.no_grad():
            diffs.append(_diff(got, model(x), f"onnxruntime batch {x.shape[0]}"))
    return max(diffs)


def check_torchscript(model: nn.Module) -> float:
    """torch.jit.script of the model, run at batch 1 and 3."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated, and still shipped
        scripted = torch.jit.script(model)
    with torch.no_grad():
        return max(
            _diff(scripted(x), model(x), f"torch.jit.script batch {x.shape[0]}")
            for x in (example(model, 1), example(model, 3, seed=2))
        )


def check_timm_contract(model: nn.Module) -> None:
    """timm's model contract: num_classes / num_features / head_hidden_size against the
    outputs, timm's FeatureInfo over feature_info, forward_intermediates against the stages,
    the layer-decay groups covering every parameter, pretrained_cfg's (C, H, W) input."""
    import timm

    x = example(model, 2)
    with torch.no_grad():
        logits, features = model(x), model.forward_features(x)
        maps = model.forward_intermediates(x, intermediates_only=True)
    assert model.num_classes == logits.shape[1], f"num_classes {model.num_classes}"
    if isinstance(features, torch.Tensor):  # U-Net returns the encoder's maps
        assert model.num_features == features.shape[1], f"num_features {model.num_features}"
        with torch.no_grad():
            hidden = model.forward_head(features, pre_logits=True).shape[1]
        assert model.head_hidden_size == hidden, f"head_hidden_size {model.head_hidden_size}"
    info = timm.models._features.FeatureInfo(model.feature_info, list(range(len(maps))))
    assert info.channels() == [m.shape[1] for m in maps], "feature_info channels"
    names = {n for n, _ in model.named_parameters()}
    groups = timm.models.group_parameters(model, model.group_matcher(coarse=False))
    assert {n for g in groups.values() for n in g} == names, "group_matcher misses parameters"
    c, h, w = model.pretrained_cfg["input_size"]
    assert c == model.in_chans and h == w == model.pretrained_cfg.preprocessing.input_size


CHEAP: dict[str, Callable[[nn.Module], float | None]] = {
    "forward": check_forward,
    "backward": check_backward,
    "features+head": check_features_head,
    "pre_logits": check_pre_logits,
    "reset_classifier(0)": check_reset_classifier,
    "no top": check_no_top,
    "feature_info": check_feature_info,
    "fx": check_fx,
    "fx features": check_fx_features,
    "timm contract": check_timm_contract,
}
TOOLS: dict[str, Callable[[nn.Module], float | None]] = {
    "dynamo": check_dynamo,
    "torch.export": check_export,
    "onnxruntime": check_onnx,
    "torchscript": check_torchscript,
}
# What a table written before a check existed holds in that check's column.
NOT_RUN = "not run"


# -- the table -----------------------------------------------------------------------------
def run_all(name: str, only: list[str] | None = None) -> tuple[dict[str, str], float]:
    """Every check on ``name`` (or the checks ``only``): cell text per check (``ok``, the max
    difference, or ``FAIL: why``), and the seconds it took."""
    start = time.perf_counter()
    model = build(name)
    cells = {}
    program = None
    for check, fn in {**CHEAP, **TOOLS}.items():
        if only is not None and check not in only:
            continue
        try:
            if check in ("torch.export", "onnxruntime"):
                program = program or _exported(model)
                result = fn(model, program)
            else:
                result = fn(model)
            cells[check] = "ok" if result is None else f"{result:.1e}"
        except Exception as exc:  # noqa: BLE001 - a failure is a row in the table
            cells[check] = "FAIL: " + common.one_line(f"{type(exc).__name__}: {exc}", 120)
    return cells, time.perf_counter() - start


def table(rows: dict[str, tuple[dict[str, str], float]], header: str) -> str:
    checks = [*CHEAP, *TOOLS]
    lines = [
        header,
        "",
        "| model | " + " | ".join(checks) + " | s |",
        "|---" * (len(checks) + 2) + "|",
    ]
    for name, (cells, seconds) in sorted(rows.items(), key=lambda r: natural_key(r[0])):
        lines.append(f"| {name} | " + " | ".join(cells[c] for c in checks) + f" | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def read_table(path: str) -> tuple[str, dict[str, tuple[dict[str, str], float]]]:
    """A table ``table`` wrote, back: the prose above it (kept as it is, hand-written notes
    included) and its rows. A table written before a check existed reads back with that
    check ``NOT_RUN``, so that ``--update`` can fill the new column model by model."""
    checks = [*CHEAP, *TOOLS]
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as exc:
        raise SystemExit(f"--update: cannot read {path} ({exc.strerror})") from None
    header, sep, body = text.partition("\n| model | ")
    names = [c.strip() for c in body.partition("\n")[0].split("|")]
    columns = names[:-2]  # the last two: the seconds column "s", and "" after its "|"
    if not sep or names[-2:] != ["s", ""] or not columns or not set(columns) <= set(checks):
        raise SystemExit(f"--update: {path} has no table of the checks {', '.join(checks)}")
    rows = {}
    for line in body.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(columns) + 2:
            break
        found = dict(zip(columns, cells[1:-1], strict=True))
        rows[cells[0]] = ({c: found.get(c, NOT_RUN) for c in checks}, float(cells[-1]))
    return header.rstrip("\n") + "\n", rows


HEADER = """# Conformance: every registered model against the anatomy and the ecosystem's tools

Written by `make conformance` (`python -m benchmarks.conformance -o docs/conformance.md`) with
torch {torch}, torchvision {tv}, onnxruntime {ort}, on the CPU, {threads} thread(s). Each
model has random weights and random BatchNorm statistics, is in eval mode, and gets the
smallest input it allows (`nets.get_spec(name).min_input_size`, batch 1; batch 2 for the
backward pass in training mode and as the example of the dynamic-batch exports, which are
then run at batches 1 and 3). A number is the largest absolute difference from the eager
model's output; `ok` a check of shapes or counts. The checks are in
`benchmarks/conformance.py`; `tests/benchmarks/test_conformance.py` runs the anatomy and FX
checks on every model and the tools on four models in `make test`, and the tools on every
model under `pytest -m conformance`.

- forward: logits shape, all finite; backward: every trainable parameter gets a gradient.
- features+head: `forward_head(forward_features(x))` against `forward(x)`; pre_logits:
  `num_features` columns; reset_classifier(0): the pooled features; no top:
  `include_top=False, pooling=None` returns the last feature map.
- feature_info: each stage's declared channels and reduction against the map
  `nets.feature_extractor` returns.
- fx: `torch.fx.symbolic_trace`; fx features: torchvision's `create_feature_extractor` on
  every stage.
- timm contract: `num_classes`, `num_features`, `head_hidden_size` against the outputs, timm's
  `FeatureInfo` over `feature_info`, `forward_intermediates` against the stages, the
  `group_matcher` groups covering every parameter, `pretrained_cfg["input_size"]` as (C, H, W).
- dynamo: `torch._dynamo.explain`, one graph and no graph break; torch.export: dynamic batch;
  onnxruntime: `torch.onnx.export` (the default exporter) of that program, run by
  onnxruntime; torchscript: `torch.jit.script`, run at batches 1 and 3.
"""


def main(argv: list[str] | None = None) -> int:
    parser = common.ArgumentParser(prog="python -m benchmarks.conformance")
    parser.add_argument("-o", "--output", required=True, help="the markdown table to write")
    parser.add_argument("--models", nargs="*", default=None, help="default: every model")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the output's prose and its other models' rows; run only --models",
    )
    parser.add_argument(
        "--checks",
        nargs="+",
        choices=[*CHEAP, *TOOLS],
        help="with --update: run only these checks, keeping the table's other cells "
        "(a new column filled in without the hour of a whole run)",
    )
    args = parser.parse_args(argv)
    if args.update and not args.models and not args.checks:
        parser.error("--update needs --models or --checks: what to run again")
    if args.checks and not args.update:
        parser.error("--checks keeps the table's other cells: it needs --update")
    import onnxruntime
    import torchvision

    header = HEADER.format(
        torch=torch.__version__, tv=torchvision.__version__, ort=onnxruntime.__version__,
        threads=torch.get_num_threads(),
    )  # fmt: skip
    rows = {}
    if args.update:
        header, rows = read_table(args.output)
    for name in args.models or nets.list_models():
        try:
            if args.checks:
                kept, seconds = rows.get(name, ({}, 0.0))
                cells, more = run_all(name, args.checks)
                rows[name] = ({**kept, **cells}, seconds + more)
            else:
                rows[name] = run_all(name)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            continue
        fails = [c for c, v in rows[name][0].items() if v.startswith("FAIL")]
        print(
            f"{name}: {'ok' if not fails else 'FAIL ' + ', '.join(fails)} ({rows[name][1]:.0f} s)",
            flush=True,
        )
        # Rewritten after each model: a run cut short leaves the table of what finished.
        common.atomic_write_text(args.output, table(rows, header))
    failed = [
        n for n, (cells, _) in rows.items() if any(v.startswith("FAIL") for v in cells.values())
    ]
    print(
        f"{len(rows)} models checked, {len(failed)} with a failure{': ' if failed else ''}"
        + ", ".join(failed)
    )
    wanted = args.models or nets.list_models()
    return 1 if failed or any(n not in rows for n in wanted) else 0


if __name__ == "__main__":
    sys.exit(main())
