"""``python -m nets export`` and ``nets.export.export_model``: ONNX through onnxruntime and
torch.export programs, checked against eager, with the preprocessing in the file."""

from __future__ import annotations

import pytest
import torch
from conftest import randomize_bn

import nets
from nets.__main__ import main
from nets.export import ExportError, export_model, load_pt2

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _model(name: str) -> torch.nn.Module:
    """Random weights that give logits of order 1 (LeNet-5's own init gives 1e-4)."""
    torch.manual_seed(0)
    model = randomize_bn(nets.create_model(name)).eval()
    if name == "lenet5":
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, 0.3)
    return model


def test_onnx_with_a_dynamic_batch_matches_eager_and_carries_the_preprocessing(tmp_path):
    model = _model("lenet5")  # the ONNX exporter's time grows with the graph: the smallest
    path = tmp_path / "lenet5.onnx"
    check = export_model(model, path, input_size=40, dynamic_batch=True)
    assert check.runtime.startswith("onnxruntime") and check.batches == (1, 3, 2)
    assert check.max_diff <= 1e-4 * check.scale and check.scale > 0.1
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    pre = model.pretrained_cfg.preprocessing
    assert meta["mean"] == ",".join(str(v) for v in pre.mean)
    assert meta["std"] == ",".join(str(v) for v in pre.std)
    assert meta["resize_size"] == str(pre.resize_size) and meta["arch"] == "lenet5"
    assert meta["input_shape"] == "N,1,40,40"
    # A batch the check did not use runs too.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 40, 40)
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_pt2_of_the_fast_path_in_float16(tmp_path):
    model = _model("mobilenet_v3_small")
    path = tmp_path / "m.pt2"
    check = export_model(model, path, input_size=32, fast=True, half=True)
    assert check.runtime == "torch.export.load" and check.batches == (1, 1, 1)
    program, meta = load_pt2(path)
    assert meta["half"] == "True" and meta["fast"] == "True" and meta["input_shape"] == "1,3,32,32"
    assert meta["interpolation"] == model.pretrained_cfg.preprocessing.interpolation
    x = torch.randn(1, 3, 32, 32)
    out = program.module()(x)
    assert out.dtype == torch.float32  # float16 inside, float32 at the doors
    with torch.no_grad():
        want = model(x)
    # float16 storage: the contract is the top-1, and the logits stay close.
    assert out.argmax(1).tolist() == want.argmax(1).tolist()
    assert (out - want).abs().max() <= 2e-2 * want.abs().max()


def test_a_file_whose_outputs_differ_is_not_written(tmp_path, monkeypatch):
    import nets.export as export

    real = export._run_onnx
    monkeypatch.setattr(export, "_run_onnx", lambda p, xs: [y + 1 for y in real(p, xs)])
    with pytest.raises(ExportError, match="differs from eager.*nothing written"):
        export_model(_model("lenet5"), tmp_path / "l.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_and_prints_its_check(tmp_path, capsys):
    path = tmp_path / "lenet5.onnx"
    assert main(["export", "lenet5", "--weights", "none", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "lenet5 (random weights) -> onnx, batch 1, 32x32" in out
    assert "checked with onnxruntime" in out and "max |difference|" in out
    assert path.is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "tflite"], "unknown export format 'tflite': use one of onnx, pt2"),
        (["--input-size", "16"], "resnet18 needs inputs of at least 32x32 pixels"),
        (["--output-in-missing-folder"], "the folder .* does not exist"),
        (["--output-without-suffix"], "cannot tell the format of"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    import re

    output = tmp_path / "r.onnx"
    if args == ["--output-in-missing-folder"]:
        output, args = tmp_path / "missing" / "r.onnx", []
    elif args == ["--output-without-suffix"]:
        output, args = tmp_path / "r.bin", []
    code = main(["export", "resnet18", "--weights", "none", *args, "-o", str(output)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert list(tmp_path.iterdir()) == []
