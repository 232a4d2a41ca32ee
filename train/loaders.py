"""The loaders of a run: cached backbone features for a linear probe, image/mask pairs for
segmentation, else images (decoded into memory where they fit)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import segmentation as seg
from .augment import Augment, inspect_images, resolve_augment
from .config import TrainConfig
from .context import Context, RunState, say
from .errors import TrainError
from .features import cache_info
from .memory_cache import image_data
from .plan import RunPlan, backbone_features, default_normalize_on_device

if TYPE_CHECKING:
    import weights as wts

    from .datasets import DataSplit
    from .segmentation import SegSplit


@dataclass
class Loaders:
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    sampler: torch.utils.data.distributed.DistributedSampler | None
    generator: torch.Generator
    net: nn.Module  # what the batches feed: the model, or a linear probe's classifier
    cache_path: Path | None = None
    # unreadable images per split and class, as far as known before training (the probe)
    probe_skipped: dict[str, list[int]] | None = None
    augment: Augment | None = None  # None for a linear probe (features, no images)
    in_memory: bool = False  # the decoded images are held in memory
    # Batches arrive as uint8 and are normalised by this on the device (``batches``).
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None


def _tensor_collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    # Features carry no file names: nothing in a batch of them can be unreadable.
    xs, ys = zip(*batch, strict=True)
    return torch.stack(xs), torch.stack(ys), []


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


@dataclass
class _Sets:
    """The two datasets of a run and how they are batched (``make_loaders`` adds what every
    kind shares: pinned memory on CUDA, the distributed split)."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    loader_kw: dict
    net: nn.Module
    augment: Augment | None = None
    in_memory: bool = False
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
    cache_path: Path | None = None
    probe_skipped: dict[str, list[int]] = field(default_factory=dict)


def _feature_sets(
    cfg: TrainConfig, ctx: Context, data: DataSplit, model: nn.Module, pre: wts.Preprocessing,
    workers: int, dtype: torch.dtype | None, run: RunState,
) -> _Sets:  # fmt: skip
    """A linear probe's: the backbone's cached features, and the classifier they feed."""
    n_classes = len(data.classes)
    run.where = "computing the backbone's features"
    feats, cache_path, hit = backbone_features(model, pre, data, cfg, ctx, dtype, workers)
    info = cache_info(cache_path)
    rate = f"{float(info['images_per_s']):.0f} img/s" if "images_per_s" in info else "?"
    say(ctx, f"features: {'cached' if hit else 'computed and cached'} in {cache_path} "
             f"(backbone pass through the fast path, {info.get('fast_path', 'float32')}, "
             f"{rate})")  # fmt: skip
    run.feature_rate = float(info["images_per_s"]) if "images_per_s" in info else None
    # The features leave unreadable images out: what is missing is what was skipped.
    probe_skipped = {}
    for split, which in (("train", "training"), ("val", "validation")):
        totals = data.counts(split)
        readable = torch.bincount(feats[f"{split}_y"].long(), minlength=n_classes).tolist()
        probe_skipped[split] = [t - r for t, r in zip(totals, readable, strict=True)]
        check_classes_left(
            data.classes, totals, probe_skipped[split], which, cfg.allow_missing_classes
        )
    return _Sets(
        train=torch.utils.data.TensorDataset(feats["train_x"], feats["train_y"].long()),
        val=torch.utils.data.TensorDataset(feats["val_x"], feats["val_y"].long()),
        loader_kw=dict(collate_fn=_tensor_collate, num_workers=0),
        net=model.get_classifier(),
        cache_path=cache_path,
        probe_skipped=probe_skipped,
    )


def _segmentation_sets(
    cfg: TrainConfig, plan: RunPlan, ctx: Context, data: SegSplit, model: nn.Module,
    pre: wts.Preprocessing, workers: int,
) -> _Sets:  # fmt: skip
    """Segmentation's: image/mask pairs read from disk every epoch, at size x size."""
    augment = seg.seg_augment(cfg.augment)
    say(ctx, f"augment: {augment.describe()}: {augment.reason}; at {plan.input_size}x"
             f"{plan.input_size}")  # fmt: skip
    args = (pre, plan.input_size)
    return _Sets(
        train=seg.SegDataset(
            data.train,
            seg.joint_transform(*args, augment, cfg.ignore_index, model.in_chans),
            model.in_chans,
        ),
        val=seg.SegDataset(
            data.val,
            seg.joint_transform(*args, None, cfg.ignore_index, model.in_chans),
            model.in_chans,
        ),
        loader_kw=dict(
            collate_fn=seg.seg_collate, num_workers=workers, persistent_workers=workers > 0
        ),
        net=model,
        augment=augment,
    )


def _image_sets(
    cfg: TrainConfig, ctx: Context, data: DataSplit, model: nn.Module, pre: wts.Preprocessing,
    workers: int, run: RunState,
) -> _Sets:  # fmt: skip
    """Classification's: images, decoded into memory where they fit, normalised in the
    workers or (as uint8 batches) on the device."""
    stats = inspect_images(data.train)  # a few dozen headers, no decoding
    augment = resolve_augment(cfg.augment, stats, min(data.counts("train")))
    say(ctx, f"augment: {augment.describe()}"
             + (f": {augment.reason}" if cfg.augment == "auto" else ""))  # fmt: skip
    run.where = "decoding the images into memory"
    on_device = (default_normalize_on_device(ctx.device) if cfg.normalize_on_device is None
                 else cfg.normalize_on_device)  # fmt: skip
    images = image_data(data, pre, model.in_chans, augment, stats=stats,
                        cache_memory=cfg.cache_memory, workers=workers,
                        normalize_on_device=on_device)  # fmt: skip
    say(ctx, images.note)
    return _Sets(
        train=images.train,
        val=images.val,
        loader_kw=dict(
            collate_fn=images.collate,
            num_workers=workers,
            # Workers live for the whole run: respawning them (and re-importing torch in
            # each) every epoch cost seconds per epoch.
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers else None,
        ),
        net=model,
        augment=augment,
        in_memory=images.cached,
        normalize=images.normalize,
    )


def make_loaders(
    cfg: TrainConfig, plan: RunPlan, ctx: Context, data: DataSplit | SegSplit,
    model: nn.Module, pre: wts.Preprocessing, workers: int, dtype: torch.dtype | None,
    run: RunState,
) -> Loaders:  # fmt: skip
    """Training and validation loaders: of cached backbone features for a linear probe,
    else of images (workers kept across epochs, memory pinned on CUDA); in a distributed
    run each process trains on its share and validates every world-th item."""
    if plan.probe:
        sets = _feature_sets(cfg, ctx, data, model, pre, workers, dtype, run)
    elif plan.segmentation:
        sets = _segmentation_sets(cfg, plan, ctx, data, model, pre, workers)
    else:
        sets = _image_sets(cfg, ctx, data, model, pre, workers, run)
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
    n_classes = len(data.classes)
    return Loaders(
        train=train,
        val=val,
        sampler=sampler,
        generator=gen,
        net=sets.net,
        cache_path=sets.cache_path,
        probe_skipped=sets.probe_skipped or {"train": [0] * n_classes, "val": [0] * n_classes},
        augment=sets.augment,
        in_memory=sets.in_memory,
        normalize=sets.normalize,
    )
