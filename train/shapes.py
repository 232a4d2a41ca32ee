"""``--data shapes``: a generated segmentation set with exact masks, written once into the
weights cache (or anywhere with ``write_segmentation_folder``)."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import weights as wts

from .masks import CLASSES_FILE, mask_image

SHAPES = "shapes"  # the --data value
SHAPES_VERSION = 1  # bump when the generator changes: the cached folder is then rewritten
SHAPE_CLASSES = ("background", "circle", "square", "triangle")


def _draw_shape(draws: tuple, rng: random.Random, size: int) -> None:
    """One filled circle, square or triangle of a random colour and size, drawn alike on
    the image and, in its class index, on the mask."""
    label = rng.randint(1, 3)
    r = rng.randint(size // 10, size // 4)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    colour = tuple(rng.randint(0, 255) for _ in range(3))
    box = (cx - r, cy - r, cx + r, cy + r)
    for draw, fill in zip(draws, (colour, label), strict=True):
        if label == 1:
            draw.ellipse(box, fill=fill)
        elif label == 2:
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)


def write_segmentation_folder(
    root: str | Path, n_train: int = 200, n_val: int = 50, size: int = 96, seed: int = 0
) -> Path:
    """A small segmentation set with exact masks: random crops of the sample photos as
    backgrounds, one to three filled circles, squares and triangles of random colours and
    sizes pasted on each, ``train/`` and ``val/`` (each ``images/`` and ``masks/``) and
    ``classes.txt`` (background, circle, square, triangle). The mask is drawn with the
    same shape as the image (no anti-aliasing: every pixel is exactly one class; a later
    shape covers an earlier one in both). Images are PNG, so no JPEG blur moves an edge."""
    rng = random.Random(seed)
    samples = sorted(Path(__file__).resolve().parent.parent.glob("samples/*.jpg"))
    if not samples:
        raise FileNotFoundError("samples/*.jpg are not in this checkout")
    photos = [Image.open(p).convert("RGB") for p in samples]
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for k in range(n):
            photo = photos[rng.randrange(len(photos))]
            w, h = photo.size
            side = int(min(w, h) * rng.uniform(0.3, 0.9))
            x, y = rng.randint(0, w - side), rng.randint(0, h - side)
            image = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
            mask = Image.new("L", (size, size), 0)
            draws = (ImageDraw.Draw(image), ImageDraw.Draw(mask))
            for _ in range(rng.randint(1, 3)):
                _draw_shape(draws, rng, size)
            name = f"{split}{k:04d}.png"
            image.save(root / split / "images" / name)
            mask_image(np.asarray(mask)).save(root / split / "masks" / name)
    (root / CLASSES_FILE).write_text("\n".join(SHAPE_CLASSES) + "\n", encoding="utf-8")
    return root


def shapes_folder() -> Path:
    """``--data shapes``: the generated set, written once into the weights cache."""
    root = Path(wts.cache_dir()) / "datasets" / f"shapes-v{SHAPES_VERSION}"
    if (root / CLASSES_FILE).is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then renamed into place: an interrupted run never leaves half a set.
    tmp = Path(tempfile.mkdtemp(prefix=".shapes-", dir=root.parent))
    try:
        write_segmentation_folder(tmp)
        os.replace(tmp, root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / CLASSES_FILE).is_file():  # another process may have won the race
            raise
    print(f"generated the shapes segmentation set in {root}", flush=True)
    return root
