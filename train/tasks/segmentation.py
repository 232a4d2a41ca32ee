"""Segmentation: a class per pixel, from image/mask folders or the generated shapes;
U-Nets, cross-entropy + Dice, mean IoU and pixel accuracy."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..context import say
from ..errors import TrainError
from ..report import plot_curves, plot_segmentation
from ..run import Run, Sets, Task
from ..segmentation import (
    SEGMENTATION,
    DiceCELoss,
    SegDataset,
    SegMeter,
    SegSplit,
    default_input_size,
    examples,
    format_seg_metrics,
    joint_transform,
    load_seg_data,
    seg_augment,
    seg_collate,
)
from ..strategy import choose_segmentation_strategy, starts_from_weights

if TYPE_CHECKING:
    import weights as wts

    from ..augment import Augment
    from ..config import TrainConfig


class SegmentationTask(Task):
    name = SEGMENTATION
    score_key = "val_miou"
    plots = ("loss.png", "miou.png", "segmentation.png")
    head_bn_trains = True

    def load_data(self, cfg: TrainConfig) -> SegSplit:
        return load_seg_data(
            cfg.data, val_split=cfg.val_split, seed=cfg.seed, ignore_index=cfg.ignore_index
        )

    def choose_strategy(self, run: Run) -> tuple[str, str]:
        """By the number of training images (no linear probe: one label per image means
        nothing here)."""
        cfg = run.config
        return choose_segmentation_strategy(
            len(run.data.train), starts_from_weights(cfg.model, cfg.weights)
        )

    def default_channels_last(self, device: torch.device) -> bool:
        """On CUDA, as classification; on the CPU U-Nets' training step went either way in
        the 2026-11-22 benchmark (the paper's U-Net 0.92x, on a ResNet-34 1.11x, on Lite0
        1.28x), so there it stays contiguous."""
        return device.type == "cuda"

    def input_size(self, cfg: TrainConfig, data: SegSplit) -> int:
        return cfg.input_size or default_input_size(data)

    def preprocessing(self, run: Run, model: nn.Module) -> wts.Preprocessing:
        """The model's, at the run's size x size: trained and scored so, and predict
        resizes to it, from the checkpoint."""
        size = run.plan.input_size
        if size < model.min_input_size:
            raise TrainError(f"--input-size {size} is below {run.config.model}'s smallest "
                             f"input, {model.min_input_size}")  # fmt: skip
        pre = model.pretrained_cfg.preprocessing
        return dataclasses.replace(pre, input_size=size, resize_size=size)

    def datasets(self, run: Run) -> Sets:
        """Image/mask pairs read from disk every epoch, at size x size."""
        cfg, size, in_chans = run.config, run.plan.input_size, run.model.in_chans
        workers = run.workers
        augment = seg_augment(cfg.augment)
        say(run.context, f"augment: {augment.describe()}: {augment.reason}; at {size}x{size}")

        def dataset(pairs: list, augmented: Augment | None) -> SegDataset:
            transform = joint_transform(run.pre, size, augmented, cfg.ignore_index, in_chans)
            return SegDataset(pairs, transform, in_chans)

        return Sets(
            train=dataset(run.data.train, augment),
            val=dataset(run.data.val, None),
            loader_kw=dict(
                collate_fn=seg_collate, num_workers=workers, persistent_workers=workers > 0
            ),
            net=run.model,
            augment=augment,
        )

    def criterion(self, cfg: TrainConfig, label_smoothing: float = 0.0) -> nn.Module:
        """Cross-entropy + Dice, both ignoring unlabelled pixels."""
        return DiceCELoss(cfg.dice_weight, cfg.ignore_index, label_smoothing)

    def meter(self, cfg: TrainConfig, n_classes: int) -> SegMeter:
        return SegMeter(n_classes, cfg.ignore_index)

    def epoch_metrics(self, train: dict, val: dict) -> dict:
        return {
            "train_loss": train["loss"],
            "train_pixel_acc": train["pixel_acc"],
            "train_miou": train["miou"],
            "val_loss": val["loss"],
            "val_pixel_acc": val["pixel_acc"],
            "val_miou": val["miou"],
        }

    def epoch_line(self, record: dict) -> str:
        r = record
        return (
            f"train loss {r['train_loss']:.4f} mIoU {r['train_miou']:.2%}  val loss "
            f"{r['val_loss']:.4f} mIoU {r['val_miou']:.2%} pixel acc {r['val_pixel_acc']:.2%}"
        )

    def final_metrics(self, final: dict, classes: list[str]) -> dict:
        return {
            "miou": final["miou"],
            "pixel_acc": final["pixel_acc"],
            "iou": dict(zip(classes, final["iou"], strict=True)),
            "val_pixels": final["pixels"],
        }

    def summary(self, final: dict, classes: list[str]) -> str:
        return format_seg_metrics(final, classes)

    def plot(self, run: Run, final: dict) -> None:
        """The loss and mean IoU curves, and the first validation images with their true
        and predicted masks."""
        out = run.plan.out
        plot_curves(run.state.history, out, metric=("miou", ("train_miou", "val_miou")))
        shown = examples(run.model, run.loaders.val, run.context.device)
        plot_segmentation(*shown, run.data.classes, out / "segmentation.png")
