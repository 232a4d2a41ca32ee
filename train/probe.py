"""A linear probe's side of a run: the frozen backbone's cached features, the quick probe
that ``auto`` weighs for classification, and the datasets of features a probe trains on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .context import say
from .features import FeaturePass, cache_info, cached_features
from .loaders import check_classes_left
from .run import Run, Sets

if TYPE_CHECKING:
    import weights as wts


def tensor_collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    # Features carry no file names: nothing in a batch of them can be unreadable.
    xs, ys = zip(*batch, strict=True)
    return torch.stack(xs), torch.stack(ys), []


def backbone_features(
    run: Run, model: nn.Module, pre: wts.Preprocessing
) -> tuple[dict[str, torch.Tensor], Path, bool]:
    """``model``'s backbone features of the run's data, cached: ``(tensors, file, hit)``."""
    cfg, ctx = run.config, run.context
    how = FeaturePass(
        ctx.device, amp=cfg.amp, batch_size=cfg.batch_size, num_workers=run.workers,
        strict=cfg.strict, progress=cfg.progress and ctx.is_main,
    )  # fmt: skip
    return cached_features(model, pre, run.data, how, cache_dir=cfg.cache_dir,
                           is_main=ctx.is_main, barrier=ctx.barrier)  # fmt: skip


def quick_probe(run: Run, model: nn.Module) -> float:
    """Validation top-1 of a logistic regression on the backbone's (cached) features: what
    ``auto`` weighs a linear probe by."""
    feats, _, _ = backbone_features(run, model, model.pretrained_cfg.preprocessing)
    g = torch.Generator().manual_seed(run.config.seed)
    x, y = feats["train_x"], feats["train_y"].long()
    mu, sd = x.mean(0), x.std(0) + 1e-6
    head = nn.Linear(x.shape[1], run.n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(30):
        for idx in torch.randperm(len(x), generator=g).split(256):
            loss = nn.functional.cross_entropy(head((x[idx] - mu) / sd), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = head((feats["val_x"] - mu) / sd).argmax(1)
    return float((pred == feats["val_y"].long()).float().mean())


def feature_sets(run: Run) -> Sets:
    """A linear probe's datasets: the backbone's cached features, and the classifier they
    feed."""
    cfg, data = run.config, run.data
    run.where = "computing the backbone's features"
    feats, cache_path, hit = backbone_features(run, run.model, run.pre)
    info = cache_info(cache_path)
    rate = f"{float(info['images_per_s']):.0f} img/s" if "images_per_s" in info else "?"
    say(run.context, f"features: {'cached' if hit else 'computed and cached'} in {cache_path} "
                     f"(backbone pass through the fast path, {info.get('fast_path', 'float32')}"
                     f", {rate})")  # fmt: skip
    run.feature_rate = float(info["images_per_s"]) if "images_per_s" in info else None
    # The features leave unreadable images out: what is missing is what was skipped.
    probe_skipped = {}
    for split, which in (("train", "training"), ("val", "validation")):
        totals = data.counts(split)
        readable = torch.bincount(feats[f"{split}_y"].long(), minlength=run.n_classes).tolist()
        probe_skipped[split] = [t - r for t, r in zip(totals, readable, strict=True)]
        check_classes_left(
            data.classes, totals, probe_skipped[split], which, cfg.allow_missing_classes
        )
    return Sets(
        train=torch.utils.data.TensorDataset(feats["train_x"], feats["train_y"].long()),
        val=torch.utils.data.TensorDataset(feats["val_x"], feats["val_y"].long()),
        loader_kw=dict(collate_fn=tensor_collate, num_workers=0),
        net=run.model.get_classifier(),
        cache_path=cache_path,
        probe_skipped=probe_skipped,
    )
