"""Timers and interleaved measurement: ours and the reference alternate sample by sample, so
that load from other processes (or clock changes) hits both alike."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

MIN_SAMPLE_S = 0.05  # calls per sample are raised until one sample lasts this long


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Seconds per call of ``fn``, over ``iters`` calls; CUDA events on CUDA."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        sync(device)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / iters
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


@dataclass
class Samples:
    """Seconds per call, one value per sample."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def interleaved(
    fns: Sequence[Callable[[], object]],
    device: torch.device,
    *,
    repeats: int,
    warmup: int = 2,
) -> list[Samples]:
    """Time each of ``fns`` ``repeats`` times, alternating (a, b, a, b...) after warm-up.

    Every function gets the same number of calls per sample, calibrated on the slowest one.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
        sync(device)
    slowest = max(time_calls(fn, 1, device) for fn in fns)
    iters = max(1, math.ceil(MIN_SAMPLE_S / max(slowest, 1e-9)))
    out = [Samples([]) for _ in fns]
    for _ in range(repeats):
        for fn, samples in zip(fns, out, strict=True):
            samples.seconds.append(time_calls(fn, iters, device))
    return out


def ratio_stats(ours: Samples, theirs: Samples) -> dict[str, float]:
    """Speed ratio ours/theirs (> 1: ours faster) per interleaved pair of samples: median
    and the spread (25th and 75th percentiles) of the pairs."""
    pairs = sorted(t / o for o, t in zip(ours.seconds, theirs.seconds, strict=True))
    if len(pairs) == 1:
        return {"median": pairs[0], "p25": pairs[0], "p75": pairs[0]}
    q = statistics.quantiles(pairs, n=4, method="inclusive")
    return {"median": statistics.median(pairs), "p25": q[0], "p75": q[2]}
