"""MobileNet v2 (Sandler et al., 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks").

The layout of torchvision's ``mobilenet_v2`` and its weights: a 3x3/2 stem conv (32 channels),
17 inverted-residual blocks from the paper's t-c-n-s table (expand 1x1, depthwise 3x3,
linear 1x1 projection; the first row's t = 1 has no expansion conv), a 1x1 conv to 1280
channels, dropout 0.2 and a Linear classifier. Convs without bias, BatchNorm eps 1e-5,
ReLU6. ``width_mult`` scales every width with ``make_divisible(c * width_mult, 8)``; the last
conv's 1280 is scaled only when ``width_mult > 1``, as in the paper and torchvision.

Stages by resolution (a new stage at each stride-2 block): strides 2, 4, 8, 16, 32 with
1, 2, 3, 7 and 4 blocks (torchvision's ``features.1``, ``2-3``, ``4-6``, ``7-13``,
``14-17``). The last stage ends with the 1x1 head conv ``conv_head`` (``features.18``), so
``forward_features`` and ``include_top=False`` give the 1280-channel map, as Keras'
MobileNetV2 does.

``keras_mobilenet_v2`` is keras.applications' ``MobileNetV2`` (alpha 1.0), for its ImageNet
.h5 weights: BatchNorm eps 1e-3 (momentum 0.001, Keras' 0.999), no dropout, and TF "same"
padding: Keras' stem conv is "same" and its ``correct_pad`` zero padding before each stride-2
depthwise conv is exactly TF's SAME for a 3x3/2 kernel (bottom/right only on even sizes).
The parameters are the same as ``mobilenet_v2``'s (3,504,872; Keras: 3,538,984 with 34,112
moving statistics).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from torch import nn

from ..base import ClassifierHead, Network, init_conv_bn
from ..blocks import ConvNormAct, InvertedResidual, NormLayer, ReLU6, make_divisible
from ..blocks.mbconv import group_by_resolution
from ..registry import register_model


class InvertedResidualGroup(NamedTuple):
    """One row of the paper's Table 2, a group of blocks: ``repeats`` blocks of expansion
    ``expand`` and ``out_chs`` outputs; the first takes ``stride``, the others stride 1."""

    expand: int  # t
    out_chs: int  # c
    repeats: int  # n
    stride: int  # s


ROWS = (
    InvertedResidualGroup(1, 16, 1, 1),
    InvertedResidualGroup(6, 24, 2, 2),
    InvertedResidualGroup(6, 32, 3, 2),
    InvertedResidualGroup(6, 64, 4, 2),
    InvertedResidualGroup(6, 96, 3, 1),
    InvertedResidualGroup(6, 160, 3, 2),
    InvertedResidualGroup(6, 320, 1, 1),
)
STEM_CHS = 32
HEAD_CHS = 1280


class MobileNetV2(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        width_mult: float = 1.0,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.2,
        round_nearest: int = 8,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        rows: tuple[InvertedResidualGroup, ...] = ROWS,
        padding: int | str | None = None,
    ) -> None:
        super().__init__(in_chans=in_chans)
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        in_chs = make_divisible(STEM_CHS * width_mult, round_nearest)
        head_chs = make_divisible(HEAD_CHS * max(1.0, width_mult), round_nearest)
        self.stem = ConvNormAct(in_chans, in_chs, 3, 2, padding, act=ReLU6, **bn)

        # (in, out, stride, expand) of every block, row by row.
        plan = []
        for row in rows:
            out_chs = make_divisible(row.out_chs * width_mult, round_nearest)
            for i in range(row.repeats):
                plan.append((in_chs, out_chs, row.stride if i == 0 else 1, row.expand))
                in_chs = out_chs

        positions = group_by_resolution([p[2] for p in plan])
        n_stages = positions[-1][0] + 1
        stage_blocks: list[OrderedDict[str, nn.Module]] = [OrderedDict() for _ in range(n_stages)]
        channels, reductions = [0] * n_stages, [0] * n_stages
        for (cin, cout, stride, expand), (s, reduction) in zip(plan, positions, strict=True):
            blk = InvertedResidual(cin, cout, stride, expand, 3, padding=padding, act=ReLU6, **bn)
            stage_blocks[s][str(len(stage_blocks[s]))] = blk
            channels[s], reductions[s] = cout, reduction
        stage_blocks[-1]["conv_head"] = ConvNormAct(in_chs, head_chs, 1, act=ReLU6, **bn)
        channels[-1] = head_chs
        self._set_stages([nn.Sequential(b) for b in stage_blocks], channels, reductions)
        self.head = ClassifierHead(head_chs, num_classes, pooling, drop_rate, include_top)
        # torchvision's init: Kaiming-normal fan-out convs, unit BN, Linear N(0, 0.01).
        init_conv_bn(self, linear_std=0.01)

    def init_classifier(self, fc: nn.Linear) -> None:
        """N(0, 0.01) weights, zero bias: torchvision's MobileNet init."""
        nn.init.normal_(fc.weight, 0.0, 0.01)
        nn.init.zeros_(fc.bias)


def mobilenet_v2(**kwargs) -> MobileNetV2:
    return MobileNetV2(**kwargs)


register_model(
    "mobilenet_v2",
    mobilenet_v2,
    family="mobilenet_v2",
    input_size=224,
    min_input_size=32,
    paper=("Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"),
)

register_model(
    "keras_mobilenet_v2",
    mobilenet_v2,
    family="mobilenet_v2",
    input_size=224,
    min_input_size=32,
    paper=(
        "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018; "
        "keras.applications.MobileNetV2"
    ),
    eps=1e-3,
    momentum=0.001,
    padding="same",
    drop_rate=0.0,
)
