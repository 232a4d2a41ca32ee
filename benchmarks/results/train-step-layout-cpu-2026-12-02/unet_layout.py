"""A U-Net's training step (forward, cross-entropy, backward, SGD) with the model and input
contiguous and in channels_last, timed interleaved (benchmarks.timing, 7 pairs).

python benchmarks/results/train-step-layout-cpu-2026-12-02/unet_layout.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import nets  # noqa: E402
from benchmarks.timing import interleaved, ratio_stats  # noqa: E402


def step_fn(name: str, size: int, batch: int, channels_last: bool):  # noqa: ANN201
    torch.manual_seed(0)
    model = nets.create_model(name, num_classes=3).train()
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 3, (batch, size, size))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


for name, size, batch in [("unet", 64, 8), ("unet_efficientnet_lite0", 128, 8),
                          ("unet_resnet34", 128, 8)]:  # fmt: skip
    fns = [step_fn(name, size, batch, cl) for cl in (False, True)]
    off, on = interleaved(fns, torch.device("cpu"), repeats=7)
    r = ratio_stats(on, off)
    print(f"| {name} | segmentation | scratch | ({batch}, 3, {size}, {size}) "
          f"| {r['median']:.2f} ({r['p25']:.2f}-{r['p75']:.2f}) |", flush=True)  # fmt: skip
