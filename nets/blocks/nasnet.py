"""NASNet-A's cells (Zoph et al., 2018, "Learning Transferable Architectures for Scalable Image
Recognition", Figure 4): the normal cell, the reduction cell and their pieces.

A cell reads two inputs, ``x`` (the previous cell's output) and ``prev`` (the one before),
and combines them in five blocks of two operations each, whose sums are concatenated. Each
cell first brings ``prev`` to the cell's width and to ``x``'s size (``adjust``, Keras'
``_adjust_block``) and projects ``x`` with ReLU-1x1 conv-BN (``conv1x1``).

Names: block k's two operations are ``left{k}`` and ``right{k}``, as Keras names them
(``normal_left1`` ...), except that the reduction cell's fifth separable branch is ``left5``
here where Keras calls it ``reduction_left4`` (the same name as the fourth block's pool).
Only the separable branches, ``adjust`` and ``conv1x1`` hold weights.

Numerics that weights depend on are arguments: BatchNorm ``eps``/``momentum``; ``padding``
of the separable convs (``"same"``: TF's SAME, asymmetric at stride 2 on an even size, as
both Keras and timm pad; ``None``: symmetric); and ``pool_pad_value``, what the reduction
cell's 3x3/2 max-pools pad with. Keras pads them with a ``ZeroPadding2D`` before a "valid"
pool, so a padded zero can win the max (``0.0``); timm's port pads TF-style with -inf
(``float("-inf")``). The 3x3/2 average pools count the padded zeros in both.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .core import NormLayer, make_norm, pad_same
from .xception import SeparableConvNormAct

# pad_same reads the input's size: one recorded call under torch.fx (wrapped where it is
# called, as core.py does), so FX tools trace the cells.
torch.fx.wrap("pad_same")

__all__ = [
    "FactorizedReduce",
    "NASNetNormalCell",
    "NASNetReductionCell",
    "ReLUConvBN",
    "SamePool2d",
    "nasnet_branch",
]

ADJUSTS = ("reduce", "project", None)


class ReLUConvBN(nn.Sequential):
    """ReLU, 1x1 conv (no bias), BatchNorm: children ``act``, ``conv``, ``bn``.

    The ReLU is not in place: the cell's other operations still read its input.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__(
            OrderedDict(
                act=nn.ReLU(),
                conv=nn.Conv2d(in_chs, out_chs, 1, bias=False),
                bn=make_norm(out_chs, norm_layer, eps, momentum),
            )
        )
        self.in_chs, self.out_chs = in_chs, out_chs


class FactorizedReduce(nn.Module):
    """Halves the size of ``prev`` without a strided conv (Keras' "adjust" reduction).

    ReLU, then two paths of ``out_chs // 2`` channels each: path 1 keeps every second pixel
    from (0, 0) (Keras' 1x1/2 average pool) and applies ``conv1``; path 2 does the same one
    pixel down and to the right (Keras: zero-pad bottom/right, crop top/left, 1x1/2 pool),
    where the last row/column past the edge is zero, then ``conv2``. The two are concatenated
    and normalised (``bn``). The output has ceil(H / 2) x ceil(W / 2) pixels.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        half = out_chs // 2
        self.act = nn.ReLU()  # not in place: prev is read again by the next cell
        self.conv1 = nn.Conv2d(in_chs, half, 1, bias=False)
        self.conv2 = nn.Conv2d(in_chs, half, 1, bias=False)
        self.bn = make_norm(2 * half, norm_layer, eps, momentum)
        self.in_chs, self.out_chs = in_chs, 2 * half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)  # (N, C, H, W)
        path1 = self.conv1(x[:, :, ::2, ::2])  # (N, C/2', ceil(H/2), ceil(W/2))
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # one pixel on, zeros past the edge
        path2 = self.conv2(shifted[:, :, ::2, ::2])
        return self.bn(torch.cat([path1, path2], 1))


class SamePool2d(nn.Module):
    """A ``kind`` ("max" or "avg") pool padded to TF's SAME output size, ceil(in / stride),
    with ``pad_value``; the extra pixel of an odd total padding goes at the bottom and right.

    The padded pixels count in the average (Keras pads with ``ZeroPadding2D`` before a valid
    pool; timm's ``AvgPool2dSame`` pads before pooling too). For a max-pool, ``0.0`` lets a
    padded zero win (Keras), ``-inf`` never does (TF's own SAME, timm).
    """

    def __init__(self, kind: str, kernel_size: int, stride: int, pad_value: float = 0.0) -> None:
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
        if kind == "avg" and pad_value != 0.0:
            raise ValueError("an average pool pads with zeros")
        self.kind, self.kernel_size, self.stride, self.pad_value = (
            kind,
            kernel_size,
            stride,
            pad_value,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        x = pad_same(x, (k, k), (s, s), (1, 1), self.pad_value)
        if self.kind == "max":
            return F.max_pool2d(x, k, s)
        return F.avg_pool2d(x, k, s)

    def extra_repr(self) -> str:
        return f"{self.kind}, {self.kernel_size}, stride={self.stride}, pad={self.pad_value}"


def avg_pool_3x3() -> nn.AvgPool2d:
    """Keras' AveragePooling2D(3, 1, "same"): TF leaves the padding out of the average."""
    return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


def nasnet_branch(
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    stride: int = 1,
    *,
    padding: str | None = "same",
    eps: float = 1e-3,
    momentum: float = 0.1,
    norm_layer: NormLayer | None = None,
) -> nn.Sequential:
    """Keras' ``_separable_conv_block``: ReLU, separable conv (with the stride), BN, ReLU,
    separable conv, BN; children ``0`` and ``1``, each a ``SeparableConvNormAct``. Both
    convs have ``out_chs`` filters (timm's middle width is the same in every NASNet-A cell)."""
    bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
    return nn.Sequential(
        # The first ReLU must not overwrite the branch input: other branches read it.
        SeparableConvNormAct(
            in_chs, out_chs, kernel_size, stride, padding, act_first=True, act_inplace=False, **bn
        ),
        SeparableConvNormAct(out_chs, out_chs, kernel_size, 1, padding, act_first=True, **bn),
    )


def _adjust(
    adjust: str | None, prev_chs: int, out_chs: int, bn: dict
) -> FactorizedReduce | ReLUConvBN | None:
    if adjust == "reduce":
        return FactorizedReduce(prev_chs, out_chs, **bn)
    if adjust == "project":
        return ReLUConvBN(prev_chs, out_chs, **bn)
    if adjust is None:
        return None
    raise ValueError(f"adjust must be one of {ADJUSTS}, got {adjust!r}")


class NASNetNormalCell(nn.Module):
    """NASNet-A's normal cell: keeps the size, outputs ``6 * out_chs`` channels.

    ``adjust``: what brings ``prev`` (``prev_chs`` channels) to ``out_chs`` channels and
    ``x``'s size: ``"reduce"`` (``FactorizedReduce``, when ``prev`` is twice as large),
    ``"project"`` (``ReLUConvBN``) or ``None`` (``prev`` already fits).
    With h = ``conv1x1(x)`` and p = ``adjust(prev)``, the blocks are (Figure 4, left):
    sep5(h) + sep3(p), sep5(p) + sep3(p), avg3(h) + p, avg3(p) + avg3(p), sep3(h) + h,
    and the output is the concatenation of p and the five sums.
    """

    def __init__(
        self,
        in_chs: int,
        prev_chs: int,
        out_chs: int,
        *,
        adjust: str | None = "project",
        padding: str | None = "same",
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if adjust is None and prev_chs != out_chs:
            raise ValueError(f"prev has {prev_chs} channels, not {out_chs}: it needs an adjust")
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        br = dict(padding=padding, **bn)
        self.adjust = _adjust(adjust, prev_chs, out_chs, bn)
        self.conv1x1 = ReLUConvBN(in_chs, out_chs, **bn)
        self.left1 = nasnet_branch(out_chs, out_chs, 5, **br)
        self.right1 = nasnet_branch(out_chs, out_chs, 3, **br)
        self.left2 = nasnet_branch(out_chs, out_chs, 5, **br)
        self.right2 = nasnet_branch(out_chs, out_chs, 3, **br)
        self.left3 = avg_pool_3x3()
        self.left4 = avg_pool_3x3()
        self.right4 = avg_pool_3x3()
        self.left5 = nasnet_branch(out_chs, out_chs, 3, **br)
        self.in_chs, self.prev_chs, self.out_chs, self.stride = in_chs, prev_chs, 6 * out_chs, 1

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        # x: (N, in_chs, H, W); prev: (N, prev_chs, H, W), or (2H, 2W) with adjust="reduce".
        p = prev if self.adjust is None else self.adjust(prev)  # (N, F, H, W)
        h = self.conv1x1(x)  # (N, F, H, W)
        x1 = self.left1(h) + self.right1(p)
        x2 = self.left2(p) + self.right2(p)
        x3 = self.left3(h) + p
        x4 = self.left4(p) + self.right4(p)
        x5 = self.left5(h) + h
        return torch.cat([p, x1, x2, x3, x4, x5], 1)  # (N, 6F, H, W)


class NASNetReductionCell(nn.Module):
    """NASNet-A's reduction cell: halves the size (TF SAME: ceil(H / 2)), outputs
    ``4 * out_chs`` channels.

    ``adjust`` as in ``NASNetNormalCell``; ``None`` for the first stem cell, which reads
    the stem's output as both inputs, so that its ``prev`` branches take ``prev_chs``
    channels. With h = ``conv1x1(x)`` and p = ``adjust(prev)``, the blocks are (Figure 4,
    right; every op on h or p has stride 2):
    x1 = sep5(h) + sep7(p), x2 = max3(h) + sep7(p), x3 = avg3(h) + sep5(p),
    x4 = avg3/1(x1) + x2, x5 = sep3/1(x1) + max3(h); the output concatenates x2 .. x5.
    ``pool_pad_value``: the 3x3/2 max-pools' padding (0.0 for Keras, -inf for timm).
    """

    def __init__(
        self,
        in_chs: int,
        prev_chs: int,
        out_chs: int,
        *,
        adjust: str | None = "project",
        padding: str | None = "same",
        pool_pad_value: float = 0.0,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        br = dict(padding=padding, **bn)
        self.adjust = _adjust(adjust, prev_chs, out_chs, bn)
        p_chs = prev_chs if adjust is None else out_chs
        self.conv1x1 = ReLUConvBN(in_chs, out_chs, **bn)
        self.left1 = nasnet_branch(out_chs, out_chs, 5, 2, **br)
        self.right1 = nasnet_branch(p_chs, out_chs, 7, 2, **br)
        self.left2 = SamePool2d("max", 3, 2, pool_pad_value)
        self.right2 = nasnet_branch(p_chs, out_chs, 7, 2, **br)
        self.left3 = SamePool2d("avg", 3, 2)
        self.right3 = nasnet_branch(p_chs, out_chs, 5, 2, **br)
        self.left4 = avg_pool_3x3()
        self.left5 = nasnet_branch(out_chs, out_chs, 3, **br)
        self.right5 = SamePool2d("max", 3, 2, pool_pad_value)
        self.in_chs, self.prev_chs, self.out_chs, self.stride = in_chs, prev_chs, 4 * out_chs, 2

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        # x: (N, in_chs, H, W); prev: (N, prev_chs, H, W), or (2H, 2W) with adjust="reduce".
        p = prev if self.adjust is None else self.adjust(prev)  # (N, F or prev_chs, H, W)
        h = self.conv1x1(x)  # (N, F, H, W)
        x1 = self.left1(h) + self.right1(p)  # (N, F, H/2, W/2) from here on
        x2 = self.left2(h) + self.right2(p)
        x3 = self.left3(h) + self.right3(p)
        x4 = self.left4(x1) + x2
        x5 = self.left5(x1) + self.right5(h)
        return torch.cat([x2, x3, x4, x5], 1)  # (N, 4F, ceil(H/2), ceil(W/2))
