"""Training augmentation: the explicit choices, and ``--augment auto``'s rule, which looks at
the data (image size, grayscale or colour, images per class) and says why.

The trainer's images travel as uint8 CxHxW tensors (decoded once, from memory or from
disk); the geometry (crop, affine, flip) runs per sample on them, each sample drawing its
own random parameters, and ``batch_normalize`` turns a whole batch into normalised float32
at once.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2

import weights as wts
from weights.preprocess import INTERPOLATION, channel_stats

from .errors import TrainError

# The rule's thresholds. A short side of at most 64 px covers the classic small-image sets
# (MNIST 28, CIFAR and SVHN 32, Tiny ImageNet 64): there a crop down to a quarter of the
# area keeps a few pixels of a glyph, so small images get a small affine instead.
SMALL_SIDE = 64
# At a thousand images per class and more (ImageNet's 1,300) the crops may go down to 8% of
# the area, as ImageNet training does; smaller sets keep at least a quarter, as today's
# standard does, so that the object stays in the crop.
MANY_PER_CLASS = 1000
SAMPLE = 48  # images whose headers are read; a header costs well under a millisecond
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class ImageStats:
    """What a sample of the images' headers says (no pixel is decoded)."""

    sampled: int
    width: int  # median
    height: int  # median
    grayscale: bool  # every sampled image is grayscale
    mean_pixels: float  # mean of width x height, for the memory estimate

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    def describe(self) -> str:
        kind = "grayscale" if self.grayscale else "colour"
        return f"{self.width}x{self.height} {kind} (median of {self.sampled} sampled)"


def _is_gray(image: Image.Image) -> bool:
    if image.mode in GRAY_MODES:
        return True
    if image.mode == "P":  # a palette PNG is grayscale when every entry is a grey
        pal = image.getpalette() or []
        return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
    return False


def inspect_images(items: list[tuple[object, int]]) -> ImageStats | None:
    """Read the headers of up to ``SAMPLE`` images spread over ``items`` (which run class by
    class): the size and mode, without decoding. ``None`` when none could be read (the
    loader then reports them); bundled-digit arrays are 8x8 grayscale."""
    if not items:
        return None
    step = max(1, len(items) // SAMPLE)
    sizes, gray = [], []
    for item, _ in items[::step][:SAMPLE]:
        if not isinstance(item, str | bytes) and hasattr(item, "shape"):  # a digits array
            h, w = item.shape[:2]
            sizes.append((w, h))
            gray.append(True)
            continue
        try:
            with Image.open(item) as image:
                sizes.append(image.size)
                gray.append(_is_gray(image))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # unreadable: skipped and counted by the loader, not here
    if not sizes:
        return None
    return ImageStats(
        sampled=len(sizes),
        width=int(statistics.median(w for w, _ in sizes)),
        height=int(statistics.median(h for _, h in sizes)),
        grayscale=all(gray),
        mean_pixels=sum(w * h for w, h in sizes) / len(sizes),
    )


@dataclass(frozen=True)
class Augment:
    """One training augmentation: the geometry (``"resized-crop"``, ``"affine"`` or
    ``"none"``), its crop's smallest share of the area, and whether it flips."""

    name: str
    geometry: str
    min_scale: float = 0.25
    flip: bool = True
    reason: str = "asked for"

    def describe(self) -> str:
        if self.geometry == "none":
            return f"{self.name} (resize and centre crop only)"
        if self.geometry == "affine":
            what = "resize, affine +-10 deg, +-8% shift, 0.9-1.1 scale, centre crop"
        else:
            what = f"random resized crop to {self.min_scale:.0%}-100% of the area"
        return f"{self.name} ({what}; {'horizontal flip' if self.flip else 'no flip'})"


# The explicit choices, as they have always been.
EXPLICIT = {
    "standard": Augment("standard", "resized-crop", 0.25, True),
    "light": Augment("light", "affine", flip=False),  # digits and text change when mirrored
    "none": Augment("none", "none", flip=False),
}


def choose_augment(stats: ImageStats | None, per_class: int) -> Augment:
    """``--augment auto``: from the sampled images and the smallest class's training size.

    - small images (short side <= ``SMALL_SIDE``): the light affine, no crop down to a
      fraction of the area; larger ones: a random resized crop;
    - grayscale: no horizontal flip (a mirrored 2, 5 or letter is another symbol, and
      scans and X-rays have a side); colour: flipped;
    - the crop goes down to 8% of the area from ``MANY_PER_CLASS`` images per class up,
      else to 25%.
    """
    if stats is None:
        return Augment("standard", "resized-crop", 0.25, True,
                       "no image header could be read, so the photo default")  # fmt: skip
    small = stats.short_side <= SMALL_SIDE
    flip = not stats.grayscale
    seen = f"images are {stats.describe()}, {per_class} in the smallest class"
    if small:
        name = "light" if not flip else "light + flip"
        flips = "colour: flipped" if flip else "grayscale: no flip"
        why = f"small images get an affine, not a crop to a fraction of the area; {flips}; {seen}"
        return Augment(name, "affine", flip=flip, reason=why)
    scale = 0.08 if per_class >= MANY_PER_CLASS else 0.25
    name = "standard" + ("" if flip else ", no flip") + (", crops to 8%" if scale < 0.25 else "")
    why = (
        f"{'grayscale: no flip; ' if not flip else ''}"
        f"crops down to {scale:.0%} ({'>=' if scale == 0.08 else '<'} {MANY_PER_CLASS} "
        f"images per class); {seen}"
    )
    return Augment(name, "resized-crop", scale, flip, why)


def resolve_augment(choice: str, stats: ImageStats | None, per_class: int) -> Augment:
    """The augmentation ``--augment`` names; ``auto`` decides from ``stats`` (of
    ``inspect_images``) and the smallest class's training size."""
    if choice == "auto":
        return choose_augment(stats, per_class)
    if choice not in EXPLICIT:
        raise TrainError(f"unknown augmentation {choice!r}")
    return EXPLICIT[choice]


def train_geometry(p: wts.Preprocessing, augment: Augment) -> v2.Compose:
    """uint8 CxHxW -> uint8 CxHxW at the input size, with ``augment``'s random geometry."""
    if augment.geometry == "none":
        return eval_geometry(p)
    interp = INTERPOLATION[p.interpolation]
    flip = [v2.RandomHorizontalFlip()] if augment.flip else []
    if augment.geometry == "affine":
        # On a PIL image: v2's tensor affine measured 5x slower than PIL's on the CPU
        # (516 against 104 us for 32x32); the round trip through PIL costs far less.
        return v2.Compose([
            v2.ToPILImage(),
            v2.Resize(p.resize_size, interpolation=interp, antialias=True),
            v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1)),
            v2.CenterCrop(p.input_size),
            *flip,
            v2.PILToTensor(),
        ])  # fmt: skip
    # On the tensor: measured faster than on PIL for 500x375 photos (2.2 against 5.4 ms).
    return v2.Compose([
        v2.RandomResizedCrop(p.input_size, scale=(augment.min_scale, 1.0), interpolation=interp,
                             antialias=True),
        *flip,
    ])  # fmt: skip


def eval_geometry(p: wts.Preprocessing) -> v2.Compose:
    """uint8 CxHxW -> uint8 CxHxW: ``weights.transforms``' resize and centre crop, on the
    same tensor it makes, so validation sees what ``train eval`` and ``predict`` see."""
    interp = INTERPOLATION[p.interpolation]
    resize = v2.Resize(p.resize_size, interpolation=interp, antialias=True)
    return v2.Compose([resize, v2.CenterCrop(p.input_size)])


class BatchNormalize:
    """A uint8 NxCxHxW batch -> float32 in [0, 1], normalised by the weights' statistics:
    once per batch, not per sample (per sample it cost more than the geometry)."""

    def __init__(self, p: wts.Preprocessing, in_chans: int) -> None:
        mean, std = channel_stats(p, in_chans)
        self.transform = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=mean, std=std)]
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.transform(batch)
