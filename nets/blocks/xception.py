"""Xception's pieces (Chollet, 2017, "Xception: Deep Learning with Depthwise Separable
Convolutions"): the separable convolution and the residual block of the three flows.

The conventions of the Keras model that timm's ``legacy_xception`` weights were ported from:
a separable conv is a depthwise kxk conv straight into a pointwise 1x1 conv, with no
BatchNorm or activation between them; convs have no bias; inside a block every separable
conv is preceded by a ReLU and followed by BatchNorm, and a stride-2 block ends with a 3x3/2
max-pool (padding 1) while its shortcut is a strided 1x1 conv with BatchNorm.

Keras' own ``Xception`` pads its separable convs and max-pools "same" in TF's sense
(``padding="same"`` here): the same at stride 1, but its 3x3/2 pools pad (0, 1) on an even
input size where the symmetric padding 1 pads (1, 1).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .core import ActLayer, ConvNormAct, MaxPool2dSame, NormLayer, ReLU, make_conv, make_norm

__all__ = ["SeparableConv2d", "SeparableConvNormAct", "XceptionBlock"]


class SeparableConv2d(nn.Module):
    """Depthwise kxk conv (one filter per input channel), then pointwise 1x1 conv.

    Children ``depthwise`` and ``pointwise``. Nothing sits between the two convs, as in
    Keras' ``SeparableConv2D`` (MobileNet's ``DepthwiseSeparable`` has BN and ReLU there).
    ``padding=None`` is symmetric ``(k - 1) // 2 * dilation``; ``"same"`` is TF's SAME.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | str | None = None,
        *,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.depthwise = make_conv(
            in_chs, in_chs, kernel_size, stride, padding, dilation, groups=in_chs, bias=bias
        )
        self.pointwise = make_conv(in_chs, out_chs, 1, bias=bias)
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class SeparableConvNormAct(nn.Sequential):
    """A ``SeparableConv2d`` (``conv``), BatchNorm (``bn``) and an activation (``act``).

    ``act_first=True`` runs the activation before the conv (ReLU, SepConv, BN: the order
    inside Xception's blocks); otherwise after the BatchNorm (Xception's exit-flow convs).
    The key names are the same either way. ``act_inplace=False`` keeps the activation from
    overwriting its input, which a block's shortcut still needs.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | str | None = None,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bias: bool = False,
        act: ActLayer | None = ReLU,
        act_first: bool = False,
        act_inplace: bool = True,
    ) -> None:
        conv = SeparableConv2d(in_chs, out_chs, kernel_size, stride, padding, bias=bias)
        bn = make_norm(out_chs, norm_layer, eps, momentum)
        parts: list[tuple[str, nn.Module]] = [("conv", conv), ("bn", bn)]
        if act is not None:
            activation = act()
            if not act_inplace and hasattr(activation, "inplace"):
                activation.inplace = False
            if act_first:
                parts.insert(0, ("act", activation))
            else:
                parts.append(("act", activation))
        super().__init__(OrderedDict(parts))
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride


class XceptionBlock(nn.Module):
    """``reps`` x (ReLU, separable 3x3 conv, BN), a 3x3 max-pool when strided, plus a shortcut.

    ``grow_first=True`` changes the width in the first separable conv (entry and middle
    flows); ``False`` in the last one (the exit flow's 728 -> 728 -> 1024). With
    ``start_with_relu=False`` the first ReLU is left out (the first entry block follows the
    stem's ReLU). The shortcut is the identity when the shape is kept, else a strided 1x1
    conv with BatchNorm (``skip``). There is no activation after the addition: the next
    block starts with one. Children: ``convs`` (``SeparableConvNormAct`` units), ``pool``,
    ``skip``.

    ``padding``: ``None`` pads the separable convs by 1 and the max-pool by 1 (symmetric,
    timm's port); ``"same"`` is TF's SAME for both (Keras' model). The 1x1/2 shortcut conv
    needs no padding either way.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        reps: int,
        stride: int = 1,
        *,
        start_with_relu: bool = True,
        grow_first: bool = True,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
        padding: str | None = None,
    ) -> None:
        super().__init__()
        if padding not in (None, "same"):
            raise ValueError(f"padding must be None or 'same', got {padding!r}")
        if reps < 1:
            raise ValueError(f"an Xception block needs at least one separable conv, got {reps}")
        widths = [in_chs] + ([out_chs] * reps if grow_first else [in_chs] * (reps - 1) + [out_chs])
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        units = []
        for i in range(reps):
            units.append(
                SeparableConvNormAct(
                    widths[i],
                    widths[i + 1],
                    3,
                    padding=padding,
                    act=act if (i > 0 or start_with_relu) else None,
                    act_first=True,
                    # The first ReLU must not overwrite the block input: the shortcut reads it.
                    act_inplace=i > 0,
                    **bn,
                )
            )
        self.convs = nn.Sequential(*units)
        if stride == 1:
            self.pool = nn.Identity()
        elif padding == "same":
            self.pool = MaxPool2dSame(3, stride)
        else:
            self.pool = nn.MaxPool2d(3, stride, 1)
        self.skip = (
            ConvNormAct(in_chs, out_chs, 1, stride, act=None, **bn)
            if (stride != 1 or in_chs != out_chs)
            else None
        )
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.skip is None else self.skip(x)
        return self.pool(self.convs(x)) + shortcut
