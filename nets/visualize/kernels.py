"""First-layer filters: the first convolution's kernels as tiles of a grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import nn

from .inputs import VisualizeError


@dataclass
class FilterGrid:
    """The first convolution's kernels as tiles.

    ``weight`` is the kernel tensor exactly as in the model (N, C, kh, kw). ``tiles`` (N, kh,
    kw, 3) are in [0, 1]: ``tiles[i] * (high[i] - low[i]) + low[i]`` gives kernel i back
    (channels last, RGB; grey tiles repeat their one channel). ``rows`` x ``cols`` is the grid.
    """

    weight: np.ndarray
    tiles: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rows: int
    cols: int
    mode: str  # "rgb" or "grey"
    note: str  # what a tile shows, in words
    name: str  # the conv's module name

    def image(self, pad: int = 1, background: float = 1.0) -> np.ndarray:
        """The tiles laid out row by row in one (H, W, 3) picture, ``pad`` pixels apart."""
        n, kh, kw, _ = self.tiles.shape
        out = np.full(
            (self.rows * (kh + pad) + pad, self.cols * (kw + pad) + pad, 3),
            background,
            dtype=np.float32,
        )
        for i in range(n):
            r, c = divmod(i, self.cols)
            y, x = pad + r * (kh + pad), pad + c * (kw + pad)
            out[y : y + kh, x : x + kw] = self.tiles[i]
        return out


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns for ``n`` tiles: an exact near-square factorisation when there is
    one (64 -> 8x8, 96 -> 8x12, 32 -> 4x8), else the square that holds them."""
    if n < 1:
        raise VisualizeError(f"no tiles to lay out (count {n})")
    side = math.isqrt(n - 1) + 1  # ceil(sqrt(n))
    for cols in range(side, 2 * side + 1):
        if n % cols == 0 and n // cols <= cols:
            return n // cols, cols
    return math.ceil(n / side), side


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The module the anatomy names ``first_conv``, checked to be a 2-D convolution."""
    arch = getattr(model, "arch", type(model).__name__)
    name = getattr(model, "first_conv", None)
    if name is None:  # not one of ours: the first Conv2d met in module order
        for sub_name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                return sub_name, module
        raise VisualizeError(f"model {arch!r} has no convolution: no first-layer filters to show")
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise VisualizeError(
            f"model {arch!r} has no conv stem: its first_conv {name!r} is not a module"
        ) from None
    if not isinstance(module, nn.Conv2d):
        raise VisualizeError(
            f"model {arch!r} has no conv stem: its first_conv {name!r} is a "
            f"{type(module).__name__}, expected a Conv2d"
        )
    return name, module


def filters(model: nn.Module, *, shared_scale: bool = False) -> FilterGrid:
    """The first convolution's kernels, each scaled to its own [min, max] (``shared_scale``:
    one range for all, so that kernel strengths compare).

    Three input channels are shown as RGB (Keras' BGR kernels were reversed when converted,
    so channel 0 is red for every weights source). A kernel that reads one channel (a grey
    network such as LeNet-5, or a depthwise first conv) is shown in grey; any other channel
    count as the mean over its channels, in grey. ``note`` says which.
    """
    name, conv = first_conv(model)
    w = conv.weight.detach().float().cpu().numpy()
    n, c, kh, kw = w.shape
    if c == 3:
        shown, mode = w.transpose(0, 2, 3, 1), "rgb"
        note = "RGB (input channels 0, 1, 2 as red, green, blue)"
    elif c == 1:
        shown, mode = np.repeat(w.transpose(0, 2, 3, 1), 3, axis=3), "grey"
        if conv.groups > 1:
            note = f"depthwise: each kernel reads one of {conv.in_channels} input channels (grey)"
        else:
            note = "one input channel (grey)"
    else:
        mean = w.mean(axis=1)[..., None]
        shown, mode = np.repeat(mean, 3, axis=3), "grey"
        note = f"{c} input channels per kernel: their mean (grey)"
    if shared_scale:
        low = np.full(n, shown.min(), dtype=np.float32)
        high = np.full(n, shown.max(), dtype=np.float32)
    else:
        low = shown.reshape(n, -1).min(axis=1)
        high = shown.reshape(n, -1).max(axis=1)
    flat = high <= low
    # A constant kernel has no range; centre it on mid-grey so the tile still inverts exactly.
    low = np.where(flat, low - 0.5, low).astype(np.float32)
    high = np.where(flat, low + 1.0, high).astype(np.float32)
    tiles = (shown - low[:, None, None, None]) / (high - low)[:, None, None, None]
    note += "; one range for all" if shared_scale else "; each scaled to its own range"
    rows, cols = grid_shape(n)
    return FilterGrid(w, tiles.astype(np.float32), low, high, rows, cols, mode, note, name)
