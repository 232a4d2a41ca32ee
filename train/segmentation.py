"""Segmentation's pieces: image/mask folders, joint augmentation, Dice + cross-entropy,
pixel accuracy and IoU from a confusion matrix (the mask files are ``train.masks``'s, the
generated ``shapes`` set ``train.shapes``'s; the trainer's task is ``train.tasks``').

A segmentation folder holds ``images/`` and ``masks/`` with matching file stems (or
``train/`` and ``val/`` (``valid/``, ``validation/``, ``test/``) that each hold them) and a
``classes.txt`` naming the classes, line k naming class index k. A mask is a PNG of class
indices ("L", "I" or palette "P" mode: a palette PNG stores the index per pixel, its colours
only show them); ``--ignore-index`` (255) marks unlabelled pixels. Every pair is checked
before training (sizes, modes, class indices), so a bad file stops the run in one line
before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

import weights as wts
from weights.preprocess import channel_stats

from .augment import Augment
from .datasets import IMAGE_EXTENSIONS, TRAIN_NAME, split_folders
from .errors import TrainError
from .masks import CLASSES_FILE, read_classes, read_mask
from .shapes import SHAPES, shapes_folder

SEGMENTATION = "segmentation"


# -- the data ------------------------------------------------------------------------------
@dataclass
class SegSplit:
    """``(image, mask)`` path pairs of both splits, the classes and the data's identity;
    ``counts`` and ``label_of`` read as ``DataSplit``'s do, so the engine's bookkeeping
    works unchanged."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    classes: list[str]
    fingerprint: str
    validation: str
    image_size: tuple[int, int]  # (width, height) of the first training image
    present: dict[str, list[int]]  # per split: images whose mask holds each class
    kind: str = SEGMENTATION

    def counts(self, which: str = "train") -> list[int]:
        """Images of the split whose mask holds each class."""
        return self.present[which]

    def label_of(self, which: str = "train") -> dict[str, int]:
        return {}  # no image is skipped: every pair was read before training


def _pairs(folder: Path) -> list[tuple[str, str]]:
    """``images/<stem>.*`` with ``masks/<stem>.png``; an image without its mask is an error."""
    images_dir, masks_dir = folder / "images", folder / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise TrainError(
                f"segmentation data {str(folder)!r} has no {d.name}/ folder (expected images/ "
                "and masks/ with matching file names)"
            )
    images = sorted(
        p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not images:
        raise TrainError(f"{str(images_dir)!r} holds no images")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png"}
    pairs = []
    for image in images:
        if image.stem not in masks:
            raise TrainError(
                f"image {str(image)!r} has no mask (expected {str(masks_dir / image.stem)}.png)"
            )
        pairs.append((str(image), str(masks[image.stem])))
    return pairs


def check_pair(image: str, mask: str, n_classes: int, ignore_index: int) -> np.ndarray:
    """The mask's indices after checking them against ``image`` and the classes."""
    try:
        with Image.open(image) as im:
            size = im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise TrainError(f"image {image!r} cannot be read ({exc})") from None
    values = read_mask(mask)
    if (values.shape[1], values.shape[0]) != size:
        raise TrainError(
            f"mask {mask!r} is {values.shape[1]}x{values.shape[0]} but its image {image!r} is "
            f"{size[0]}x{size[1]}"
        )
    bad = values[(values != ignore_index) & ((values < 0) | (values >= n_classes))]
    if bad.size:
        raise TrainError(
            f"mask {mask!r} holds class index {int(bad.max())}, but {CLASSES_FILE} names "
            f"{n_classes} classes (0..{n_classes - 1}; {ignore_index} = ignore)"
        )
    return values


def _checked(pairs: list, n: int, ignore_index: int) -> list[int]:
    """Check every pair; return how many masks hold each class."""
    counts = [0] * n
    for image, mask in pairs:
        values = np.unique(check_pair(image, mask, n, ignore_index))
        for v in values[values != ignore_index]:
            counts[int(v)] += 1
    return counts


def load_seg_data(
    dataset: str, *, val_split: float = 0.2, seed: int = 0, ignore_index: int = 255
) -> SegSplit:
    """Read a segmentation folder (or ``shapes``) and check every pair."""
    root = shapes_folder() if dataset == SHAPES else Path(dataset)
    if not root.is_dir():
        raise TrainError(
            f"data {dataset!r} is not a segmentation folder (images/, masks/, {CLASSES_FILE}) "
            f"nor {SHAPES!r}"
        )
    classes = read_classes(root)
    splits = split_folders(root)
    held = next((splits[n] for n in ("val", "valid", "validation", "test") if n in splits), None)
    if TRAIN_NAME in splits and held is not None:
        train, val = _pairs(splits[TRAIN_NAME]), _pairs(held)
        validation = f"{held.name}/"
    else:  # images/ and masks/ in DIR (or in train/ alone): split by fraction
        base = splits.get(TRAIN_NAME, root)
        pairs = _pairs(base)
        random.Random(seed).shuffle(pairs)
        n_val = min(max(1, round(len(pairs) * val_split)), len(pairs) - 1)
        if n_val < 1:
            raise TrainError(f"data {dataset!r} has one image: nothing left for validation")
        train, val = pairs[n_val:], pairs[:n_val]
        validation = f"{val_split:g} of the images (--val-split, seed {seed})"
    n = len(classes)
    present = {"train": _checked(train, n, ignore_index), "val": _checked(val, n, ignore_index)}
    with Image.open(train[0][0]) as im:
        size = im.size
    stamp = [(p, os.stat(p).st_mtime_ns) for pair in train + val for p in pair]
    fp = hashlib.sha256(repr((stamp, classes, ignore_index)).encode()).hexdigest()
    return SegSplit(train, val, classes, fp, validation, size, present)


def default_input_size(data: SegSplit) -> int:
    """The first training image's longer side, rounded up to a multiple of 32 (the deepest
    stride of most encoders): the images keep about their resolution."""
    side = max(data.image_size)
    return -(-side // 32) * 32


# -- augmentation and datasets -------------------------------------------------------------
def seg_augment(choice: str) -> Augment:
    """``--augment`` for segmentation; ``auto`` and ``standard``: a random resized crop to
    50-100% of the area and a flip (a smaller crop leaves too little of an object)."""
    if choice == "none":
        return Augment("none", "none", flip=False, reason="asked for")
    if choice == "light":
        return Augment("light", "affine", flip=False, reason="asked for")
    why = "segmentation: image and mask cropped and flipped together" if choice == "auto" else ""
    return Augment("standard", "resized-crop", 0.5, True, why or "asked for")


def joint_transform(
    p: wts.Preprocessing, size: int, augment: Augment | None, ignore_index: int, in_chans: int
) -> v2.Compose:
    """(``tv_tensors.Image``, ``tv_tensors.Mask``) -> (normalised float image, mask): v2
    draws one set of random parameters per call and applies it to both, resizing the mask
    with nearest neighbours; ``augment=None`` is evaluation (a resize to size x size, so no
    label is cropped away)."""
    if augment is None or augment.geometry == "none":
        geometry = [v2.Resize((size, size), antialias=True)]
    elif augment.geometry == "affine":
        # Pixels the affine brings in from outside are unlabelled, not background.
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}
        geometry = [
            v2.Resize((size, size), antialias=True),
            v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1), fill=fill),
        ]
    else:
        geometry = [
            v2.RandomResizedCrop((size, size), scale=(augment.min_scale, 1.0), antialias=True)
        ]
    if augment is not None and augment.flip:
        geometry.append(v2.RandomHorizontalFlip())
    mean, std = channel_stats(p, in_chans)
    return v2.Compose([
        *geometry,
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(mean=mean, std=std),  # images only: v2 passes masks through
    ])  # fmt: skip


def load_rgb(path: str, in_chans: int) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("L" if in_chans == 1 else "RGB")


class SegDataset(torch.utils.data.Dataset):
    """``(image, mask)`` pairs -> (normalised float CxSxS image, int64 SxS mask)."""

    def __init__(self, pairs: list[tuple[str, str]], transform: v2.Compose, in_chans: int):
        self.pairs = pairs
        self.transform = transform
        self.in_chans = in_chans

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = tv_tensors.Image(v2.functional.pil_to_tensor(load_rgb(image_path, self.in_chans)))
        mask = tv_tensors.Mask(torch.from_numpy(read_mask(mask_path)))
        x, y = self.transform(image, mask)
        return x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor)


def seg_collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stacked images and masks; no unreadable names (every pair was read before)."""
    xs, ys = zip(*batch, strict=True)
    return torch.stack(xs), torch.stack(ys), []


# -- loss ----------------------------------------------------------------------------------
def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int, smooth: float = 1.0
) -> torch.Tensor:
    """1 - the soft Dice score averaged over classes, on the labelled pixels only: softmax
    probabilities against the one-hot target, summed over the batch and the pixels."""
    n = logits.shape[1]
    valid = target != ignore_index  # (N, H, W)
    probs = logits.float().softmax(1) * valid.unsqueeze(1)
    onehot = F.one_hot(torch.where(valid, target, 0), n).permute(0, 3, 1, 2).float()
    onehot = onehot * valid.unsqueeze(1)
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1.0 - ((2.0 * inter + smooth) / (total + smooth)).mean()


class DiceCELoss(nn.Module):
    """Cross-entropy (unlabelled pixels ignored) + ``dice_weight`` x soft Dice loss."""

    def __init__(
        self, dice_weight: float = 0.5, ignore_index: int = 255, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not bool((target != self.ignore_index).any()):
            # A crop of unlabelled pixels only: no signal, and cross-entropy's mean over
            # no pixels would be NaN (and stop the run as a diverged loss).
            return logits.sum() * 0.0
        loss = F.cross_entropy(
            logits.float(), target, ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )  # fmt: skip
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target, self.ignore_index)
        return loss


# -- metrics -------------------------------------------------------------------------------
def iou_from_confusion(confusion: torch.Tensor) -> dict:
    """Pixel accuracy, per-class IoU (``None`` for a class in neither the truth nor the
    prediction) and their mean, from a (true x predicted) pixel confusion matrix."""
    confusion = confusion.double()
    hits = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - hits
    total = float(confusion.sum())
    iou = [float(h / u) if u > 0 else None for h, u in zip(hits, union, strict=True)]
    known = [v for v in iou if v is not None]
    return {
        "pixel_acc": float(hits.sum()) / total if total else 0.0,
        "iou": iou,
        "miou": sum(known) / len(known) if known else 0.0,
    }


class SegMeter:
    """The ``report.Meter`` of segmentation: a pixel confusion matrix (``torch.bincount``
    over the labelled pixels) and the summed loss, over an epoch."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.ignore_index = ignore_index
        self.loss_sum = 0.0
        self.count = 0  # images

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss_sum: float) -> None:
        pred = logits.detach().argmax(1).cpu()
        target = target.cpu()
        valid = target != self.ignore_index
        n = self.confusion.shape[0]
        index = target[valid] * n + pred[valid]
        self.confusion += torch.bincount(index, minlength=n * n).view(n, n)
        self.loss_sum += float(loss_sum)
        self.count += int(target.shape[0])

    def all_reduce(self) -> None:
        """Sum over the processes of a distributed run."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        extra = torch.tensor([self.loss_sum, self.count], dtype=torch.float64)
        t = torch.cat([self.confusion.flatten().double(), extra])
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        t = t.cpu()
        k = self.confusion.numel()
        self.confusion = t[:k].round().long().view_as(self.confusion)
        self.loss_sum, self.count = float(t[k]), int(t[k + 1])

    def result(self) -> dict:
        return {
            "loss": self.loss_sum / max(self.count, 1),
            **iou_from_confusion(self.confusion),
            "confusion": self.confusion.tolist(),
            "count": self.count,
            "pixels": int(self.confusion.sum()),
        }


@torch.no_grad()
def examples(
    model: nn.Module, val: torch.utils.data.DataLoader, device: torch.device, n: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n`` validation images (back in [0, 1] for display), their masks and the
    model's predictions."""
    x, y, _ = next(iter(val))
    x, y = x[:n], y[:n]
    pred = model(x.to(device)).argmax(1).cpu()
    mean, std = channel_stats(model.pretrained_cfg.preprocessing, model.in_chans)
    shown = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    return shown.clamp(0, 1), y, pred


def format_seg_metrics(metrics: dict, classes: list[str]) -> str:
    lines = [
        f"mean IoU {metrics['miou']:.2%}  pixel accuracy {metrics['pixel_acc']:.2%}  "
        f"({metrics['count']} images, {metrics['pixels']} labelled pixels)"
    ]
    width = max(len(c) for c in classes)
    for name, iou in zip(classes, metrics["iou"], strict=True):
        lines.append(f"  {name.ljust(width)}  IoU {'absent' if iou is None else f'{iou:.1%}'}")
    return "\n".join(lines)
