"""PNG pictures of what ``kernels.py`` and ``maps.py`` compute, drawn with matplotlib (Agg).

No pyplot: a notebook's backend and global figure state are left alone. Every picture is
written atomically, and its folder checked before any work, so a failure leaves nothing
half-written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

import common

from .inputs import ImageLike, prepare_image
from .kernels import filters
from .loading import weights_label
from .maps import ClassMap, feature_maps, grad_cam

DPI = 100


def check_output(path: str | os.PathLike) -> Path:
    """Raise ``common.WriteError`` (one line) unless ``path`` is a ``.png`` in a folder
    that exists and can be written. Called before any model is run."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise common.WriteError(f"output {str(path)!r} must be a .png file")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise common.WriteError(f"cannot write {str(path)!r}: folder {str(folder)!r} {what}")
    if path.is_dir():
        raise common.WriteError(f"output {str(path)!r} is a folder, expected a .png file")
    common.check_writable(folder, "output folder")
    return path


def _figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    # A tight box: the panels' aspect decides the figure's, not a guessed size.
    common.atomic_write(
        path,
        lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.05),
    )
    return path


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def save_filters(
    models: nn.Module | Sequence[nn.Module],
    path: str | os.PathLike,
    *,
    shared_scale: bool = False,
    titles: Sequence[str] | None = None,
) -> Path:
    """One panel per model, side by side: its first conv's kernels as a grid of tiles."""
    path = check_output(path)
    models = [models] if isinstance(models, nn.Module) else list(models)
    grids = [filters(m, shared_scale=shared_scale) for m in models]
    fig = _figure((3.6 * len(grids), 4.3))
    axes = np.atleast_1d(fig.subplots(1, len(grids)))
    for i, (ax, model, grid) in enumerate(zip(axes, models, grids, strict=True)):
        n, c, kh, kw = grid.weight.shape
        title = titles[i] if titles else f"{model.arch} ({weights_label(model)})"
        ax.imshow(grid.image(), interpolation="nearest")
        ax.set_title(f"{title}\n{n} filters {kh}x{kw}x{c}", fontsize=9)
        ax.set_xlabel(grid.note.replace("; ", "\n"), fontsize=7)
        _off(ax)
    fig.tight_layout()
    return _save(fig, path)


def save_feature_maps(
    model: nn.Module,
    image: ImageLike,
    path: str | os.PathLike,
    *,
    top_k: int = 8,
    stages: Sequence[int] | None = None,
    crop: bool = True,
) -> Path:
    """One row per stage: the input, then its ``top_k`` strongest channels (each map on its
    own colour scale), labelled with the stage's stride and channel count."""
    path = check_output(path)
    rows = feature_maps(model, image, top_k=top_k, stages=stages, crop=crop)
    rgb = prepare_image(model, image, crop=crop).rgb
    cols = 1 + max(len(r.indices) for r in rows)
    fig = _figure((1.1 * cols + 0.4, 1.15 * len(rows) + 0.5))
    axes = np.asarray(fig.subplots(len(rows), cols, squeeze=False))
    for r, row in enumerate(rows):
        h, w = row.maps.shape[1:]
        axes[r, 0].imshow(rgb)
        axes[r, 0].set_ylabel(
            f"stage {row.stage}\nstride {row.reduction}, {h}x{w}\n{row.channels} ch", fontsize=8
        )
        for j in range(1, cols):
            ax = axes[r, j]
            _off(ax)
            if j - 1 < len(row.indices):
                ax.imshow(row.maps[j - 1], cmap="viridis", interpolation="nearest")
                ax.set_title(f"ch {row.indices[j - 1]}", fontsize=7, pad=2)
                if h * w == 1:  # one value has no colour scale of its own: print it
                    value = float(row.maps[j - 1, 0, 0])
                    ax.text(0, 0, f"{value:.3g}", ha="center", va="center", color="w", fontsize=8)
        _off(axes[r, 0])
    fig.suptitle(
        f"{model.arch} ({weights_label(model)}): top {top_k} channels by mean activation",
        fontsize=9,
    )
    fig.tight_layout()
    return _save(fig, path)


def save_grad_cam(
    model: nn.Module,
    image: ImageLike,
    path: str | os.PathLike,
    *,
    target: int | str | None = None,
    stage: int = -1,
    top_k: int = 3,
    crop: bool = True,
    alpha: float = 0.5,
    maps: Sequence[ClassMap] | None = None,
) -> Path:
    """The input, then Grad-CAM for each class overlaid on it, titled with the class name
    and its probability. ``maps`` from an earlier ``grad_cam`` call (same image and
    ``crop``) are drawn as they are instead of being computed again."""
    path = check_output(path)
    if maps is None:
        maps = grad_cam(model, image, target, stage, top_k=top_k, crop=crop)
    rgb = prepare_image(model, image, crop=crop).rgb
    h, w = rgb.shape[:2]
    fig = _figure((2.8 * (1 + len(maps)) * w / max(h, w) + 0.3, 3.2 * h / max(h, w) + 0.4))
    axes = np.atleast_1d(fig.subplots(1, 1 + len(maps)))
    axes[0].imshow(rgb)
    axes[0].set_title(f"{model.arch}\n{weights_label(model)}", fontsize=8)
    _off(axes[0])
    for ax, cam in zip(axes[1:], maps, strict=True):
        ax.imshow(rgb)
        ax.imshow(cam.mask, cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax.set_title(f"{cam.name}\n{cam.probability:.1%} (stage {cam.stage})", fontsize=8)
        _off(ax)
    fig.tight_layout()
    return _save(fig, path)
