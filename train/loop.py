"""The loop's moving parts: batches onto the device, one training epoch, evaluation, and
the figures that say where an epoch's time went (images per second, the share of it spent
waiting for data)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

import nets

from .errors import TrainError
from .report import Meter


class EpochMeter(Protocol):
    """What a pass's figures accumulate in: ``report.Meter`` (classification),
    ``segmentation.SegMeter``."""

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss_sum: float) -> None: ...

    def all_reduce(self) -> None: ...

    def result(self) -> dict: ...


@dataclass
class Throughput:
    """Where a pass over a loader spent its time: blocked on the loader (``wait_s``)
    against everything else, the step (``step_s``). ``start_wait_s`` is the part of
    ``wait_s`` spent before each pass's first batch: the loader's start at every epoch,
    when all its workers begin a batch at once."""

    images: int = 0
    wait_s: float = 0.0
    step_s: float = 0.0
    start_wait_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.wait_s + self.step_s

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    @property
    def wait_share(self) -> float:
        """The share of the pass spent waiting for the next batch."""
        return self.wait_s / self.seconds if self.seconds else 0.0

    @property
    def bound(self) -> str:
        """What limits the pass: ``"data"`` (the loader) when it waited for more than half
        of it, else ``"step"`` (the model's forward and backward)."""
        return "data" if self.wait_share > 0.5 else "step"

    def add(self, other: Throughput) -> None:
        self.images += other.images
        self.wait_s += other.wait_s
        self.step_s += other.step_s
        self.start_wait_s += other.start_wait_s


def batches(
    loader: Iterable,
    device: torch.device,
    *,
    channels_last: bool = False,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    strict: bool = False,
    skipped: set[str] | None = None,
    timing: Throughput | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The readable batches of ``loader`` (``(x, y, unreadable names)`` triples) on
    ``device``: copies are non-blocking (the loader pins memory on CUDA), images
    channels_last on request and, where the loader hands over uint8, normalised by
    ``normalize`` after the copy. Unreadable images' names go to ``skipped``; with
    ``strict`` the first one stops the run. ``timing`` gets the time blocked on the loader
    and the time the consumer spent between batches (the step)."""
    timing = timing if timing is not None else Throughput()
    began: float | None = time.perf_counter()  # the pass's start, until its first batch
    it = iter(loader)
    start = began
    while True:
        try:
            x, y, bad = next(it)
        except StopIteration:
            timing.wait_s += time.perf_counter() - start
            return
        if bad:
            if strict:
                raise TrainError(f"unreadable image {bad[0]!r} (--strict)")
            if skipped is not None:
                skipped.update(bad)
        if x.numel() == 0:
            now = time.perf_counter()
            timing.wait_s += now - start
            start = now
            continue
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)  # on uint8: a quarter the bytes
        if normalize is not None:
            x = normalize(x)  # keeps the memory format
        now = time.perf_counter()
        timing.wait_s += now - start
        if began is not None:
            timing.start_wait_s += now - began
            began = None
        timing.images += len(y)
        yield x, y
        start = time.perf_counter()
        timing.step_s += start - now


def autocast(device: torch.device, dtype: torch.dtype | None):  # noqa: ANN201
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def compute_loss(out, target: torch.Tensor, criterion: nn.Module, aux_weight: float):
    """Cross-entropy of the main logits plus ``aux_weight`` times each auxiliary head's."""
    if isinstance(out, nets.AuxOutputs):
        loss = criterion(out.logits, target)
        for a in out.aux:
            loss = loss + aux_weight * criterion(a, target)
        return loss, out.logits
    return criterion(out, target), out


@dataclass
class Step:
    """One optimisation step's parts: ``net`` (what trains: the model, its DDP or compiled
    wrapper, or the probe's head), and what updates it."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    trainable: list[nn.Parameter]
    accum: int = 1
    clip_grad: float = 0.0
    aux_weight: float = 0.0
    dtype: torch.dtype | None = None


def train_epoch(
    step: Step,
    data: Iterator[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device,
    *,
    check_finite: Callable[[torch.Tensor, int], None],
    on_batch: Callable[[int, float], None] | None = None,
    max_steps: int | None = None,
    meter: EpochMeter | None = None,
) -> dict:
    """Train over ``data`` (from ``batches``) and return the epoch's training metrics.

    Gradients are accumulated over ``step.accum`` batches; a last, shorter group steps too.
    ``check_finite(loss, i)`` stops the run on a non-finite loss before it reaches the
    weights; ``on_batch(i, loss)`` reports progress; ``max_steps`` ends the epoch early
    (the loop's benchmark); ``meter`` replaces the classification ``Meter`` (segmentation's
    ``SegMeter`` has the same ``update``/``all_reduce``/``result``)."""
    meter = meter if meter is not None else Meter(num_classes)
    step.optimizer.zero_grad(set_to_none=True)
    pending = 0
    for i, (x, y) in enumerate(data):
        with autocast(device, step.dtype):
            out = step.net(x)
            loss, logits = compute_loss(out, y, step.criterion, step.aux_weight)
        check_finite(loss, i)
        step.scaler.scale(loss / step.accum).backward()
        pending += 1
        if pending == step.accum:
            _update(step)
            pending = 0
        value = loss.item()
        meter.update(logits, y, value * len(y))
        if on_batch is not None:
            on_batch(i, value)
        if max_steps is not None and i + 1 >= max_steps:
            break
    if pending:
        _update(step)
    meter.all_reduce()
    return meter.result()


def _update(step: Step) -> None:
    if step.clip_grad > 0:
        step.scaler.unscale_(step.optimizer)
        nn.utils.clip_grad_norm_(step.trainable, step.clip_grad)
    step.scaler.step(step.optimizer)
    step.scaler.update()
    step.optimizer.zero_grad(set_to_none=True)
    step.scheduler.step()


@torch.no_grad()
def evaluate(
    net: nn.Module,
    data: Iterator[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    criterion: nn.Module,
    meter: EpochMeter,
    dtype: torch.dtype | None = None,
) -> dict:
    """Metrics over ``data`` (from ``batches``, whose ``skipped`` collects the unreadable
    images), accumulated in ``meter`` and summed over the processes."""
    for x, y in data:
        with autocast(device, dtype):
            out = net(x)
            logits = out.logits if isinstance(out, nets.AuxOutputs) else out
            loss = criterion(logits.float(), y)
        meter.update(logits, y, loss.item() * len(y))
    meter.all_reduce()
    return meter.result()
