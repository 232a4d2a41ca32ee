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

``keras_efficientnet_b0`` .. ``keras_efficientnet_b7`` are keras.applications'
``EfficientNetB0`` .. ``B7``, for its ImageNet .h5 weights: the same builder and coefficients
with Keras' numerics (``KERAS``): TF "same" padding (Keras zero-pads its stride-2 convs by
``correct_pad``, which on a known input size is TF's SAME, and uses "same" elsewhere; built
without an input size, Keras pads (k//2 - 1, k//2) on every map, unlike SAME on odd sizes) and
BatchNorm eps 1e-3. Everything else is already Keras': swish, SE to a quarter of the block's
input with biased convs, the head conv ``round_filters(1280)`` (= 4x the last group's
channels), drop-connect 0.2 as stochastic depth, the dropout per size. Keras' model also
holds its preprocessing (Rescaling, Normalization); ours does not: the file's Normalization
constants become the weights' preprocessing (``weights.keras.conversion``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

from torch import nn

from ..base import ClassifierHead, Network, init_conv_bn
from ..blocks import ActLayer, ConvNormAct, NormLayer, SqueezeExcite
from ..blocks.mbconv import (
    EFFICIENTNET_GROUPS,
    STAGE_REDUCTIONS,
    MBConvGroup,
    mbconv_plan,
    mbconv_stages,
    round_filters,
)
from ..registry import register_variants


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
# keras.applications' EfficientNetB0..B7: the same coefficients, resolutions and dropout
# (keras/src/applications/efficientnet.py), built with Keras' numerics.
KERAS_VARIANTS = {f"keras_{name}": v for name, v in VARIANTS.items()}
KERAS = dict(padding="same", eps=1e-3, momentum=0.01)  # Keras' BN momentum 0.99
STEM_CHS = 32  # the first group's input (scaled with the width unless fixed)
HEAD_EXPANSION = 4  # the head conv widens the last group's channels 4x (1280 for B0)
LITE_HEAD_CHS = 1280  # Lite's head conv, the same at every width
STOCHASTIC_DEPTH_RATE = 0.2

SiLU = partial(nn.SiLU, inplace=True)


def se_layer(in_chs: int) -> Callable[[int], nn.Module]:
    """The SE factory of a block reading ``in_chs`` channels: it squeezes to a quarter of
    the block's input, whatever width the (expanded) map it rescales has."""
    return partial(SqueezeExcite, squeeze_chs=max(1, in_chs // 4), act=SiLU, gate=nn.Sigmoid)


class EfficientNet(Network):
    """EfficientNet B0-B7 and, with Lite's options (``nets.models.efficientnet_lite.LITE``),
    EfficientNet-Lite0-4: one class, as the TF builder and timm have it.

    The options that tell them apart: ``act`` (SiLU; Lite ReLU6), ``se`` (SE after the
    depthwise conv; Lite none), ``padding`` (symmetric; Lite TF "same"), ``fix_stem_head``
    (Lite keeps the 32-channel stem and the 1280-channel head at every width) and
    ``scale_end_repeats`` (Lite keeps the first and last groups' repeats at every depth).
    """

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
        norm_layer: NormLayer | None = None,
        act: ActLayer = SiLU,
        se: bool = True,
        padding: str | None = None,
        fix_stem_head: bool = False,
        scale_end_repeats: bool = True,
        rows: Sequence[MBConvGroup] = EFFICIENTNET_GROUPS,
    ) -> None:
        super().__init__(in_chans=in_chans)
        conv = dict(act=act, eps=eps, momentum=momentum, norm_layer=norm_layer)
        stem_chs = STEM_CHS if fix_stem_head else round_filters(STEM_CHS, width_mult)
        self.stem = ConvNormAct(in_chans, stem_chs, 3, 2, padding=padding, **conv)

        plan = mbconv_plan(
            rows, width_mult, depth_mult, stem_chs=stem_chs, scale_end_repeats=scale_end_repeats
        )
        last_chs = plan[-1][-1][1]
        # torchvision's head conv has four times the last group's channels; Lite's is fixed.
        head_chs = LITE_HEAD_CHS if fix_stem_head else HEAD_EXPANSION * last_chs

        def block_kwargs(in_chs: int) -> dict:
            attn = dict(attn=se_layer(in_chs)) if se else {}
            return dict(padding=padding, **attn, **conv)

        stages, channels = mbconv_stages(
            plan, drop_path_rate, block_kwargs, ConvNormAct(last_chs, head_chs, 1, **conv)
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


register_variants(
    VARIANTS,
    lambda v, **kwargs: EfficientNet(v.width_mult, v.depth_mult, **kwargs),
    family="efficientnet",
    input_size=lambda v: v.resolution,
    min_input_size=32,
    defaults=lambda v: dict(drop_rate=v.dropout, eps=v.eps, momentum=v.momentum),
    paper=(
        "Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
        "Networks, ICML 2019"
    ),
)
register_variants(
    KERAS_VARIANTS,
    lambda v, **kwargs: EfficientNet(v.width_mult, v.depth_mult, **kwargs),
    family="efficientnet",
    input_size=lambda v: v.resolution,
    min_input_size=32,  # Keras' minimum
    defaults=lambda v: dict(drop_rate=v.dropout, **KERAS),
    paper=(
        "Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
        "Networks, ICML 2019; keras.applications"
    ),
)
