"""The device's convolution peak, and each network's share of it.

A speed ratio says how much faster than torchvision we run; it does not say how much faster
anything *could* run on that machine. ``peak_layer`` finds, among a few large dense
convolutions (channels_last, through the device's own library: oneDNN on the CPU, cuDNN on
CUDA), the one that runs fastest; the runner then times it interleaved with the networks, so
that the peak and the networks meet the same load from other processes. A network's achieved
rate is its MACs times its images per second; over the peak, that is its share of the
machine; the peak over torchvision's achieved rate is the *ceiling*: the largest speed-up
over torchvision that any implementation doing the same multiply-accumulates could reach at
that rate. Only an algorithm that skips multiplications (Winograd, FFT) could pass it:
oneDNN's float32 convolutions on AVX2 CPUs do not use one, cuDNN sometimes does, so on CUDA
the ceiling is a guide, not a bound.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .timing import interleaved

# (in channels, out channels, kernel, side): dense layers of the shapes ResNet-50 spends its
# time in (3x3 at 56 and 28, a wide 1x1 at 14). Batch: what keeps each call long enough to
# time on the device without taking seconds.
SHAPES = ((64, 64, 3, 56), (128, 128, 3, 28), (1024, 256, 1, 14))
BATCH = {"cpu": 8, "cuda": 128}
SAMPLES = 3


@dataclass
class PeakLayer:
    """The fastest of the candidate convolutions, by its shape: ``make()`` builds it afresh
    (weights and input on the device) and returns a call that runs it once, so that nothing
    of it stays allocated between timings (CUDA peak-memory figures would count it)."""

    spec: tuple[int, int, int, int]  # in channels, out channels, kernel, side
    batch: int
    device: torch.device
    dtype: torch.dtype
    gmacs_s: float  # its rate when it was chosen, best of a few samples
    tf32: bool | None = None  # CUDA float32: whether cuDNN used TF32 tensor cores

    @property
    def macs(self) -> int:
        cin, cout, k, side = self.spec
        return self.batch * cout * side * side * cin * k * k

    @property
    def shape(self) -> str:
        cin, cout, k, side = self.spec
        return f"{k}x{k} conv {cin}->{cout} at {side}x{side}, batch {self.batch}"

    def make(self) -> Callable[[], object]:
        cin, cout, k, side = self.spec
        conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        conv = conv.to(self.device, self.dtype).to(memory_format=torch.channels_last)
        x = torch.randn(self.batch, cin, side, side, device=self.device, dtype=self.dtype)
        x = x.contiguous(memory_format=torch.channels_last)

        def call() -> object:
            with torch.no_grad():
                return conv(x)

        return call


def peak_layer(
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    *,
    shapes: tuple[tuple[int, int, int, int], ...] = SHAPES,
    batch: int | None = None,
) -> PeakLayer | None:
    """The fastest of ``shapes`` on ``device`` in ``dtype`` (each the best of a few
    samples, since other processes only ever add time). None on the meta device, which
    has no time."""
    if device.type == "meta":
        return None
    n = batch or BATCH.get(device.type, 8)
    best: PeakLayer | None = None
    for spec in shapes:
        layer = PeakLayer(spec, n, device, dtype, 0.0)
        layer.gmacs_s = _rate(layer.make(), layer.macs, device)
        if best is None or layer.gmacs_s > best.gmacs_s:
            best = layer
    if best is not None and device.type == "cuda" and dtype == torch.float32:
        best.tf32 = torch.backends.cudnn.allow_tf32  # cuDNN's default: TF32 tensor cores
    return best


def _rate(call: Callable[[], object], macs: int, device: torch.device) -> float:
    """GMAC/s of ``call``: warmed up and calibrated as every timing is, then the best of
    a few samples."""
    samples = interleaved([call], device, repeats=SAMPLES)[0]
    return macs / min(samples.seconds) / 1e9


def annotate(row: dict, peak: PeakLayer | None, peak_seconds: list[float] | None) -> dict:
    """Add to ``row`` its achieved GMAC/s at batch N (``gmacs_s``, ``tv_gmacs_s``) and, given
    the peak layer's seconds per call timed interleaved with the row's samples, the peak's
    rate, each share of it and the ceiling: medians over the interleaved samples, each a
    comparison made under the same load. ``row`` is returned."""
    macs, batch = row.get("macs"), row.get("batch_size")
    if not macs or not batch:
        return row
    for prefix in ("", "tv_"):
        if row.get(f"{prefix}throughput"):
            row[f"{prefix}gmacs_s"] = macs * row[f"{prefix}throughput"] / 1e9
    if peak is None or not peak_seconds:
        return row
    peak_rates = [peak.macs / s / 1e9 for s in peak_seconds]
    row["peak_gmacs_s"] = statistics.median(peak_rates)
    row["peak_seconds_samples"] = list(peak_seconds)
    precision = str(peak.dtype).replace("torch.", "") + (" (TF32)" if peak.tf32 else "")
    row["peak_layer"] = f"{peak.shape}, {precision}"
    for prefix in ("", "tv_"):
        seconds = row.get(f"{prefix}throughput_samples")
        if seconds and len(seconds) == len(peak_rates):
            rates = [macs * batch / s / 1e9 for s in seconds]
            row[f"{prefix}share_of_peak"] = statistics.median(
                r / p for r, p in zip(rates, peak_rates, strict=True)
            )
            if prefix == "tv_":
                row["ceiling_vs_tv"] = statistics.median(
                    p / r for r, p in zip(rates, peak_rates, strict=True)
                )
    return row
