"""The loaders of a run (of the datasets its task makes), and the bookkeeping of the
unreadable images that are skipped."""

from __future__ import annotations

import warnings

import torch

from .errors import TrainError
from .run import Loaders, Run


def count_per_class(names: set[str], label_of: dict[str, int], n: int) -> list[int]:
    """How many of ``names`` (files) fall in each of the ``n`` classes."""
    counts = [0] * n
    for name in names:
        if name in label_of:
            counts[label_of[name]] += 1
    return counts


def check_classes_left(
    classes: list[str], totals: list[int], skipped: list[int], which: str, allow: bool
) -> None:
    """A class whose every training (or validation) image was unreadable is an error: the
    run would otherwise train a classifier that can never predict it, and say nothing."""
    gone = [(c, t) for c, t, k in zip(classes, totals, skipped, strict=True) if t and k >= t]
    if not gone:
        return
    (name, total), more = gone[0], len(gone) - 1
    text = f"class {name!r} has no readable {which} images (all {total} skipped as unreadable)" + (
        f", and {more} more class(es) too" if more else ""
    )
    if allow:
        warnings.warn(f"{text}; going on without them (--allow-missing-classes)", stacklevel=2)
        return
    raise TrainError(
        f"{text}: replace or remove the files, or pass --allow-missing-classes to train on "
        "the other classes"
    )


def make_loaders(run: Run) -> None:
    """The phase that makes the training and validation loaders of the task's datasets
    (workers kept across epochs, memory pinned on CUDA); in a distributed run each process
    trains on its share and validates every world-th item."""
    cfg, ctx, plan = run.config, run.context, run.plan
    sets = run.task.datasets(run)
    sampler, val_ds = None, sets.val
    if ctx.distributed and not plan.probe:
        sampler = torch.utils.data.distributed.DistributedSampler(
            sets.train, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed
        )
    if ctx.distributed:  # metrics are summed over the processes
        val_ds = torch.utils.data.Subset(val_ds, range(ctx.rank, len(val_ds), ctx.world))
    kw = dict(sets.loader_kw, pin_memory=ctx.device.type == "cuda")  # for non-blocking copies
    gen = torch.Generator()
    train = torch.utils.data.DataLoader(
        sets.train, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
        generator=gen, drop_last=False, **kw,
    )  # fmt: skip
    val = torch.utils.data.DataLoader(val_ds, batch_size=cfg.batch_size, **kw)
    n = run.n_classes
    run.loaders = Loaders(
        train=train,
        val=val,
        sampler=sampler,
        generator=gen,
        net=sets.net,
        cache_path=sets.cache_path,
        probe_skipped=sets.probe_skipped or {"train": [0] * n, "val": [0] * n},
        augment=sets.augment,
        in_memory=sets.in_memory,
        normalize=sets.normalize,
    )
