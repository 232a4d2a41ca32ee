"""MobileNet v1 (Howard et al., 2017, "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications"), width multipliers 0.25, 0.5, 0.75 and 1.0.

A 3x3/2 stem conv, then 13 depthwise-separable blocks (depthwise 3x3, BN, act; pointwise 1x1,
BN, act), global pooling and one Linear classifier. The layout of timm's ``mobilenetv1_100``
(whose ``ra4_e3600_r224_in1k`` weights load into ``mobilenet_v1_100``): convs without bias,
symmetric padding, BatchNorm eps 1e-5, ReLU6 (as in Google's TF-slim and Keras
implementations; the paper's text says ReLU), no 1x1 head conv (num_features = 1024 x width).
Every width, the stem's included, is rounded to a multiple of 8 (``make_divisible``), which
for these four multipliers is the plain product.

Names: ``mobilenet_v1_100`` is timm's ``mobilenetv1_100``, spelt like torchvision's
``mobilenet_v2`` and ``mobilenet_v3_large``; the suffix is the width multiplier x 100.

Stages by resolution: a new stage begins at each stride-2 block, so the five stages end at
strides 2, 4, 8, 16, 32 (1, 2, 2, 6 and 2 blocks: timm's ``blocks.0`` .. ``blocks.4``).
This module also holds the two helpers the MobileNet v2 and v3 modules share.

``keras_mobilenet`` is keras.applications' ``MobileNet`` (alpha 1.0), for its ImageNet
.h5 weights: BatchNorm eps 1e-3 (momentum 0.01, Keras' 0.99), dropout 1e-3 before the
classifier, and TF "same" padding (``padding="same"``): the stride-2 convs pad one pixel at
the bottom and right only, as Keras' ``ZeroPadding2D(((0, 1), (0, 1)))`` before them does on
the even-sized maps of any input whose side is a multiple of 32. Keras' classifier is a 1x1
conv ``conv_preds`` on the pooled 1x1 map, i.e. a Linear: the converter reshapes its kernel
into ``head.fc`` (4,231,976 parameters; Keras: 4,253,864 with 21,888 moving statistics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from ..base import ClassifierHead, Network
from ..blocks import ActLayer, ConvNormAct, DepthwiseSeparable, NormLayer, ReLU6, make_divisible
from ..blocks.mbconv import group_by_resolution
from ..registry import register_variants

# Table 1 of the paper: (stride of the depthwise conv, output channels) of each block. The
# paper's table prints s2 for the 13th block, a known slip: every implementation (and the
# 7x7 final map the paper's own table arrives at) has stride 1 there.
BLOCKS = (
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
)
STEM_CHS = 32
# name: width multiplier (the paper's alpha)
WIDTHS = {
    "mobilenet_v1_025": 0.25,
    "mobilenet_v1_050": 0.5,
    "mobilenet_v1_075": 0.75,
    "mobilenet_v1_100": 1.0,
}


class MobileNetV1(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        width_mult: float = 1.0,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.0,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU6,
        blocks: Sequence[tuple[int, int]] = BLOCKS,
        padding: int | str | None = None,
    ) -> None:
        super().__init__(in_chans=in_chans)
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        in_chs = make_divisible(STEM_CHS * width_mult)
        self.stem = ConvNormAct(in_chans, in_chs, 3, 2, padding, act=act, **bn)

        positions = group_by_resolution([s for s, _ in blocks])
        n_stages = positions[-1][0] + 1
        stage_blocks: list[list[nn.Module]] = [[] for _ in range(n_stages)]
        channels, reductions = [0] * n_stages, [0] * n_stages
        for (stride, out), (s, reduction) in zip(blocks, positions, strict=True):
            out_chs = make_divisible(out * width_mult)
            stage_blocks[s].append(
                DepthwiseSeparable(
                    in_chs, out_chs, stride, 3, padding=padding, act=act, pw_act=True, **bn
                )
            )
            channels[s], reductions[s], in_chs = out_chs, reduction, out_chs
        self._set_stages([nn.Sequential(*b) for b in stage_blocks], channels, reductions)
        self.head = ClassifierHead(in_chs, num_classes, pooling, drop_rate, include_top)
        _init_tf_style(self)

    def init_classifier(self, fc: nn.Linear) -> None:
        """Uniform(-1/sqrt(out), 1/sqrt(out)) weights, zero bias, as timm's TF-style init."""
        bound = 1.0 / math.sqrt(fc.out_features)
        nn.init.uniform_(fc.weight, -bound, bound)
        nn.init.zeros_(fc.bias)


def _init_tf_style(model: MobileNetV1) -> None:
    """The initialisation timm gives its MobileNet v1 (that of Google's TF MobileNet code):
    conv weights N(0, 2 / fan_out) with fan_out = k*k*out / groups, so a depthwise kernel's
    fan-out is k*k and not k*k*channels as ``kaiming_normal_`` would have it."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            model.init_classifier(m)


PAPER = (
    "Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile "
    "Vision Applications, arXiv:1704.04861, 2017"
)
register_variants(WIDTHS, MobileNetV1, family="mobilenet_v1", min_input_size=32, paper=PAPER)
register_variants(
    {"keras_mobilenet": WIDTHS["mobilenet_v1_100"]},
    MobileNetV1,
    family="mobilenet_v1",
    min_input_size=32,
    paper=PAPER + "; keras.applications.MobileNet",
    eps=1e-3,
    momentum=0.01,
    padding="same",
    drop_rate=1e-3,
)
