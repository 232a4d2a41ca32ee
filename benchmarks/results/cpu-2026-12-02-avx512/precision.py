"""The fast path in float32 and in bfloat16 (eager, and compiled by inductor) against
torchvision's eager float32 model, timed interleaved (benchmarks.timing), batch 8 at 224, on
a CPU that has bfloat16 instructions. bfloat16 does not keep the fast path's fidelity
contract (bf16_fidelity.py): these are the speeds a user who accepts that gets.

python benchmarks/results/cpu-2026-12-02-avx512/precision.py resnet50 mobilenet_v2 efficientnet_b0
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import nets  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks.models import build_pair  # noqa: E402
from benchmarks.timing import interleaved, ratio_stats  # noqa: E402

torch.set_grad_enabled(False)


def cell(r: dict) -> str:
    return f"{r['median']:.2f} ({r['p25']:.2f}-{r['p75']:.2f})"


def row(name: str) -> str:
    ours, theirs = build_pair(name)
    ours, theirs = ours.eval(), theirs.eval()
    x = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    fast = [
        nets.optimize_for_inference(ours, x),
        nets.optimize_for_inference(ours, x, dtype=torch.bfloat16),
        nets.optimize_for_inference(ours, x, dtype=torch.bfloat16, backend="compile"),
    ]
    runs = [lambda: theirs(x)] + [lambda f=f: f(x) for f in fast]
    tv, *samples = interleaved(runs, torch.device("cpu"), repeats=7)
    plans = ", ".join(f.plans[tuple(x.shape)] for f in fast)
    return "| " + " | ".join([name, *(cell(ratio_stats(s, tv)) for s in samples), plans]) + " |"


print(json.dumps(report.machine()))
print("| model | fast float32 / tv | fast bfloat16 / tv | compiled bfloat16 / tv | plans |")
print("|---|---|---|---|---|")
for name in sys.argv[1:]:
    print(row(name), flush=True)
