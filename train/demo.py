"""``python -m train demo``: the transfer-learning demo on the bundled digits.

LeNet-5 trained from scratch, and EfficientNet-Lite0 with its real ImageNet weights as a
linear probe, then a table of both results.
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from .config import TrainConfig
from .datasets import digits_image, load_digits_arrays, stratified_split
from .engine import fit

RUNS = (
    ("lenet5", "scratch", {}),
    ("efficientnet_lite0", "linear-probe", {}),
)


def format_table(rows: list[dict]) -> str:
    header = ("model", "strategy", "weights", "epochs", "val top-1", "val top-5", "time")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        cells = (
            r["model"],
            r["strategy"],
            r["weights"] or "none",
            f"{r['epochs_run']} (best {r['best_epoch']})",
            f"{r['top1']:.2%}",
            f"{r['top5']:.2%}" if "top5" in r else "-",  # digits: 10 classes, always there
            f"{r['seconds']:.0f} s",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(out: str = "runs/demo", progress: bool = True, **overrides) -> list[dict]:
    rows = []
    for model, strategy, extra in RUNS:
        print(f"\n== {model}: {strategy} on digits ==", flush=True)
        t0 = time.time()
        cfg = TrainConfig(
            model=model,
            strategy=strategy,
            data="digits",
            out=str(Path(out) / f"{model}-{strategy}"),
            progress=progress,
            overwrite=True,  # the demo is a fixed recipe: running it again replaces it
            **{**extra, **overrides},
        )
        res = fit(cfg)
        res["seconds"] = time.time() - t0
        rows.append(res)
    print("\n" + format_table(rows))
    return rows


def write_digits_folder(root: str | Path, size: int = 28, val_split: float = 0.2) -> Path:
    """The bundled 8x8 digits as a folder of ``size`` x ``size`` grayscale PNGs, ``train/``
    beside ``val/`` (a stratified ``val_split``, seed 0), one sub-folder per digit: the
    shape of a real handwritten-digit folder, for the README's folder figures and tests."""
    images, labels = load_digits_arrays()
    items = [(i, int(labels[i])) for i in range(len(labels))]
    train, val = stratified_split(items, 10, val_split, seed=0)
    root = Path(root)
    for split, part in (("train", train), ("val", val)):
        for i, label in part:
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            image = digits_image(images[i]).resize((size, size), Image.BICUBIC)
            image.save(folder / f"{i:04d}.png")
    return root


def write_photo_folder(root: str | Path, per_class: int = 80, seed: int = 0) -> Path:
    """A small photo folder: random crops of the three sample photos (one class each),
    resized to 500x375 JPEGs; for trying the trainer on photos on a CPU."""
    import random

    rng = random.Random(seed)
    samples = sorted(Path(__file__).resolve().parent.parent.glob("samples/*.jpg"))
    if not samples:
        raise FileNotFoundError("samples/*.jpg are not in this checkout")
    root = Path(root)
    for path in samples:
        photo = Image.open(path).convert("RGB")
        w, h = photo.size
        folder = root / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            crop = photo.crop((x, y, x + cw, y + ch)).resize((500, 375), Image.BILINEAR)
            crop.save(folder / f"{k:03d}.jpg", quality=90)
    return root
