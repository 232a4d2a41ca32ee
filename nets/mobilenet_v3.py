"""MobileNet v3 large and small (Howard et al., 2019, "Searching for MobileNetV3").

The layout of torchvision's ``mobilenet_v3_large`` / ``mobilenet_v3_small`` and their
weights: a 3x3/2 stem conv (16 channels, hardswish), the inverted-residual blocks of the
paper's Tables 1 and 2 (kernel 3 or 5, ReLU or hardswish per row, optional squeeze-and-
excitation after the depthwise conv with squeeze = make_divisible(expanded // 4, 8), ReLU,
then a hardsigmoid gate; blocks whose expansion equals their input have no expansion conv),
a 1x1 conv to 6x the last block's width (960 / 576, hardswish), then global pooling and the
head Linear(960 -> 1280 / 576 -> 1024), hardswish, dropout 0.2, Linear classifier. Convs
without bias; BatchNorm eps 1e-3, momentum 0.01 (TF's 0.99).

Stages by resolution (a new stage at each stride-2 block), the last ending with the 1x1 conv
``conv_head``:
- large: strides 2, 4, 8, 16, 32 with 1, 2, 3, 6 and 3 blocks (torchvision's
  ``features.1``, ``2-3``, ``4-6``, ``7-12``, ``13-15`` + ``16``);
- small: its first block already has stride 2, so only the stem runs at stride 2 and the
  four stages end at strides 4, 8, 16, 32 with 1, 2, 5 and 3 blocks (``features.1``,
  ``2-3``, ``4-8``, ``9-11`` + ``12``).

``include_top=False`` keeps only the pooling over the 960 / 576-channel map: the first
Linear of the head belongs to the top (it is the paper's 1x1 conv after pooling).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from .base import ClassifierHead, Network, init_conv_bn
from .blocks import (
    ActLayer,
    ConvNormAct,
    InvertedResidual,
    ReLU,
    SqueezeExcite,
    make_divisible,
)
from .blocks.mbconv import group_by_resolution
from .registry import register_variants

Hardswish: ActLayer = partial(nn.Hardswish, inplace=True)


class BlockRow(NamedTuple):
    """One row of the paper's Tables 1 and 2 (one block)."""

    in_chs: int
    kernel: int
    expanded: int  # "exp size": the depthwise conv's width
    out_chs: int
    se: bool
    act: str  # "RE": ReLU, "HS": hardswish
    stride: int


LARGE = (
    BlockRow(16, 3, 16, 16, False, "RE", 1),
    BlockRow(16, 3, 64, 24, False, "RE", 2),
    BlockRow(24, 3, 72, 24, False, "RE", 1),
    BlockRow(24, 5, 72, 40, True, "RE", 2),
    BlockRow(40, 5, 120, 40, True, "RE", 1),
    BlockRow(40, 5, 120, 40, True, "RE", 1),
    BlockRow(40, 3, 240, 80, False, "HS", 2),
    BlockRow(80, 3, 200, 80, False, "HS", 1),
    BlockRow(80, 3, 184, 80, False, "HS", 1),
    BlockRow(80, 3, 184, 80, False, "HS", 1),
    BlockRow(80, 3, 480, 112, True, "HS", 1),
    BlockRow(112, 3, 672, 112, True, "HS", 1),
    BlockRow(112, 5, 672, 160, True, "HS", 2),
    BlockRow(160, 5, 960, 160, True, "HS", 1),
    BlockRow(160, 5, 960, 160, True, "HS", 1),
)
SMALL = (
    BlockRow(16, 3, 16, 16, True, "RE", 2),
    BlockRow(16, 3, 72, 24, False, "RE", 2),
    BlockRow(24, 3, 88, 24, False, "RE", 1),
    BlockRow(24, 5, 96, 40, True, "HS", 2),
    BlockRow(40, 5, 240, 40, True, "HS", 1),
    BlockRow(40, 5, 240, 40, True, "HS", 1),
    BlockRow(40, 5, 120, 48, True, "HS", 1),
    BlockRow(48, 5, 144, 48, True, "HS", 1),
    BlockRow(48, 5, 288, 96, True, "HS", 2),
    BlockRow(96, 5, 576, 96, True, "HS", 1),
    BlockRow(96, 5, 576, 96, True, "HS", 1),
)
# name: (blocks, width of the head's hidden Linear before width scaling)
VARIANTS = {
    "mobilenet_v3_large": (LARGE, 1280),
    "mobilenet_v3_small": (SMALL, 1024),
}
ACTS: dict[str, ActLayer] = {"RE": ReLU, "HS": Hardswish}


class MobileNetV3Head(ClassifierHead):
    """Global pooling, ``fc1`` (Linear to ``hidden``) and hardswish, dropout, classifier ``fc``.

    Pre-logits are the hardswish outputs (``num_features = hidden``), so a new classifier
    (``reset``) keeps ``fc1``, as a fine-tuned torchvision model replaces ``classifier[3]``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        num_classes: int = 1000,
        pooling: str = "avg",
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__(hidden, num_classes, pooling, drop_rate)
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.Hardswish(inplace=True)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.fc1(self.flatten(self.pool(x))))  # (N, C, H, W) -> (N, hidden)
        if pre_logits:
            return x
        return self.fc(self.drop(x))


class MobileNetV3(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        blocks: tuple[BlockRow, ...],
        head_hidden: int,
        *,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.2,
        eps: float = 1e-3,
        momentum: float = 0.01,
    ) -> None:
        super().__init__(in_chans=in_chans)
        bn = dict(eps=eps, momentum=momentum)

        def scale(c: int) -> int:
            return make_divisible(c * width_mult, 8)

        self.stem = ConvNormAct(in_chans, scale(blocks[0].in_chs), 3, 2, act=Hardswish, **bn)

        positions = group_by_resolution([b.stride for b in blocks])
        n_stages = positions[-1][0] + 1
        stage_blocks: list[OrderedDict[str, nn.Module]] = [OrderedDict() for _ in range(n_stages)]
        channels, reductions = [0] * n_stages, [0] * n_stages
        for row, (s, reduction) in zip(blocks, positions, strict=True):
            cin, mid, cout = scale(row.in_chs), scale(row.expanded), scale(row.out_chs)
            attn = None
            if row.se:
                attn = partial(
                    SqueezeExcite,
                    squeeze_chs=make_divisible(mid // 4, 8),
                    act=nn.ReLU,
                    gate=nn.Hardsigmoid,
                )
            blk = InvertedResidual(
                cin,
                cout,
                row.stride,
                mid / cin,
                row.kernel,
                act=ACTS[row.act],
                attn=attn,
                mid_chs=mid,  # mid == cin: no expansion conv, as in the paper's first rows
                **bn,
            )
            stage_blocks[s][str(len(stage_blocks[s]))] = blk
            channels[s], reductions[s] = cout, reduction
        last_in = channels[-1]
        last_chs = 6 * last_in
        stage_blocks[-1]["conv_head"] = ConvNormAct(last_in, last_chs, 1, act=Hardswish, **bn)
        channels[-1] = last_chs
        self._set_stages([nn.Sequential(b) for b in stage_blocks], channels, reductions)
        if include_top:
            hidden = scale(head_hidden)
            self.head = MobileNetV3Head(last_chs, hidden, num_classes, pooling, drop_rate)
        else:
            self.head = ClassifierHead(last_chs, 0, pooling, include_top=False)
        # torchvision's init: Kaiming-normal fan-out convs (SE's too), unit BN, Linear
        # N(0, 0.01), zero biases.
        init_conv_bn(self, linear_std=0.01)

    def init_classifier(self, fc: nn.Linear) -> None:
        """N(0, 0.01) weights, zero bias: torchvision's MobileNet init."""
        nn.init.normal_(fc.weight, 0.0, 0.01)
        nn.init.zeros_(fc.bias)


register_variants(
    VARIANTS,
    lambda variant, **kwargs: MobileNetV3(*variant, **kwargs),
    family="mobilenet_v3",
    min_input_size=32,
    paper="Howard et al., Searching for MobileNetV3, ICCV 2019",
)
