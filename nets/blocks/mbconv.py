"""The MBConv stage builder shared by EfficientNet and EfficientNet-Lite, and the stage
grouping shared by the MobileNets: plans of blocks turned into the anatomy's ``stages``.

Not blocks themselves (they are not in ``nets.blocks.__all__``): helpers that lay blocks
out, kept here so that family files never import each other's internals.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple

from torch import nn

from .core import DepthwiseSeparable, InvertedResidual, make_divisible


class MBConvGroup(NamedTuple):
    """One block group of the TF builder's ``r{repeats}_k{kernel}_s{stride}_e{expand}_i{in}_o{out}``
    strings: the first block takes the stride and the channel change, the others repeat it."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_chs: int
    out_chs: int


# EfficientNet-B0's blocks_args (efficientnet_builder.py), also Lite's (which drops SE).
EFFICIENTNET_GROUPS = (
    MBConvGroup(1, 3, 1, 1, 32, 16),
    MBConvGroup(2, 3, 2, 6, 16, 24),
    MBConvGroup(2, 5, 2, 6, 24, 40),
    MBConvGroup(3, 3, 2, 6, 40, 80),
    MBConvGroup(3, 5, 1, 6, 80, 112),
    MBConvGroup(4, 5, 2, 6, 112, 192),
    MBConvGroup(1, 3, 1, 6, 192, 320),
)
# The stage each group falls in: groups 3 and 4 share stride 16, 5 and 6 stride 32.
GROUP_TO_STAGE = (0, 1, 2, 3, 3, 4, 4)
STAGE_REDUCTIONS = (2, 4, 8, 16, 32)

# One block of a plan: (in, out, stride, expand, kernel).
PlannedBlock = tuple[int, int, int, int, int]
Plan = list[list[PlannedBlock]]


def round_filters(channels: int, width_mult: float, divisor: int = 8) -> int:
    """Scale ``channels`` by ``width_mult`` to a multiple of ``divisor``, never below 90%."""
    return make_divisible(channels * width_mult, divisor)


def round_repeats(repeats: int, depth_mult: float) -> int:
    return int(math.ceil(depth_mult * repeats))


def mbconv_plan(
    groups: Sequence[MBConvGroup],
    width_mult: float,
    depth_mult: float,
    *,
    stem_chs: int,
    scale_end_repeats: bool = True,
) -> Plan:
    """The blocks of every group after compound scaling.

    The first group reads ``stem_chs`` (already scaled or not, as the family decides); every
    other width is scaled by ``width_mult``. ``scale_end_repeats=False`` keeps the repeats of
    the first and last groups as published (Lite's rule).
    """
    plan: Plan = []
    for g, row in enumerate(groups):
        at_end = g in (0, len(groups) - 1)
        keep = at_end and not scale_end_repeats
        repeats = row.repeats if keep else round_repeats(row.repeats, depth_mult)
        in_chs = stem_chs if g == 0 else round_filters(row.in_chs, width_mult)
        out_chs = round_filters(row.out_chs, width_mult)
        group = [(in_chs, out_chs, row.stride, row.expand, row.kernel)]
        group += [(out_chs, out_chs, 1, row.expand, row.kernel)] * (repeats - 1)
        plan.append(group)
    return plan


def mbconv_stages(
    plan: Plan,
    drop_path_rate: float,
    block_kwargs: Callable[[int], dict],
    conv_head: nn.Module,
) -> tuple[list[nn.Module], list[int]]:
    """The stages of EfficientNet and EfficientNet-Lite from a block plan.

    Groups land in stages by GROUP_TO_STAGE; expand-ratio-1 blocks are DepthwiseSeparable
    (linear pointwise, residual when shapes allow), the others InvertedResidual; stochastic
    depth grows linearly with the block index (the TF builder's and torchvision's
    ``rate * i / n``); the last stage ends with ``conv_head``. ``block_kwargs(in_chs)`` gives
    each block's padding, activation, BatchNorm and attention arguments.
    """
    total = sum(len(group) for group in plan)
    stage_blocks: list[list[nn.Module]] = [[] for _ in STAGE_REDUCTIONS]
    channels = [0] * len(STAGE_REDUCTIONS)
    index = 0
    for g, group in enumerate(plan):
        s = GROUP_TO_STAGE[g]
        for in_chs, out_chs, stride, expand, kernel in group:
            common = dict(drop_path=drop_path_rate * index / total, **block_kwargs(in_chs))
            if expand == 1:
                blk = DepthwiseSeparable(
                    in_chs, out_chs, stride, kernel, pw_act=False, residual=True, **common
                )
            else:
                blk = InvertedResidual(in_chs, out_chs, stride, expand, kernel, **common)
            stage_blocks[s].append(blk)
            channels[s] = out_chs
            index += 1
    stages: list[nn.Module] = [nn.Sequential(*blocks) for blocks in stage_blocks[:-1]]
    last = OrderedDict((str(j), blk) for j, blk in enumerate(stage_blocks[-1]))
    last["conv_head"] = conv_head
    stages.append(nn.Sequential(last))
    channels[-1] = conv_head.out_chs
    return stages, channels


def group_by_resolution(strides: Sequence[int], stem_stride: int = 2) -> list[tuple[int, int]]:
    """(stage, reduction) of each block: a new stage begins at every stride-2 block (unless
    the current stage is still empty), so each stage holds one resolution."""
    out, stage, reduction, count = [], 0, stem_stride, 0
    for stride in strides:
        if stride > 1 and count:
            stage, count = stage + 1, 0
        reduction *= stride
        out.append((stage, reduction))
        count += 1
    return out
