"""``python -m train demo``: the transfer-learning demo on the bundled digits.

LeNet-5 trained from scratch, and EfficientNet-Lite0 with its real ImageNet weights as a
linear probe, then a table of both results.
"""

from __future__ import annotations

import time
from pathlib import Path

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
