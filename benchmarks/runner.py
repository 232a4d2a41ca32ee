"""Measuring one network in every mode, ours and torchvision's twin interleaved."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import nets
from nets.cost import count_macs
from nets.inference import optimize_for_inference

from . import memory
from .models import build_pair, input_size
from .timing import interleaved, ratio_stats

MODES = ("eager", "channels_last", "bf16", "compile", "fast")
DEFAULT_MODES = {"cpu": ("eager", "channels_last", "fast"), "cuda": MODES}


@dataclass
class Settings:
    device: torch.device
    batch_size: int = 8
    input_size: int | None = None  # None: each network's own
    repeats: int = 7
    modes: tuple[str, ...] = ("eager", "fast")
    memory: bool = True


def mode_supported(mode: str, device: torch.device) -> str | None:
    """Why ``mode`` cannot run on ``device`` (None: it can)."""
    if mode == "bf16" and device.type != "cuda":
        return "bf16 autocast is measured on CUDA only"
    return None


def prepare(model: nn.Module, mode: str, example: torch.Tensor, *, ours: bool) -> nn.Module:
    """``model`` as ``mode`` runs it. torchvision's twin in mode "fast" stays eager: the fast
    path is compared with torchvision's plain eager model, the issue's target."""
    if mode == "channels_last":
        return model.to(memory_format=torch.channels_last)
    if mode == "compile":
        return torch.compile(model)
    if mode == "fast" and ours:
        return optimize_for_inference(model, example)
    return model


def _convert(x: torch.Tensor, mode: str) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if mode == "channels_last" else x


def _autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    if mode == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _infer_fn(model: nn.Module, x: torch.Tensor, mode: str, device: torch.device) -> Callable:
    def run() -> None:
        with torch.no_grad(), _autocast(mode, device):
            model(x)

    return run


def _train_fn(model: nn.Module, x: torch.Tensor, mode: str, device: torch.device) -> Callable:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def run() -> None:
        with _autocast(mode, device):
            memory.train_step(model, opt, x)

    return run


def _pair_figures(
    fns: list[Callable], prefixes: list[str], batch: int, settings: Settings, key: str, row: dict
) -> None:
    """Time ``fns`` interleaved, the first being ours; store the medians in ``row`` under
    ``prefix + key`` and, for each of the others, the ratio ours/it as ``ratio_`` + prefix."""
    samples = interleaved(fns, settings.device, repeats=settings.repeats)
    scale = (lambda s: s.median * 1000) if key == "latency_ms" else (lambda s: batch / s.median)
    for prefix, s in zip(prefixes, samples, strict=True):
        row[f"{prefix}{key}"] = scale(s)
        row[f"{prefix}{key}_samples"] = s.seconds
        if prefix:
            row[f"ratio_{prefix.replace('tv_', '')}{key}"] = ratio_stats(samples[0], s)


def measure_model(name: str, settings: Settings, log: Callable[[str], None] = print) -> list[dict]:
    """One row per mode for ``name``: cost, latency, throughputs, peak memory, ratios."""
    device, batch = settings.device, settings.batch_size
    size = input_size(name, settings.input_size)
    base_ours, base_theirs = build_pair(name)
    in_chans = base_ours.in_chans
    x1 = torch.randn(1, in_chans, size, size, device=device)
    xb = torch.randn(batch, in_chans, size, size, device=device)
    params = sum(p.numel() for p in base_ours.parameters())
    macs = count_macs(base_ours, (1, in_chans, size, size))
    common = {
        "model": name,
        "family": nets.get_spec(name).family,
        "device": str(device),
        "input_size": size,
        "batch_size": batch,
        "params": params,
        "macs": macs,
        "torchvision": base_theirs is not None,
    }
    if base_theirs is not None:
        with torch.no_grad():
            diff = (base_ours.eval()(x1) - base_theirs.eval()(x1)).abs().max().item()
        common["max_abs_diff_vs_tv"] = diff

    rows = []
    for mode in settings.modes:
        row = dict(common, mode=mode)
        why = mode_supported(mode, device)
        if why:
            row["skipped"] = why
            rows.append(row)
            continue
        log(f"{name} [{mode}] {size}x{size} batch {batch}")
        ours = copy.deepcopy(base_ours).to(device).eval()
        theirs = None if base_theirs is None else copy.deepcopy(base_theirs).to(device).eval()
        ours = prepare(ours, mode, _convert(xb, mode), ours=True)
        if theirs is not None:
            theirs = prepare(theirs, mode, _convert(xb, mode), ours=False)
        models, prefixes = [ours], [""]
        if theirs is not None:
            models, prefixes = [ours, theirs], ["", "tv_"]
        if mode == "fast":  # also against our own plain eager model, for every network
            models.append(copy.deepcopy(base_ours).to(device).eval())
            prefixes.append("eager_")
        for key, x, n in (("latency_ms", x1, 1), ("throughput", xb, batch)):
            x = _convert(x, mode)
            fns = [_infer_fn(m, x, mode, device) for m in models]
            _pair_figures(fns, prefixes, n, settings, key, row)
        if mode == "fast":
            row["plans"] = {"x".join(map(str, k)): v for k, v in ours.plans.items()}
        else:  # the fast path is inference-only
            trained = (
                [copy.deepcopy(m).train() for m in models]
                if mode != "compile"
                else [m.train() for m in models]
            )
            fns = [_train_fn(m, _convert(xb, mode), mode, device) for m in trained]
            _pair_figures(fns, prefixes, batch, settings, "train_throughput", row)
            if settings.memory and device.type == "cuda":
                row["peak_train_mb"] = memory.cuda_peak(fns[0], device)
            del trained
        if settings.memory and device.type == "cuda":
            row["peak_infer_mb"] = memory.cuda_peak(
                _infer_fn(ours, _convert(xb, mode), mode, device), device
            )
        rows.append(row)
        del ours, theirs, models

    if settings.memory and device.type == "cpu":
        for impl in ("ours", "tv") if base_theirs is not None else ("ours",):
            peak = memory.cpu_peak(name, impl, batch, size)
            for row in rows:
                if row["mode"] == "eager" and peak:
                    prefix = "" if impl == "ours" else "tv_"
                    row[f"{prefix}peak_infer_mb"] = peak["infer_mb"]
                    row[f"{prefix}peak_train_mb"] = peak["train_mb"]
    return rows
