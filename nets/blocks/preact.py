"""The pre-activation bottleneck of ResNet v2 (He et al., 2016, "Identity Mappings in Deep
Residual Networks"): BatchNorm and ReLU come before each conv, and nothing follows the
addition, so the shortcut path is an identity from block to block.

Numeric conventions that weights depend on are explicit arguments: BatchNorm ``eps`` and
``momentum``, ``bias`` on the convs that no BatchNorm follows (the last 1x1 and the
projection shortcut; Keras gives those a bias, the 1x1 and 3x3 before a BatchNorm none).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from .core import ActLayer, ConvNormAct, NormLayer, ReLU, make_norm

__all__ = ["PreActBottleneck"]


class PreActBottleneck(nn.Module):
    """BN-ReLU ("preact"), then 1x1 reduce, 3x3 (with the stride), 1x1 expand (x4), plus the
    shortcut; no activation after the addition.

    The shortcut, as Keras' ResNetV2 and TF-slim build it:

    - a 1x1 conv (``downsample``, with the stride) of the *pre-activated* input where the
      channels change; BN-ReLU is then shared by both paths;
    - otherwise, at a stride, a 1x1 max-pool of the *raw* input, which only subsamples it
      (``x[..., ::s, ::s]``: the same grid as the strided 3x3 conv with padding 1);
    - otherwise the raw input itself.

    ``downsample`` is None unless the shortcut is a conv; ``pool`` likewise.
    """

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        *,
        bias: bool = True,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        preact_bn = make_norm(in_chs, norm_layer, eps, momentum)
        self.preact = nn.Sequential(OrderedDict(bn=preact_bn, act=act()))
        self.downsample = None
        self.pool = None
        if in_chs != out_chs:
            self.downsample = ConvNormAct(
                in_chs, out_chs, 1, stride, bias=bias, norm=False, act=None
            )
        elif stride > 1:
            self.pool = nn.MaxPool2d(1, stride)
        self.conv1 = ConvNormAct(in_chs, planes, 1, act=act, **bn)
        # Keras pads 1 with zeros and runs the 3x3 unpadded: the same as padding 1.
        self.conv2 = ConvNormAct(planes, planes, 3, stride, 1, act=act, **bn)
        self.conv3 = ConvNormAct(planes, out_chs, 1, bias=bias, norm=False, act=None)
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path else nn.Identity()
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preact(x)
        if self.downsample is not None:
            shortcut = self.downsample(pre)
        elif self.pool is not None:
            shortcut = self.pool(x)
        else:
            shortcut = x
        out = self.conv3(self.conv2(self.conv1(pre)))
        return self.drop_path(out) + shortcut
