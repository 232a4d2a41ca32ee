"""Conformance over the registry: every model against the shared anatomy and the PyTorch
ecosystem's tools (FX, torchvision's feature extraction, dynamo, torch.export, ONNX with
onnxruntime, TorchScript), at the smallest input it allows. The checks live in
``benchmarks/conformance.py``, which also writes the committed table (``make conformance``).

``make test`` runs the anatomy and FX checks on every registered model (1 to 8 s each on
one core) and the compilers and exporters on four; ``pytest -m conformance`` runs the
compilers and exporters on every model too (they take 10 to 200 s a model).
"""

from __future__ import annotations

import pytest

import nets
from benchmarks import conformance as C

# make test runs the compilers and exporters on four models, each with its own exotic part:
# LeNet-5's trainable subsampling and table conv, ResNet's residual adds, MobileNet v3's
# squeeze-excite and hard-swish, Lite's TF "same" padding. pytest -m conformance (and make
# conformance) runs them on every model.
TOOLS_IN_MAKE_TEST = ("lenet5", "resnet18", "mobilenet_v3_small", "efficientnet_lite0")


def _params(in_make_test) -> list:
    return [
        n if in_make_test(n) else pytest.param(n, marks=pytest.mark.conformance)
        for n in nets.list_models()
    ]


def _failures(model, checks: dict) -> list[str]:
    failed = []
    for what, check in checks.items():
        try:
            check(model)
        except AssertionError as exc:
            failed.append(f"{what}: {exc}")
    return failed


@pytest.mark.parametrize("name", nets.list_models())
def test_anatomy_and_fx(name):
    """forward, backward, forward_features/forward_head, pre_logits, reset_classifier(0),
    include_top=False with pooling=None, feature_info against the real maps, FX symbolic
    trace and create_feature_extractor: all of them, every failure reported together."""
    failed = _failures(C.build(name), C.CHEAP)
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", _params(lambda n: n in TOOLS_IN_MAKE_TEST))
def test_dynamo_export_onnx_and_torchscript(name):
    """No graph break under dynamo; torch.export with a dynamic batch, its ONNX export run
    by onnxruntime, and torch.jit.script give the eager logits at batches 1 and 3."""
    pytest.importorskip("onnxruntime")
    model = C.build(name)
    program = C._exported(model)
    failed = _failures(
        model,
        {
            "dynamo": C.check_dynamo,
            "torch.export": lambda m: C.check_export(m, program),
            "onnxruntime": lambda m: C.check_onnx(m, program),
            "torchscript": C.check_torchscript,
        },
    )
    assert not failed, "\n".join(failed)


def test_checks_catch_what_they_claim(monkeypatch):
    """The checks can fail: a feature_info that lies, a head that drops a parameter from
    the graph, and a traced graph that differs are each reported."""
    model = C.build("resnet18")
    info = model.feature_info[1]
    model.feature_info[1] = type(info)(info.stage, info.channels + 1, info.reduction, info.module)
    with pytest.raises(AssertionError, match="stage 1: 128 channels, feature_info says 129"):
        C.check_feature_info(model)
    model.feature_info[1] = type(info)(info.stage, info.channels, info.reduction * 2, info.module)
    with pytest.raises(AssertionError, match=r"stage 1: .* \(reduction 16\)"):
        C.check_feature_info(model)
    model.feature_info[1] = info
    model.stages[3].requires_grad_(True)
    model.unused = __import__("torch").nn.Linear(2, 2)  # trainable, never called
    with pytest.raises(AssertionError, match="no gradient for 2 parameters"):
        C.check_backward(model)
    del model.unused
    import torch

    real = torch.fx.symbolic_trace
    monkeypatch.setattr(torch.fx, "symbolic_trace", lambda m: lambda x: real(m)(x) + 1)
    with pytest.raises(AssertionError, match="fx symbolic_trace: max difference"):
        C.check_fx(model)


def test_update_reruns_the_named_models_and_keeps_the_rest(tmp_path):
    """make conformance takes most of an hour: --update runs the named models again and
    keeps the other rows and the hand-written prose above the table."""
    pytest.importorskip("onnxruntime")
    kept = ({c: "ok" for c in [*C.CHEAP, *C.TOOLS]}, 7.0)
    stale = ({c: "FAIL: stale" for c in [*C.CHEAP, *C.TOOLS]}, 1.0)
    path = tmp_path / "conformance.md"
    path.write_text(C.table({"alexnet": kept, "lenet5": stale}, "# Title\n\nA note by hand.\n"))
    assert C.read_table(str(path)) == (
        "# Title\n\nA note by hand.\n",
        {"alexnet": kept, "lenet5": stale},
    )

    assert C.main(["-o", str(path), "--update", "--models", "lenet5"]) == 0
    header, rows = C.read_table(str(path))
    assert header == "# Title\n\nA note by hand.\n" and rows["alexnet"] == kept
    assert not any(v.startswith("FAIL") for v in rows["lenet5"][0].values())
    with pytest.raises(SystemExit):  # argparse: --update without --models
        C.main(["-o", str(path), "--update"])


def test_a_table_without_a_newer_check_reads_back_with_it_not_run(tmp_path):
    """The committed table predates a check added since (torchscript): --update can still
    read it, and fills the new column for the models it runs."""
    older = [c for c in [*C.CHEAP, *C.TOOLS] if c != "torchscript"]
    path = tmp_path / "conformance.md"
    path.write_text(
        "# Title\n\n| model | " + " | ".join(older) + " | s |\n"
        + "|---" * (len(older) + 2) + "|\n"
        + "| alexnet | " + " | ".join("ok" for _ in older) + " | 7 |\n"
    )  # fmt: skip
    header, rows = C.read_table(str(path))
    assert header == "# Title\n"
    assert rows["alexnet"][0]["torchscript"] == C.NOT_RUN and rows["alexnet"][0]["fx"] == "ok"
    path.write_text("# Title\n\n| model | forward | frobnicate | s |\n|---|---|---|---|\n")
    with pytest.raises(SystemExit, match="has no table of the checks"):
        C.read_table(str(path))
