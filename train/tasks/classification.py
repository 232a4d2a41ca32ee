"""Classification: one label per image, from an image folder, a CSV or the bundled digits;
cross-entropy, top-1 and (for more than 5 classes) top-5 accuracy, the confusion matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..augment import inspect_images, resolve_augment
from ..context import say
from ..datasets import load_data
from ..memory_cache import image_data
from ..probe import feature_sets, quick_probe
from ..report import Meter, format_metrics, plot_confusion, plot_curves
from ..run import Run, Sets, Task
from ..strategy import build_model, choose_strategy, starting_weights, starts_from_weights

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..datasets import DataSplit


def default_normalize_on_device(device: torch.device) -> bool:
    """Whether image batches cross to the device as uint8 and are normalised there unless
    told: on CUDA, where the copy is a quarter of float32's bytes (ResNet-50 at batch 256:
    38.5 against 154 MB a step) and the arithmetic is free beside the step, as timm's
    prefetching loader does. On the CPU there is no copy, and normalising in the loader
    workers keeps that work off the process that trains."""
    return device.type == "cuda"


def _image_sets(run: Run) -> Sets:
    """Images, decoded into memory where they fit, normalised in the workers or (as uint8
    batches) on the device."""
    cfg, ctx, data, workers = run.config, run.context, run.data, run.workers
    stats = inspect_images(data.train)  # a few dozen headers, no decoding
    augment = resolve_augment(cfg.augment, stats, min(data.counts("train")))
    say(ctx, f"augment: {augment.describe()}"
             + (f": {augment.reason}" if cfg.augment == "auto" else ""))  # fmt: skip
    run.where = "decoding the images into memory"
    on_device = (default_normalize_on_device(ctx.device) if cfg.normalize_on_device is None
                 else cfg.normalize_on_device)  # fmt: skip
    images = image_data(data, run.pre, run.model.in_chans, augment, stats=stats,
                        cache_memory=cfg.cache_memory, workers=workers,
                        normalize_on_device=on_device)  # fmt: skip
    say(ctx, images.note)
    return Sets(
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
        net=run.model,
        augment=augment,
        in_memory=images.cached,
        normalize=images.normalize,
    )


class ClassificationTask(Task):
    name = "classification"
    score_key = "val_top1"
    plots = ("loss.png", "accuracy.png", "confusion.png")

    def load_data(self, cfg: TrainConfig) -> DataSplit:
        return load_data(
            cfg.data, val_split=cfg.val_split, seed=cfg.seed, max_per_class=cfg.max_per_class
        )

    def choose_strategy(self, run: Run) -> tuple[str, str]:
        """By the smallest class's training size and, where the model starts from weights
        and every class has 30 images, a quick linear probe on the backbone's (cached)
        features; a linear probe chosen so reuses that backbone."""
        cfg = run.config
        per_class = min(run.data.counts("train"))
        with_weights = starts_from_weights(cfg.model, cfg.weights)
        probe_top1, model = None, None
        if with_weights and per_class >= 30:
            torch.manual_seed(cfg.seed)
            start = starting_weights(cfg.model, "linear-probe", cfg.weights)
            model = build_model(cfg.model, run.n_classes, start, aux=False)
            model.to(run.context.device)
            probe_top1 = quick_probe(run, model)
        strategy, reason = choose_strategy(per_class, probe_top1, with_weights)
        if strategy == "linear-probe":
            run.backbone = model
        return strategy, reason

    def default_channels_last(self, device: torch.device) -> bool:
        """Always: on CUDA it made ResNet-50's step 1.4x faster (H200); on the CPU every
        classification step measured faster, 1.08-1.70x for LeNet-5 to EfficientNet-Lite0
        on digits, small grayscale images and photos
        (benchmarks/results/train-step-layout-cpu-2026-12-02/), and the 19 networks of the
        2026-11-22 benchmark's training step 1.02-1.73x."""
        return True

    def datasets(self, run: Run) -> Sets:
        """A linear probe's cached backbone features, else images."""
        return feature_sets(run) if run.plan.probe else _image_sets(run)

    def criterion(self, cfg: TrainConfig, label_smoothing: float = 0.0) -> nn.Module:
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def meter(self, cfg: TrainConfig, n_classes: int) -> Meter:
        return Meter(n_classes)

    # Top-5 only where the Meter reports it (more than 5 classes): with fewer it is 100%
    # for any model. The keys of a run with more classes are as they always were.
    def epoch_metrics(self, train: dict, val: dict) -> dict:
        record = {
            "train_loss": train["loss"],
            "train_top1": train["top1"],
            "val_loss": val["loss"],
            "val_top1": val["top1"],
        }
        if "top5" in val:
            record["val_top5"] = val["top5"]
        return record

    def epoch_line(self, record: dict) -> str:
        r = record
        top5 = f" top-5 {r['val_top5']:.2%}" if "val_top5" in r else ""
        return (
            f"train loss {r['train_loss']:.4f} top-1 {r['train_top1']:.2%}  val loss "
            f"{r['val_loss']:.4f} top-1 {r['val_top1']:.2%}{top5}"
        )

    def final_metrics(self, final: dict, classes: list[str]) -> dict:
        top5 = {"top5": final["top5"]} if "top5" in final else {}
        return {
            "top1": final["top1"],
            **top5,
            "per_class": dict(zip(classes, final["per_class"], strict=True)),
        }

    def summary(self, final: dict, classes: list[str]) -> str:
        return format_metrics(final, classes)

    def plot(self, run: Run, final: dict) -> None:
        """The loss and accuracy curves, and the confusion matrix."""
        out = run.plan.out
        plot_curves(run.state.history, out)
        plot_confusion(final["confusion"], run.data.classes, out / "confusion.png")
