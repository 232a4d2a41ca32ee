"""SE-ResNet-50/101/152 (Hu et al., 2018, "Squeeze-and-Excitation Networks").

A ResNet whose bottlenecks rescale their residual branch channel by channel before the
addition: global average pool, 1x1 conv to C/16, ReLU, 1x1 conv back to C, sigmoid
(``SqueezeExcite(reduction=16)``, convs with bias). Built from ``nets.models.resnet.ResNet``, the
SE module passed as the blocks' ``attn``. Two weight layouts, two sets of names:

- ``legacy_seresnet50/101/152``: the SENet authors' Caffe models as ported by Cadene and
  kept by timm (``legacy_seresnet*``). Caffe conventions: the stride sits on the first 1x1
  conv of the bottleneck (``stride_in_1x1=True``), and the stem's 3x3/2 max-pool has no
  padding and ``ceil_mode=True``. timm gives this family head dropout 0.2 by default; the
  authors' SE-ResNet prototxts have none, and neither do we (``drop_rate`` sets it).
- ``seresnet50/101/152``: timm's own ResNet with SE (``seresnet50.ra2_in1k`` weights),
  torchvision's layout: stride on the 3x3 conv, stem pool with padding 1. timm sizes the
  squeeze as make_divisible(C/16, 8), which is C/16 for every width here (16 ... 128).

Both start from timm's initialisation: Kaiming-normal (fan-out) convs, unit BatchNorm,
PyTorch's default Linear and SE biases; timm's ResNet also zeroes the last BatchNorm of each
residual branch (``zero_init_residual``), the legacy SENet does not. ResNet's builder options
(``norm_layer``, ``replace_stride_with_dilation``, ``zero_init_residual``) apply as they do
there (``nets.models.resnet``).
"""

from __future__ import annotations

import math
from functools import partial

from torch import nn

from ..blocks import Bottleneck, SqueezeExcite
from ..registry import register_variants
from .resnet import ResNet

SE_REDUCTION = 16
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

# name: (depth, legacy Caffe layout?)
SE_RESNETS = {
    **{f"legacy_seresnet{d}": (d, True) for d in DEPTHS},
    **{f"seresnet{d}": (d, False) for d in DEPTHS},
}


def se_resnet(depth: int, *, legacy: bool, **kwargs) -> ResNet:
    """An SE-ResNet of ``depth`` layers; ``legacy=True`` gives the SENet authors' layout."""
    se = partial(SqueezeExcite, reduction=SE_REDUCTION)
    if legacy:
        options = dict(
            block_kwargs=dict(attn=se, stride_in_1x1=True),
            stem_pool_padding=0,
            stem_pool_ceil_mode=True,
        )
    else:
        options = dict(block_kwargs=dict(attn=se), zero_init_residual=True)
    model = ResNet(Bottleneck, DEPTHS[depth], **{**options, **kwargs})
    _default_se_biases(model)
    return model


def _default_se_biases(model: nn.Module) -> None:
    """PyTorch's default bias init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for the SE convs:
    timm's init redraws only conv weights and leaves these biases as PyTorch made them."""
    for m in model.modules():
        if isinstance(m, SqueezeExcite):
            for conv in (m.reduce, m.expand):
                bound = 1.0 / math.sqrt(conv.in_channels)
                nn.init.uniform_(conv.bias, -bound, bound)


register_variants(
    SE_RESNETS,
    lambda variant, **kwargs: se_resnet(variant[0], legacy=variant[1], **kwargs),
    family="seresnet",
    min_input_size=32,
    paper="Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
)
