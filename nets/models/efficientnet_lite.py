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

from typing import NamedTuple

from ..blocks import ReLU6
from ..registry import register_variants
from .efficientnet import EfficientNet


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

# What makes an EfficientNet Lite: the arguments of ``EfficientNet`` the TF checkpoints
# were trained with (TF momentum 0.99 is PyTorch's 0.01). Stochastic depth stays 0.2.
LITE = dict(
    act=ReLU6,
    se=False,
    padding="same",
    fix_stem_head=True,
    scale_end_repeats=False,
    eps=1e-3,
    momentum=0.01,
)


def EfficientNetLite(width_mult: float = 1.0, depth_mult: float = 1.0, **kwargs) -> EfficientNet:  # noqa: N802 (reads as the class it builds)
    """An ``EfficientNet`` with Lite's options (``LITE``); ``kwargs`` override them."""
    return EfficientNet(width_mult, depth_mult, **{**LITE, **kwargs})


register_variants(
    VARIANTS,
    lambda v, **kwargs: EfficientNetLite(v.width_mult, v.depth_mult, **kwargs),
    family="efficientnet_lite",
    input_size=lambda v: v.resolution,
    min_input_size=32,
    defaults=lambda v: dict(drop_rate=v.dropout),
    paper=(
        "Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
        "Networks, ICML 2019 (Lite variants: Google's efficientnet/lite builder, 2020)"
    ),
)
