"""Cost counting: multiply-accumulates (MACs) and parameters, per part and in total.

MACs come from PyTorch's own FLOP counter (``torch.utils.flop_counter``), which counts a
multiply-add as two FLOPs; we report MACs = FLOPs / 2, the unit of the papers and of
torchvision's "GFLOPS" column. Only convolutions and matrix products are counted (not
BatchNorm, activations, pooling or additions), as in those figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class CostRow:
    name: str
    macs: int
    params: int


def _flops_by_module(module: nn.Module, x: torch.Tensor) -> dict[str, int]:
    counter = FlopCounterMode(display=False, depth=None)
    was_training = module.training
    module.eval()
    try:
        with counter, torch.no_grad():
            module(x)
    finally:
        module.train(was_training)
    root = type(module).__name__
    out = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global":
            continue
        # The counter names modules "<RootClass>.a.b"; keep the path inside the module.
        if name == root:
            name = ""
        elif name.startswith(root + "."):
            name = name[len(root) + 1 :]
        out[name] = int(sum(ops.values()))
    return out


def _input(module: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(input_shape)
    if len(shape) == 3:  # (C, H, W): one image
        shape = (1, *shape)
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    return torch.zeros(shape, device=device)


def count_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``module`` on an input of ``input_shape``
    (``(N, C, H, W)``, or ``(C, H, W)`` for one image). Works on the meta device too."""
    flops = _flops_by_module(module, _input(module, input_shape))
    return flops.get("", 0) // 2


def cost_table(model: nn.Module, input_size: int, per_block: bool = False) -> list[CostRow]:
    """MACs and parameters of ``stem``, each stage (each block with ``per_block``) and
    ``head``, for one ``input_size`` x ``input_size`` image; the last row is the total."""
    in_chans = getattr(model, "in_chans", 3)
    flops = _flops_by_module(model, _input(model, (1, in_chans, input_size, input_size)))
    parts: list[tuple[str, nn.Module]] = [("stem", model.stem)]
    for i, stage in enumerate(model.stages):
        if per_block:
            parts += [(f"stages.{i}.{n}", m) for n, m in stage.named_children()]
        else:
            parts.append((f"stages.{i}", stage))
    parts.append(("head", model.head))
    extra = [
        (n, m)
        for n, m in model.named_children()
        if n not in ("stem", "stages", "head") and any(True for _ in m.parameters())
    ]
    parts += extra  # auxiliary classifiers and the like, when present
    rows = [
        CostRow(name, flops.get(name, 0) // 2, sum(p.numel() for p in m.parameters()))
        for name, m in parts
    ]
    rows.append(CostRow("total", flops.get("", 0) // 2, sum(p.numel() for p in model.parameters())))
    return rows


def human(n: float) -> str:
    """1234567 -> '1.23M' (the papers' style)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def format_table(rows: Sequence[CostRow], title: str) -> str:
    width = max(len(r.name) for r in rows) + 2
    lines = [title, f"{'part':<{width}}{'MACs':>12}{'params':>14}"]
    for r in rows:
        if r.name == "total":
            lines.append("-" * (width + 26))
        lines.append(f"{r.name:<{width}}{human(r.macs):>12}{r.params:>14,}")
    return "\n".join(lines)


def separable_demo(size: int = 14, in_chs: int = 512, out_chs: int = 512, k: int = 3) -> str:
    """A standard k x k convolution against its depthwise-separable factorisation on the
    same shape (Howard et al., 2017, Section 3.1): measured MACs and the paper's ratio."""
    from .blocks import ConvNormAct, DepthwiseSeparable

    shape = (1, in_chs, size, size)
    with torch.device("meta"):
        standard = ConvNormAct(in_chs, out_chs, k, norm=False, act=None)
        separable = DepthwiseSeparable(in_chs, out_chs, 1, k)
    std = count_macs(standard, shape)
    sep = count_macs(separable, shape)
    dw = count_macs(separable.depthwise, shape)
    pw = sep - dw
    formula = 1 / out_chs + 1 / k**2
    rows = [
        ("standard", std, f"{size}*{size}*{in_chs}*{k}*{k}*{out_chs}"),
        (f"depthwise {k}x{k}", dw, f"{size}*{size}*{in_chs}*{k}*{k}"),
        ("pointwise 1x1", pw, f"{size}*{size}*{in_chs}*{out_chs}"),
        ("depthwise separable", sep, "the two together"),
    ]
    lines = [f"{k}x{k} convolution, {in_chs} -> {out_chs} channels, on {size}x{size}x{in_chs}:"]
    lines += [f"  {label:<22}{human(macs):>9}  ({how})" for label, macs, how in rows]
    lines.append(
        f"  measured ratio {sep / std:.4f} (1/{std / sep:.2f}); the paper's 1/N + 1/k^2 = "
        f"1/{out_chs} + 1/{k * k} = {formula:.4f}"
    )
    return "\n".join(lines)


def _conv_rows(module: nn.Module, shape: tuple[int, ...]) -> list[tuple[str, int]]:
    """MACs of every convolution inside ``module``, in call order."""
    flops = _flops_by_module(module, torch.zeros(shape, device="meta"))
    return [
        (name, flops.get(name, 0) // 2)
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d)
    ]


def inception_demo() -> str:
    """The course's Inception arithmetic, measured on ``InceptionModule`` itself.

    One module on a 28x28x256 input with branches 1x1:128, 3x3:192, 5x5:96 and a 3x3
    max-pool: naive (Szegedy et al., 2015, Figure 2a) against 1x1 bottlenecks of 64 before
    the 3x3 and the 5x5 and a 64-channel pool projection (Figure 2b). Then the 5x5 example:
    48 filters on 14x14x480, directly and through a 16-channel 1x1 first.
    """
    from .blocks import ConvNormAct, InceptionModule

    shape = (1, 256, 28, 28)
    with torch.device("meta"):
        naive = InceptionModule(256, 128, 64, 192, 64, 96, 64, naive=True)
        reduced = InceptionModule(256, 128, 64, 192, 64, 96, 64)
        direct = ConvNormAct(480, 48, 5, norm=False, act=None)
        bottleneck = nn.Sequential(
            ConvNormAct(480, 16, 1, norm=False, act=None),
            ConvNormAct(16, 48, 5, norm=False, act=None),
        )
    lines = ["Inception module on 28x28x256 (branches 1x1:128, 3x3:192, 5x5:96, 3x3 max-pool)"]
    for title, module in (("naive", naive), ("with 1x1 bottlenecks of 64", reduced)):
        rows = _conv_rows(module, shape)
        total = sum(macs for _, macs in rows)
        lines.append(f"  {title}: output 28x28x{module.out_chs}")
        lines += [f"    {name:<22}{macs / 1e6:>8.1f}M" for name, macs in rows]
        lines.append(f"    {'sum':<22}{total / 1e6:>8.1f}M")
    lines += [
        "  The course slides print 358M for the bottlenecked module, but the six convolutions",
        "  they list add up to the 271.4M above: 358M is not the sum of its parts.",
    ]
    five = count_macs(direct, (1, 480, 14, 14))
    first, second = (m for _, m in _conv_rows(bottleneck, (1, 480, 14, 14)))
    lines += [
        "5x5 convolution, 48 filters, on 14x14x480",
        f"  directly:                 {five / 1e6:>6.1f}M",
        f"  1x1 to 16 channels first: {first / 1e6:>6.1f}M + {second / 1e6:.1f}M = "
        f"{(first + second) / 1e6:.1f}M ({five / (first + second):.1f}x fewer)",
    ]
    return "\n".join(lines)
