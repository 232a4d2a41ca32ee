"""``python -m train demo``: the transfer-learning demo on the bundled digits.

LeNet-5 trained from scratch, and EfficientNet-Lite0 with its real ImageNet weights as a
linear probe, then a table of both results.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from .config import TrainConfig
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
            f"{r['top5']:.2%}",
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
    from .datasets import _stratified_split, digits_image, load_digits_arrays

    images, labels = load_digits_arrays()
    items = [(i, int(labels[i])) for i in range(len(labels))]
    train, val = _stratified_split(items, 10, val_split, seed=0)
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


SHAPE_CLASSES = ("background", "circle", "square", "triangle")


def write_segmentation_folder(
    root: str | Path, n_train: int = 200, n_val: int = 50, size: int = 96, seed: int = 0
) -> Path:
    """A small segmentation set with exact masks: random crops of the sample photos as
    backgrounds, one to three filled circles, squares and triangles of random colours and
    sizes pasted on each, ``train/`` and ``val/`` (each ``images/`` and ``masks/``) and
    ``classes.txt`` (background, circle, square, triangle). The mask is drawn with the
    same shape as the image (no anti-aliasing: every pixel is exactly one class; a later
    shape covers an earlier one in both). Images are PNG, so no JPEG blur moves an edge."""
    import random

    from PIL import ImageDraw

    from .segmentation import CLASSES_FILE, mask_image

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
            draw_i, draw_m = ImageDraw.Draw(image), ImageDraw.Draw(mask)
            for _ in range(rng.randint(1, 3)):
                label = rng.randint(1, 3)
                r = rng.randint(size // 10, size // 4)
                cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
                colour = tuple(rng.randint(0, 255) for _ in range(3))
                box = (cx - r, cy - r, cx + r, cy + r)
                for draw, fill in ((draw_i, colour), (draw_m, label)):
                    if label == 1:
                        draw.ellipse(box, fill=fill)
                    elif label == 2:
                        draw.rectangle(box, fill=fill)
                    else:
                        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
            name = f"{split}{k:04d}.png"
            image.save(root / split / "images" / name)
            mask_image(np.asarray(mask)).save(root / split / "masks" / name)
    (root / CLASSES_FILE).write_text("\n".join(SHAPE_CLASSES) + "\n", encoding="utf-8")
    return root
