"""EfficientNet-B0..B7 (Tan and Le, 2019, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks"), in the layout of torchvision's ``efficientnet_b*`` weights.

One baseline (the seven MBConv block groups EfficientNet-Lite shares) scaled by a
compound coefficient: width (every channel count, the stem and the head included, rounded
to a multiple of 8), depth (every group's repeats, rounded up) and resolution. Unlike the
TF checkpoints, torchvision's layout pads symmetrically; blocks use SiLU ("swish") and
squeeze-and-excitation after the depthwise conv, squeezing to a quarter of the block's
*input* channels.

Anatomy: stem = 3x3/2 conv, BN, SiLU. The seven block groups are grouped by resolution
into five stages (strides 2, 4, 8, 16, 32); the last stage ends with the 1x1 head conv
``conv_head`` (4x the last group's channels), so ``forward_features`` gives what
torchvision's ``model.features`` gives. Head: global average pool, dropout, ``fc``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

from torch import nn

from .base import ClassifierHead, Network, init_conv_bn
from .blocks import ConvNormAct, SqueezeExcite
from .efficientnet_lite import (
    BLOCK_ROWS,
    STAGE_REDUCTIONS,
    BlockRow,
    mbconv_stages,
    round_filters,
    round_repeats,
)
from .registry import register_model


class Variant(NamedTuple):
    width_mult: float
    depth_mult: float
    resolution: int  # the paper's input size for this coefficient
    dropout: float
    # BatchNorm of the checkpoints torchvision publishes: B0-B4 were ported from timm
    # (PyTorch's defaults), B5-B7 from lukemelas' TF port (TF's eps 1e-3, momentum 0.99).
    eps: float = 1e-5
    momentum: float = 0.1


# torchvision's efficientnet_b0..b7 builders (the paper's compound-scaling coefficients).
VARIANTS = {
    "efficientnet_b0": Variant(1.0, 1.0, 224, 0.2),
    "efficientnet_b1": Variant(1.0, 1.1, 240, 0.2),
    "efficientnet_b2": Variant(1.1, 1.2, 260, 0.3),
    "efficientnet_b3": Variant(1.2, 1.4, 300, 0.3),
    "efficientnet_b4": Variant(1.4, 1.8, 380, 0.4),
    "efficientnet_b5": Variant(1.6, 2.2, 456, 0.4, eps=1e-3, momentum=0.01),
    "efficientnet_b6": Variant(1.8, 2.6, 528, 0.5, eps=1e-3, momentum=0.01),
    "efficientnet_b7": Variant(2.0, 3.1, 600, 0.5, eps=1e-3, momentum=0.01),
}
STEM_CHS = 32  # before width scaling: the first group's input
HEAD_EXPANSION = 4  # the head conv widens the last group's channels 4x (1280 for B0)
STOCHASTIC_DEPTH_RATE = 0.2

SiLU = partial(nn.SiLU, inplace=True)


def se_layer(in_chs: int) -> Callable[[int], nn.Module]:
    """The SE factory of a block reading ``in_chs`` channels: it squeezes to a quarter of
    the block's input, whatever width the (expanded) map it rescales has."""
    return partial(SqueezeExcite, squeeze_chs=max(1, in_chs // 4), act=SiLU, gate=nn.Sigmoid)


class EfficientNet(Network):
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
        drop_path_rate: float = STOCHASTIC_DEPTH_RATE,
        eps: float = 1e-5,
        momentum: float = 0.1,
        rows: tuple[BlockRow, ...] = BLOCK_ROWS,
    ) -> None:
        super().__init__(in_chans=in_chans)
        bn = dict(eps=eps, momentum=momentum)
        stem_chs = round_filters(STEM_CHS, width_mult)
        self.stem = ConvNormAct(in_chans, stem_chs, 3, 2, act=SiLU, **bn)

        # The (in, out, stride, expand, kernel) of every block, group by group. Unlike Lite,
        # every group's repeats and every width (the stem's too) are scaled.
        plan: list[list[tuple[int, int, int, int, int]]] = []
        for row in rows:
            repeats = round_repeats(row.repeats, depth_mult)
            in_chs = round_filters(row.in_chs, width_mult)
            out_chs = round_filters(row.out_chs, width_mult)
            group = [(in_chs, out_chs, row.stride, row.expand, row.kernel)]
            group += [(out_chs, out_chs, 1, row.expand, row.kernel)] * (repeats - 1)
            plan.append(group)

        # torchvision's head conv has four times the last group's channels.
        head_chs = HEAD_EXPANSION * plan[-1][-1][1]
        stages, channels = mbconv_stages(
            plan,
            drop_path_rate,
            lambda in_chs: dict(act=SiLU, attn=se_layer(in_chs), **bn),
            ConvNormAct(plan[-1][-1][1], head_chs, 1, act=SiLU, **bn),
        )
        self._set_stages(stages, channels, STAGE_REDUCTIONS)
        self.head = ClassifierHead(head_chs, num_classes, pooling, drop_rate, include_top)

        # torchvision's init: Kaiming-normal fan-out convs (the SE convs too), unit BN.
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                self.init_classifier(m)

    def init_classifier(self, fc: nn.Linear) -> None:
        """Uniform(-1/sqrt(out), 1/sqrt(out)) weights, zero bias: torchvision's EfficientNet."""
        bound = 1.0 / math.sqrt(fc.out_features)
        nn.init.uniform_(fc.weight, -bound, bound)
        nn.init.zeros_(fc.bias)


def _builder(name: str) -> Callable[..., EfficientNet]:
    variant = VARIANTS[name]

    def build(**kwargs) -> EfficientNet:
        kwargs.setdefault("drop_rate", variant.dropout)
        kwargs.setdefault("eps", variant.eps)
        kwargs.setdefault("momentum", variant.momentum)
        return EfficientNet(variant.width_mult, variant.depth_mult, **kwargs)

    build.__name__ = name
    return build


for _name, _variant in VARIANTS.items():
    register_model(
        _name,
        _builder(_name),
        family="efficientnet",
        input_size=_variant.resolution,
        min_input_size=32,
        paper=(
            "Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
            "Networks, ICML 2019"
        ),
    )
