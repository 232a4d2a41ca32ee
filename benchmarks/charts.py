"""The two charts: accuracy against cost for every registered weights tag, and throughput
bars with the ratio to torchvision."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on the benchmark machines
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import nets  # noqa: E402
import weights  # noqa: E402
from common import atomic_write  # noqa: E402
from nets.cost import count_macs  # noqa: E402


def tag_points() -> list[dict]:
    """Reference top-1, GMACs at the tag's evaluation size and parameters of every
    registered weights tag (MACs counted on the meta device: no memory, no time)."""
    points = []
    for tag_name in weights.list_tags():
        tag = weights.get_tag(tag_name)
        if "_notop_" in tag_name:
            continue  # the same weights without their classifier: no accuracy of their own
        size = tag.preprocessing.input_size
        # Every tag's arch is registered (tests/nets/test_api.py): a failure here is a bug to see,
        # not a bubble to leave out quietly.
        with torch.device("meta"):
            model = nets.create_model(tag.arch)
        macs = count_macs(model, (1, model.in_chans, size, size))
        family = nets.get_spec(tag.arch).family
        point = {"tag": tag_name, "arch": tag.arch, "family": family, "top1": tag.top1}
        points.append(point | {"gmacs": macs / 1e9, "params": tag.num_params})
    return points


def accuracy_vs_cost(points: list[dict], path: Path) -> Path:
    """The course's bubble chart: top-1 against GMACs (log scale), area = parameters."""
    fig, ax = plt.subplots(figsize=(12, 8))
    families = sorted({p["family"] for p in points})
    cmap = plt.get_cmap("tab20")
    for i, fam in enumerate(families):
        pts = [p for p in points if p["family"] == fam]
        ax.scatter([p["gmacs"] for p in pts], [p["top1"] for p in pts],
                   s=[p["params"] / 1e6 * 8 for p in pts], alpha=0.5, color=cmap(i % 20),
                   edgecolors="black", linewidths=0.5, label=fam)  # fmt: skip
    for p in points:
        ax.annotate(p["tag"], (p["gmacs"], p["top1"]),
                    fontsize=6, ha="center", va="bottom", xytext=(0, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per image (at the weights' evaluation size, log scale)")
    ax.set_ylabel("reference ImageNet top-1 (%)")
    ax.set_title("Accuracy against cost, one bubble per weights tag (area = parameters)")
    ax.grid(True, which="both", alpha=0.3)
    legend = ax.legend(fontsize=7, loc="lower right", markerscale=0.4, ncol=2)
    for h in legend.legend_handles:
        h.set_sizes([30])
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=130))
    plt.close(fig)
    return path


def throughput_bars(rows: list[dict], path: Path) -> Path:
    """Inference throughput at batch N per network, horizontal bars (one group per network,
    so the chart grows downwards with the number of networks): torchvision eager where it
    has the network, then ours in each mode. Each of ours is labelled with the paired ratio
    of the table: to torchvision in the same mode (the fast path: to torchvision eager), or,
    for the fast path of a network torchvision lacks, to our own eager model ("e")."""
    rows = [r for r in rows if r.get("throughput") and not r.get("skipped")]
    models = list(dict.fromkeys(r["model"] for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    series = [("torchvision eager", None)] + [(f"ours {m}", m) for m in modes]
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.16 * len(models) * len(series)))
    cmap = plt.get_cmap("tab10")
    for j, (label, mode) in enumerate(series):
        ys, xs, notes = [], [], []
        for i, model in enumerate(models):
            by_mode = {r["mode"]: r for r in rows if r["model"] == model}
            eager = by_mode.get("eager") or next(iter(by_mode.values()))
            tv = eager.get("tv_throughput")
            value = tv if mode is None else by_mode.get(mode, {}).get("throughput")
            if value is None:
                continue
            ys.append(i + (j - (len(series) - 1) / 2) * height)
            xs.append(value)
            row = by_mode.get(mode, {})
            if row.get("ratio_throughput"):
                notes.append(f"{row['ratio_throughput']['median']:.2f}x")
            elif row.get("ratio_eager_throughput"):
                notes.append(f"{row['ratio_eager_throughput']['median']:.2f}x e")
            else:
                notes.append("")
        bars = ax.barh(ys, xs, height, label=label,
                       color="lightgray" if mode is None else cmap(j))  # fmt: skip
        for bar, note in zip(bars, notes, strict=True):
            if note:
                ax.annotate(note, (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                            va="center", fontsize=6, xytext=(2, 0),
                            textcoords="offset points")  # fmt: skip
    device = rows[0]["device"] if rows else ""
    batch = rows[0]["batch_size"] if rows else ""
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.invert_yaxis()  # the first network at the top, as in the table
    ax.set_xlabel(f"images/s, batch {batch} (log scale)")
    ax.set_xscale("log")
    ax.set_title(
        f"Inference throughput on {device}\n(labels: ours/torchvision, same mode; fast: "
        'against torchvision eager, or "e": against ours eager where torchvision lacks it)',
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    ax.margins(x=0.12)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=130))
    plt.close(fig)
    return path
