"""Export a model to a file other tools run: ONNX (onnxruntime, TensorRT...) or a
``torch.export`` program (``.pt2``), checked against the eager model before it is kept.

Both go through ``torch.export`` (the default ONNX exporter does too), which records the
network as it runs in eval mode; ``fast=True`` exports the inference fast path's folded,
channels_last network (BatchNorm folded into the convs), ``half=True`` stores the weights
in float16 with float32 input and output. The model's preprocessing (resize, crop, mean,
std, interpolation), its name and weights are written into the file: ONNX
``metadata_props``, and ``preprocessing.json`` among a ``.pt2`` file's extra files.

The file is written under a temporary name, run on a few random inputs (ONNX through
onnxruntime, ``.pt2`` loaded back with ``torch.export.load``), compared with the eager
model, and renamed into place only then: a failed export or check leaves nothing behind.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

import common

from .errors import InputSizeError, NetsError
from .inference import optimize_for_inference

__all__ = ["FORMATS", "ExportCheck", "ExportError", "export_model", "export_metadata", "load_pt2"]

FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}
PT2_METADATA = "preprocessing.json"  # the .pt2 extra file holding export_metadata()
MAX_BATCH = 1024  # the dynamic batch dimension's upper bound (torch.export wants one)


class ExportError(NetsError):
    """An export that cannot be done as asked: unknown format, missing folder, missing
    onnxruntime, an exported file whose outputs differ from the eager model's."""


@dataclass(frozen=True)
class ExportCheck:
    """What was compared: the exported file run by ``runtime`` against the eager model,
    on ``batches`` (one random input each); ``max_diff`` the largest absolute difference,
    ``scale`` the largest absolute eager logit (for reading ``max_diff``)."""

    runtime: str
    batches: tuple[int, ...]
    input_size: int
    max_diff: float
    scale: float
    in_chans: int = 3

    def __str__(self) -> str:
        side = f"x{self.input_size}x{self.input_size}"
        sizes = ", ".join(f"{b}x{self.in_chans}{side}" for b in self.batches)
        return (
            f"checked with {self.runtime} against eager PyTorch on {len(self.batches)} random "
            f"inputs ({sizes}): max |difference| {self.max_diff:.3g} "
            f"(largest logit {self.scale:.3g})"
        )


class _Float16(nn.Module):
    """``model`` in float16 with float32 at the doors (what ``--half`` exports without
    ``--fast``; the fast path's wrapper does the same with ``dtype=torch.float16``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def format_for(path: str | os.PathLike, fmt: str | None) -> str:
    """``fmt`` if given and known, else the one that ``path``'s suffix names."""
    if fmt is None:
        suffix = Path(path).suffix.lower()
        found = [f for f, s in FORMATS.items() if s == suffix]
        if not found:
            raise ExportError(
                f"cannot tell the format of {os.fspath(path)!r} from its suffix: "
                f"give --format ({' or '.join(FORMATS)}) or end the name in .onnx or .pt2"
            )
        return found[0]
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


def check_destination(path: str | os.PathLike) -> None:
    """The folder must exist (nothing is created) and be writable."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise ExportError(
            f"cannot write {os.fspath(path)!r}: the folder {str(folder)!r} does not exist"
        )
    common.check_writable(folder)


def export_metadata(
    model: nn.Module, *, input_size: int, fast: bool, half: bool, dynamic_batch: bool
) -> dict[str, str]:
    """String metadata for the file: arch, weights, preprocessing, how it was exported."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    meta = {"producer": "classic-convnets (python -m nets export)", "arch": model.arch}
    if cfg:
        meta.update(cfg.preprocessing.as_metadata())
        meta["weights"] = str(cfg.tag or cfg.origin or "none (random initialisation)")
        if cfg.class_names:
            meta["class_names"] = json.dumps(list(cfg.class_names))
    meta["in_chans"] = str(model.in_chans)
    order = " (RGB order)" if model.in_chans == 3 else ""
    meta["input_layout"] = f"NCHW float32, normalised with mean and std{order}"
    # The preprocessing's input_size is the weights'; the file's own input is this one.
    batch = "N" if dynamic_batch else "1"
    meta["input_shape"] = f"{batch},{model.in_chans},{input_size},{input_size}"
    meta["fast"], meta["half"] = str(fast), str(half)
    return meta


def _prepare(model: nn.Module, example: torch.Tensor, *, fast: bool, half: bool) -> nn.Module:
    model = model.eval()
    if fast:
        dtype = torch.float16 if half else None
        # backend="eager": exporters record the folded eager network in any case.
        return optimize_for_inference(model, example, dtype=dtype, backend="eager")
    return _Float16(model) if half else model


def _example(model: nn.Module, batch: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.in_chans, size, size, generator=g)


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    input_size: int | None = None,
    dynamic_batch: bool = False,
    fast: bool = False,
    half: bool = False,
) -> ExportCheck:
    """Export ``model`` (a network from ``create_model``) to ``path`` and check it.

    ``fmt``: ``"onnx"`` or ``"pt2"`` (default: from the suffix). ``input_size``: the
    square input side recorded (default: the model's own); with ``dynamic_batch`` the
    batch dimension is free (1 to 1024), else it is 1. Returns the check that ran; raises
    ``ExportError`` (nothing written) when the exported outputs are not the eager ones
    within float tolerance (float32: 1e-4 of the largest logit; float16: 2e-2).
    """
    fmt = format_for(path, fmt)
    check_destination(path)
    # The attribute: the size the network was designed at (by key, timm's (C, H, W)).
    size = input_size or getattr(getattr(model, "pretrained_cfg", None), "input_size", None) or 224
    minimum = getattr(model, "min_input_size", 1)
    if size < minimum:
        raise InputSizeError(
            f"{model.arch} needs inputs of at least {minimum}x{minimum} pixels, got {size}x{size}"
        )
    if fmt == "onnx":
        _need_onnxruntime()
    batches = (1, 3, 2) if dynamic_batch else (1, 1, 1)
    example = _example(model, 2 if dynamic_batch else 1, size, seed=0)
    net = _prepare(model, example, fast=fast, half=half)
    dims = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},) if dynamic_batch else None
    meta = export_metadata(
        model, input_size=size, fast=fast, half=half, dynamic_batch=dynamic_batch
    )
    with torch.no_grad():
        program = torch.export.export(net, (example,), dynamic_shapes=dims)
    inputs = [_example(model, b, size, seed=1 + i) for i, b in enumerate(batches)]
    with torch.no_grad():
        expected = [net(x) for x in inputs]
    checked: list[ExportCheck] = []

    def write(tmp: str) -> None:
        if fmt == "onnx":
            runtime = _write_onnx(program, tmp, meta)
            got = _run_onnx(tmp, inputs)
        else:
            # Through memory: torch.export's archive code wants a name ending in .pt2 or a
            # buffer, and the temporary name ends in .part.
            buffer = io.BytesIO()
            torch.export.save(program, buffer, extra_files={PT2_METADATA: json.dumps(meta)})
            Path(tmp).write_bytes(buffer.getvalue())
            runtime = "torch.export.load"
            loaded = load_pt2(tmp)[0].module()
            with torch.no_grad():
                got = [loaded(x) for x in inputs]
        check = _compare(runtime, batches, size, got, expected, half)
        checked.append(replace(check, in_chans=model.in_chans))

    common.atomic_write(path, write)
    return checked[0]


def _compare(
    runtime: str,
    batches: tuple[int, ...],
    size: int,
    got: list[torch.Tensor],
    expected: list[torch.Tensor],
    half: bool,
) -> ExportCheck:
    diff = max(
        (g.float() - e.float()).abs().max().item() for g, e in zip(got, expected, strict=True)
    )
    scale = max(e.float().abs().max().item() for e in expected)
    check = ExportCheck(runtime, batches, size, diff, scale)
    # float32 exports reorder sums at most; float16 rounds each to 11 bits.
    bound = (2e-2 if half else 1e-4) * scale + 1e-5
    if not diff <= bound:  # NaN fails too
        raise ExportError(f"the exported model differs from eager: {check}; nothing written")
    return check


def _need_onnxruntime() -> None:
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not _importable(m)]
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}: pip install 'classic-convnets[onnx]'"
        )


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _write_onnx(program: torch.export.ExportedProgram, path: str, meta: dict) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's progress notes are not the user's
        onnx_program = torch.onnx.export(program, (), dynamo=True, verbose=False)
    onnx_program.model.metadata_props.update(meta)
    # One self-contained file (our largest network, VGG-19, is 0.55 GB, under protobuf's
    # 2 GB), so that the rename into place moves all of it.
    onnx_program.save(path, external_data=False)
    return "onnxruntime " + __import__("onnxruntime").__version__


def _run_onnx(path: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [torch.from_numpy(session.run(None, {name: x.numpy()})[0]) for x in inputs]


def load_pt2(path: str | os.PathLike) -> tuple[torch.export.ExportedProgram, dict]:
    """A ``.pt2`` file written by ``export_model`` and its metadata."""
    extra = {PT2_METADATA: ""}
    with open(path, "rb") as f:  # a buffer: any file name will do
        program = torch.export.load(io.BytesIO(f.read()), extra_files=extra)
    return program, json.loads(extra[PT2_METADATA] or "{}")
