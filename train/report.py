"""Metrics (top-1, top-5 where there are more than 5 classes, per-class accuracy, confusion
matrix), the JSON-lines log, plots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from common import atomic_write, atomic_write_text

from .masks import voc_palette

# The files a run writes besides its checkpoints and plots.
LOG = "log.jsonl"  # one JSON line per epoch
METRICS = "metrics.json"  # the final summary

TOP_K = 5  # the top-k accuracy reported beside top-1


def reports_top_k(num_classes: int) -> bool:
    """Whether top-5 means anything: with 5 classes or fewer every image's label is among
    the top 5, and a top-5 of 100% would be reported for any model."""
    return num_classes > TOP_K


class Meter:
    """Accumulates a confusion matrix, top-5 hits and the summed loss over batches.
    ``result`` has ``top5`` only for more than 5 classes (``reports_top_k``)."""

    def __init__(self, num_classes: int) -> None:
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.top5 = 0
        self.loss_sum = 0.0
        self.count = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss_sum: float) -> None:
        logits, target = logits.detach().float().cpu(), target.cpu()
        pred = logits.argmax(1)
        n = self.confusion.shape[0]
        self.confusion += torch.bincount(target * n + pred, minlength=n * n).view(n, n)
        k = min(TOP_K, n)
        self.top5 += int((logits.topk(k, 1).indices == target[:, None]).any(1).sum())
        self.loss_sum += float(loss_sum)
        self.count += int(target.numel())

    def all_reduce(self) -> None:
        """Sum over the processes of a distributed run."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        t = torch.cat(
            [
                self.confusion.flatten().double(),
                torch.tensor([self.top5, self.loss_sum, self.count], dtype=torch.float64),
            ]
        )
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        t = t.cpu()
        n = self.confusion.numel()
        self.confusion = t[:n].round().long().view_as(self.confusion)
        self.top5, self.loss_sum, self.count = int(t[n]), float(t[n + 1]), int(t[n + 2])

    def result(self) -> dict:
        total = max(self.count, 1)
        rows = self.confusion.sum(1).tolist()
        hits = self.confusion.diag().tolist()
        top_k = {"top5": self.top5 / total} if reports_top_k(len(rows)) else {}
        return {
            "loss": self.loss_sum / total,
            "top1": float(self.confusion.diag().sum()) / total,
            **top_k,
            # None for a class without images: its accuracy is unknown, not 0%.
            "per_class": [h / n if n else None for h, n in zip(hits, rows, strict=True)],
            "confusion": self.confusion.tolist(),
            "count": self.count,
        }


def write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def append_jsonl(path: str | os.PathLike, obj: object) -> None:
    """Add one line to a JSON-lines log. The log is a line per epoch, so rewriting it whole
    (atomically) costs nothing, and a crash mid-write never leaves half a line."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(obj) + "\n")


def _figure(figsize: tuple[float, float]):
    """A figure drawn by the Agg canvas directly: pyplot and the global backend (a
    notebook's inline plots) are left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(
    history: list[dict],
    out: Path,
    metric: tuple[str, tuple[str, str]] = ("accuracy", ("train_top1", "val_top1")),
) -> list[Path]:
    """loss.png and ``<metric>.png`` (accuracy.png; miou.png for segmentation) from the
    per-epoch history."""
    epochs = [h["epoch"] for h in history]
    paths = []
    for name, keys in (("loss", ("train_loss", "val_loss")), metric):
        fig = _figure((5, 3.5))
        ax = fig.subplots()
        for key in keys:
            ax.plot(epochs, [h.get(key) for h in history], marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / f"{name}.png"
        _save_fig(fig, path)
        paths.append(path)
    return paths


def plot_confusion(confusion: list[list[int]], classes: list[str], path: Path) -> Path:
    n = len(classes)
    size = min(12, 2 + 0.45 * n)
    fig = _figure((size, size))
    ax = fig.subplots()
    ax.imshow(confusion, cmap="Blues")
    if n <= 30:
        ax.set_xticks(range(n), classes, rotation=90)
        ax.set_yticks(range(n), classes)
        for i in range(n):
            for j in range(n):
                if confusion[i][j]:
                    ax.text(j, i, str(confusion[i][j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    _save_fig(fig, path)
    return path


def plot_segmentation(
    images: torch.Tensor,
    truth: torch.Tensor,
    pred: torch.Tensor,
    classes: list[str],
    path: Path,
    ignore_index: int = 255,
) -> Path:
    """One row per image: the image, the ground truth and the prediction overlaid on it in
    the palette's class colours (half opaque; unlabelled pixels left clear)."""
    import numpy as np
    from matplotlib.patches import Patch

    colours = np.array(voc_palette(), dtype=np.float32).reshape(256, 3) / 255.0
    background = classes[0].lower() in ("background", "_background_", "bg")
    n = len(images)
    fig = _figure((7.5, 2.5 * n + 0.6))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        img = images[i].permute(1, 2, 0).numpy()
        img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
        for j, (title, mask) in enumerate((("image", None), ("truth", truth[i]),
                                           ("prediction", pred[i]))):  # fmt: skip
            shown = img
            if mask is not None:
                m = mask.numpy().clip(0, 255)
                # Unlabelled pixels, and a class named background, stay clear.
                clear = (m == ignore_index) | ((m == 0) & background)
                alpha = np.where(clear, 0.0, 0.5)[..., None]
                shown = img * (1 - alpha) + colours[m] * alpha
            axes[i][j].imshow(shown)
            axes[i][j].set_axis_off()
            if i == 0:
                axes[i][j].set_title(title)
    handles = [Patch(color=colours[k], label=c) for k, c in enumerate(classes[:20])]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save_fig(fig, path)
    return path


def _save_fig(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def format_metrics(
    metrics: dict, classes: list[str], *, empty: str = "no validation images"
) -> str:
    top5 = f"  top-5 {metrics['top5']:.2%}" if "top5" in metrics else ""
    lines = [f"top-1 {metrics['top1']:.2%}{top5}  ({metrics['count']} images)"]
    width = max(len(c) for c in classes)
    for name, acc in zip(classes, metrics["per_class"], strict=True):
        lines.append(f"  {name.ljust(width)}  {empty if acc is None else f'{acc:.1%}'}")
    return "\n".join(lines)
