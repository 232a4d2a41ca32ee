"""The two image folders the layout was measured on, cut from the sample photos (three
classes, one per photo): OUT/jpegs, 80 photos a class as 500x375 JPEGs at quality 90 (crops of
50-100% of the side, half mirrored), and OUT/gray48, 60 a class as 48x48 grayscale PNGs
(crops of 30-100%).

python benchmarks/results/train-step-layout-cpu-2026-12-02/make_folders.py /tmp
"""

import random
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[3]


def crop(im: Image.Image, rng: random.Random, smallest: float) -> Image.Image:
    s = rng.uniform(smallest, 1.0)
    w, h = int(im.width * s), int(im.height * s)
    x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
    return im.crop((x, y, x + w, y + h))


out = Path(sys.argv[1])
photos, gray = random.Random(0), random.Random(1)
for name in ("chelsea", "coffee", "rocket"):
    im = Image.open(ROOT / "samples" / f"{name}.jpg").convert("RGB")
    (out / "jpegs" / name).mkdir(parents=True, exist_ok=True)
    (out / "gray48" / name).mkdir(parents=True, exist_ok=True)
    for i in range(80):
        c = crop(im, photos, 0.5).resize((500, 375), Image.BICUBIC)
        (ImageOps.mirror(c) if i % 2 else c).save(out / "jpegs" / name / f"{i:03d}.jpg", quality=90)
    for i in range(60):
        c = crop(im.convert("L"), gray, 0.3).resize((48, 48), Image.BICUBIC)
        c.save(out / "gray48" / name / f"{i:03d}.png")
