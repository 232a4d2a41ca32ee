"""Segmentation masks as files: PNGs of class indices (palette PNGs in PASCAL VOC's colours
where written here), and ``classes.txt``, which names the index of each class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import TrainError

CLASSES_FILE = "classes.txt"
MASK_MODES = ("L", "P", "I", "I;16")  # one channel of integers: class indices


def voc_palette() -> list[int]:
    """PASCAL VOC's 256-colour palette (class 0 black, 255 = ignore a light grey), flat RGB:
    the colours every segmentation viewer expects of a palette mask."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def mask_image(mask: np.ndarray) -> Image.Image:
    """A 2-D array of class indices (< 256) as a palette PNG image."""
    image = Image.fromarray(mask.astype(np.uint8), "P")
    image.putpalette(voc_palette())
    return image


def read_mask(path: str) -> np.ndarray:
    """A mask file's class indices (H x W, int64); ``TrainError`` naming the file when it
    is not a one-channel image of indices."""
    try:
        with Image.open(path) as m:
            mode = m.mode
            if mode not in MASK_MODES:
                raise TrainError(
                    f"mask {path!r} is an {mode} image, not class indices: save it as a "
                    "palette PNG (mode P) or a one-channel PNG whose values are the classes"
                )
            return np.asarray(m, dtype=np.int64)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise TrainError(f"mask {path!r} cannot be read ({exc})") from None


def read_classes(root: Path) -> list[str]:
    path = root / CLASSES_FILE
    if not path.is_file():
        raise TrainError(
            f"segmentation data {str(root)!r} has no {CLASSES_FILE} (one class name per "
            "line; line k names the mask value k)"
        )
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if len(names) < 2:
        raise TrainError(f"{str(path)!r} names {len(names)} class(es); segmentation needs two")
    return names
