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
        try:
            with torch.device("meta"):
                model = nets.create_model(tag.arch)
            macs = count_macs(model, (1, model.in_chans, size, size))
        except Exception:  # noqa: BLE001 - a tag whose arch is not registered here
            continue
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
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def throughput_bars(rows: list[dict], path: Path) -> Path:
    """Inference throughput at batch N per network: ours in each mode beside torchvision
    eager, each bar labelled with its ratio to torchvision eager."""
    rows = [r for r in rows if r.get("throughput") and not r.get("skipped")]
    models = list(dict.fromkeys(r["model"] for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    series = [("torchvision eager", None)] + [(f"ours {m}", m) for m in modes]
    fig, ax = plt.subplots(figsize=(max(6, 1.0 + 1.6 * len(models) * len(series) / 3), 5))
    width = 0.8 / len(series)
    cmap = plt.get_cmap("tab10")
    for j, (label, mode) in enumerate(series):
        xs, ys, ratios = [], [], []
        for i, model in enumerate(models):
            by_mode = {r["mode"]: r for r in rows if r["model"] == model}
            eager = by_mode.get("eager") or next(iter(by_mode.values()))
            tv = eager.get("tv_throughput")
            value = tv if mode is None else by_mode.get(mode, {}).get("throughput")
            if value is None:
                continue
            xs.append(i + (j - (len(series) - 1) / 2) * width)
            ys.append(value)
            ratios.append(value / tv if tv else None)
        bars = ax.bar(xs, ys, width, label=label, color="lightgray" if mode is None else cmap(j))
        for bar, ratio in zip(bars, ratios, strict=True):
            if ratio is not None and mode is not None:
                ax.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7, rotation=90,
                            xytext=(0, 2), textcoords="offset points")  # fmt: skip
    device = rows[0]["device"] if rows else ""
    batch = rows[0]["batch_size"] if rows else ""
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    ax.set_ylabel(f"images/s, batch {batch}")
    ax.set_yscale("log")
    ax.set_title(f"Inference throughput on {device} (labels: ratio to torchvision eager)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
