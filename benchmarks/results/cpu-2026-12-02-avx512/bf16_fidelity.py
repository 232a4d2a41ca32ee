"""Can any use of bfloat16 keep the fast path's contract (the float32 model's top-1 on at
least 99% of real crops, its top-5 set on at least 97%)? The real EfficientNet-Lite0 weights
on the test suite's 300 crops of the sample photos (tests/test_inference.py), with bfloat16
used in less and less of the network: where the error comes from decides whether a "mixed"
fast precision could keep it.

python benchmarks/results/cpu-2026-12-02-avx512/bf16_fidelity.py
"""

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from test_inference import _sample_crops  # noqa: E402

import nets  # noqa: E402

torch.set_grad_enabled(False)


class Bf16Conv(nn.Module):
    """A conv whose input and weights are rounded to bfloat16 (accumulated in float32 by
    oneDNN); its output is returned in float32, so nothing else in the network rounds."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.to(torch.bfloat16)).float()


def some_convs_in_bf16(model: nn.Module, which: Callable[[nn.Conv2d], bool]) -> nn.Module:
    folded = nets.optimize_for_inference(model, backend="eager").model
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and which(child):
                setattr(parent, name, Bf16Conv(child))
    return folded


def depthwise(c: nn.Conv2d) -> bool:
    return c.groups > 1


def agreement(fn: Callable, x: torch.Tensor, want: torch.Tensor) -> str:
    got = torch.cat([fn(b).float() for b in x.split(50)])
    top1 = (got.argmax(1) == want.argmax(1)).float().mean().item()
    same5 = got.topk(5).indices.sort(1).values == want.topk(5).indices.sort(1).values
    return f"{top1:.1%} | {same5.all(1).float().mean().item():.1%}"


model = nets.create_model("efficientnet_lite0", weights="imagenet").eval()
x = ((_sample_crops(300) - 0.5) / 0.5).contiguous(memory_format=torch.channels_last)
want = torch.cat([model(b) for b in x.split(50)])


def autocast(b: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model(b)


variants = {
    "fast path, float16 storage (the contract's precision)": nets.optimize_for_inference(
        model, dtype=torch.float16
    ),
    "fast path, bfloat16 storage": nets.optimize_for_inference(model, dtype=torch.bfloat16),
    "bf16 autocast": autocast,
    "every conv's input and weights in bf16, outputs float32": some_convs_in_bf16(
        model, lambda c: True
    ),
    "dense convs so, depthwise float32": some_convs_in_bf16(model, lambda c: not depthwise(c)),
    "1x1 convs only": some_convs_in_bf16(model, lambda c: c.kernel_size == (1, 1)),
    "depthwise convs only": some_convs_in_bf16(model, depthwise),
}
print("| where bfloat16 is used | top-1 kept | top-5 set kept |")
print("|---|---|---|")
for label, fn in variants.items():
    print(f"| {label} | {agreement(fn, x, want)} |", flush=True)
