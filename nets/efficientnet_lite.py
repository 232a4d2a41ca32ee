"""EfficientNet-Lite0..Lite4 (Tan and Le, 2019, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks"; the Lite variants of Google's ``efficientnet/lite`` builder).

Lite is EfficientNet made friendly to mobile accelerators and quantisation: no
squeeze-and-excitation, ReLU6 instead of swish, and the stem (32 channels) and head
(1280 channels) are not rescaled with the width ("fix_head_stem"), nor are the repeats of
the first and last block groups rescaled with the depth. The layout of the TF checkpoints
ported to PyTorch: TensorFlow "SAME" padding (asymmetric at stride 2), convs without bias,
BatchNorm eps 1e-3 (TF momentum 0.99, PyTorch's 0.01).

Stem: 3x3/2 conv, BN, ReLU6. The seven block groups are grouped by resolution into five
stages (strides 2, 4, 8, 16, 32); the last stage ends with the 1x1 head conv ``conv_head``,
so ``forward_features`` gives the 1280-channel map TF's feature extractor gives.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from torch import nn

from .base import ClassifierHead, Network, init_conv_bn
from .blocks import ConvNormAct, DepthwiseSeparable, InvertedResidual, ReLU6, make_divisible
from .registry import register_model


class BlockRow(NamedTuple):
    """One block group of the TF builder's ``r{repeats}_k{kernel}_s{stride}_e{expand}_i{in}_o{out}``
    strings: the first block takes the stride and the channel change, the others repeat it."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_chs: int
    out_chs: int


# efficientnet_lite_builder.py's blocks_args (the same as EfficientNet-B0's, without SE).
BLOCK_ROWS = (
    BlockRow(1, 3, 1, 1, 32, 16),
    BlockRow(2, 3, 2, 6, 16, 24),
    BlockRow(2, 5, 2, 6, 24, 40),
    BlockRow(3, 3, 2, 6, 40, 80),
    BlockRow(3, 5, 1, 6, 80, 112),
    BlockRow(4, 5, 2, 6, 112, 192),
    BlockRow(1, 3, 1, 6, 192, 320),
)
# The stage each block group falls in: groups 3 and 4 share stride 16, 5 and 6 stride 32.
GROUP_TO_STAGE = (0, 1, 2, 3, 3, 4, 4)
STAGE_REDUCTIONS = (2, 4, 8, 16, 32)


class LiteVariant(NamedTuple):
    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float


# efficientnet_lite_builder.py's efficientnet_lite_params.
VARIANTS = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": LiteVariant(1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": LiteVariant(1.4, 1.8, 300, 0.3),
}
STEM_CHS = 32  # fixed for every Lite size
HEAD_CHS = 1280  # fixed for every Lite size
DROP_CONNECT_RATE = 0.2  # the same for every size


def round_filters(channels: int, width_mult: float, divisor: int = 8) -> int:
    """Scale ``channels`` by ``width_mult`` to a multiple of ``divisor``, never below 90%."""
    return make_divisible(channels * width_mult, divisor)


def round_repeats(repeats: int, depth_mult: float) -> int:
    return int(math.ceil(depth_mult * repeats))


Plan = list[list[tuple[int, int, int, int, int]]]  # per group: (in, out, stride, expand, k)


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


class EfficientNetLite(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = DROP_CONNECT_RATE,
        eps: float = 1e-3,
        momentum: float = 0.01,
        rows: tuple[BlockRow, ...] = BLOCK_ROWS,
    ) -> None:
        super().__init__(in_chans=in_chans)
        bn = dict(eps=eps, momentum=momentum)
        self.stem = ConvNormAct(in_chans, STEM_CHS, 3, 2, padding="same", act=ReLU6, **bn)

        # The (in, out, stride, expand, kernel) of every block, group by group.
        plan: list[list[tuple[int, int, int, int, int]]] = []
        for g, row in enumerate(rows):
            first_or_last = g in (0, len(rows) - 1)
            repeats = row.repeats if first_or_last else round_repeats(row.repeats, depth_mult)
            # The first group reads the unscaled stem; every other width is rescaled.
            in_chs = STEM_CHS if g == 0 else round_filters(row.in_chs, width_mult)
            out_chs = round_filters(row.out_chs, width_mult)
            group = [(in_chs, out_chs, row.stride, row.expand, row.kernel)]
            group += [(out_chs, out_chs, 1, row.expand, row.kernel)] * (repeats - 1)
            plan.append(group)

        stages, channels = mbconv_stages(
            plan,
            drop_path_rate,
            lambda in_chs: dict(padding="same", act=ReLU6, **bn),
            ConvNormAct(plan[-1][-1][1], HEAD_CHS, 1, act=ReLU6, **bn),
        )
        self._set_stages(stages, channels, STAGE_REDUCTIONS)
        self.head = ClassifierHead(HEAD_CHS, num_classes, pooling, drop_rate, include_top)

        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                self.init_classifier(m)

    def init_classifier(self, fc: nn.Linear) -> None:
        """Uniform(-1/sqrt(out), 1/sqrt(out)) weights, zero bias: torchvision's EfficientNet."""
        bound = 1.0 / math.sqrt(fc.out_features)
        nn.init.uniform_(fc.weight, -bound, bound)
        nn.init.zeros_(fc.bias)


def _builder(name: str):
    variant = VARIANTS[name]

    def build(**kwargs) -> EfficientNetLite:
        kwargs.setdefault("drop_rate", variant.dropout)
        return EfficientNetLite(variant.width_mult, variant.depth_mult, **kwargs)

    build.__name__ = name
    return build


for _name, _variant in VARIANTS.items():
    register_model(
        _name,
        _builder(_name),
        family="efficientnet_lite",
        input_size=_variant.resolution,
        min_input_size=32,
        paper=(
            "Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
            "Networks, ICML 2019 (Lite variants: Google's efficientnet/lite builder, 2020)"
        ),
    )
