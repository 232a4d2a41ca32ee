"""Reading images for classification: any PIL-readable file becomes an 8-bit RGB image."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert grayscale, RGBA, palette, CMYK and 16/32-bit images to 8-bit RGB.

    Transparent pixels are composited on white; 16-bit and float images are rescaled
    to 0..255 rather than clipped (PIL's own conversion clips 16-bit values at 255).
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16"):
            a = a / 257.0  # 65535 -> 255
        else:
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" or image.mode in ("LA", "PA", "RGBA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` as an RGB image, or raise ImageError with a one-line reason."""
    name = str(path)
    if not os.path.isfile(name):
        raise ImageError(f"{name!r} does not exist or is not a file")
    try:
        with Image.open(name) as image:
            image.load()  # decode now, so a truncated file fails here and not later
            return to_rgb(image)
    except UnidentifiedImageError:
        raise ImageError(f"{name!r} is not an image (PIL cannot identify its format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name!r} is truncated or corrupted ({exc})") from None
