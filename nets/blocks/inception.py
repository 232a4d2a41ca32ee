"""Inception blocks: GoogLeNet's module, the Inception-v3 modules and their auxiliary heads.

GoogLeNet (Szegedy et al., 2014):

- ``InceptionModule``: four parallel branches concatenated along channels: a 1x1 conv; a 1x1
  bottleneck then a 3x3; a 1x1 bottleneck then a "5x5"; a 3x3/1 max-pool then a 1x1 pool
  projection. ``naive=True`` is the paper's first sketch (Figure 2a): no bottlenecks and no
  pool projection, so the pool branch passes all input channels through and the width grows
  with every module. The "5x5" kernel is an argument: torchvision's GoogLeNet weights need 3
  there (a bug kept for its weights, pytorch/vision#906).
- ``GoogLeNetAux``: the auxiliary classifier (4x4 average pool, 1x1 conv to 128, fc 1024,
  dropout 0.7, classifier).

Inception v3 (Szegedy et al., 2015, "Rethinking the Inception Architecture"), named after
torchvision's InceptionA..E; the convs keep torchvision's (TF-slim's) branch names:

- ``InceptionV3A`` (35x35 grid): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1.
- ``InceptionV3B`` (grid reduction 35 -> 17): 3x3/2 | 1x1-3x3-3x3/2 | max-pool/2.
- ``InceptionV3C`` (17x17 grid): the 7x7 factorised into 1x7 and 7x1 convs.
- ``InceptionV3D`` (grid reduction 17 -> 8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool/2.
- ``InceptionV3E`` (8x8 grid): the expanded filter bank, whose 3x3s split into parallel
  1x3 and 3x1 convs that are concatenated.
- ``InceptionV3Aux``: the auxiliary classifier on the 17x17 grid (5x5/3 average pool, 1x1
  conv to 128, 5x5 conv to 768, classifier).

``InceptionInputTransform`` re-normalises ImageNet-normalised input to the ``(x - 0.5) / 0.5``
scaling the Google-trained weights expect (torchvision's ``transform_input``).

Every conv is a ``ConvNormAct`` (conv without bias, BatchNorm, ReLU) with BatchNorm
``eps``/``momentum`` explicit; the pooling conventions (``ceil_mode``,
``count_include_pad``) are arguments too. The defaults are torchvision's.
"""

from __future__ import annotations

import torch
from torch import nn

from weights.registry import IMAGENET_MEAN, IMAGENET_STD

from .core import ActLayer, ConvNormAct, NormLayer, ReLU

__all__ = [
    "GoogLeNetAux",
    "InceptionInputTransform",
    "InceptionModule",
    "InceptionV3A",
    "InceptionV3Aux",
    "InceptionV3B",
    "InceptionV3C",
    "InceptionV3D",
    "InceptionV3E",
]


class InceptionInputTransform(nn.Module):
    """Map ImageNet-normalised RGB, ``(x - mean) / std``, to ``(x - 0.5) / 0.5``.

    Google trained GoogLeNet and Inception v3 on inputs scaled to [-1, 1]; torchvision serves
    their ported weights behind ImageNet normalisation and undoes it in the model
    (``transform_input=True``). The same per-channel affine map here; the constants are
    non-persistent buffers, so they follow ``.to(device)`` and add no checkpoint keys.
    """

    def __init__(
        self,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        target_mean: float = 0.5,
        target_std: float = 0.5,
    ) -> None:
        super().__init__()
        # x_target = (x * std + mean - target_mean) / target_std, per channel. The constants
        # are worked out in float64 and rounded once, as torchvision's Python floats are, so
        # that both give bit-identical inputs.
        m, s = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        scale, shift = s / target_std, (m - target_mean) / target_std
        dtype = torch.get_default_dtype()
        self.register_buffer("scale", scale.to(dtype).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", shift.to(dtype).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _bn(eps: float, momentum: float, norm_layer: NormLayer | None, act: ActLayer) -> dict:
    return dict(eps=eps, momentum=momentum, norm_layer=norm_layer, act=act)


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module; the arguments follow the paper's Table 1 columns.

    Branches (concatenated in this order): ``branch1x1``; ``branch3x3`` (``reduce`` 1x1, then
    ``conv`` 3x3); ``branch5x5`` (``reduce`` 1x1, then ``conv`` with ``kernel_5x5``);
    ``branch_pool`` (``pool`` 3x3/1 max-pool, then ``proj`` 1x1). Output channels:
    ``ch1x1 + ch3x3 + ch5x5 + pool_proj``.

    ``naive=True`` drops the two bottlenecks and the pool projection (``ch3x3red``,
    ``ch5x5red`` and ``pool_proj`` are then ignored): the 3x3 and 5x5 convs read all
    ``in_chs`` channels and the pool branch passes them on, so the output has
    ``ch1x1 + ch3x3 + ch5x5 + in_chs`` channels (the paper's Figure 2a).
    """

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        naive: bool = False,
        kernel_5x5: int = 5,
        ceil_mode: bool = True,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        bn = _bn(eps, momentum, norm_layer, act)
        self.naive = naive
        self.branch1x1 = ConvNormAct(in_chs, ch1x1, 1, **bn)
        self.branch3x3 = self._reduce_then(in_chs, ch3x3red, ch3x3, 3, bn)
        self.branch5x5 = self._reduce_then(in_chs, ch5x5red, ch5x5, kernel_5x5, bn)
        self.branch_pool = nn.Sequential()
        self.branch_pool.add_module("pool", nn.MaxPool2d(3, 1, 1, ceil_mode=ceil_mode))
        if not naive:
            self.branch_pool.add_module("proj", ConvNormAct(in_chs, pool_proj, 1, **bn))
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + (in_chs if naive else pool_proj)

    def _reduce_then(
        self, in_chs: int, reduced: int, out_chs: int, kernel: int, bn: dict
    ) -> nn.Sequential:
        branch = nn.Sequential()
        if not self.naive:
            # The 1x1 bottleneck: the expensive kxk conv then reads `reduced` channels only.
            branch.add_module("reduce", ConvNormAct(in_chs, reduced, 1, **bn))
            in_chs = reduced
        branch.add_module("conv", ConvNormAct(in_chs, out_chs, kernel, **bn))
        return branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)], 1
        )


class GoogLeNetAux(nn.Module):
    """GoogLeNet's auxiliary classifier (on inception4a and inception4d).

    Average-pool to ``pool_size`` x ``pool_size`` (adaptively, as torchvision does, so any
    input size works), 1x1 conv to ``proj`` channels, ``fc1`` to ``hidden`` with ReLU,
    dropout, and the classifier ``fc``.
    """

    def __init__(
        self,
        in_chs: int,
        num_classes: int = 1000,
        *,
        proj: int = 128,
        hidden: int = 1024,
        pool_size: int = 4,
        drop_rate: float = 0.7,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.conv = ConvNormAct(in_chs, proj, 1, **_bn(eps, momentum, norm_layer, act))
        self.flatten = nn.Flatten(1)  # (N, proj, p, p) -> (N, proj * p * p)
        self.fc1 = nn.Linear(proj * pool_size * pool_size, hidden)
        self.act = act()
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.fc = nn.Linear(hidden, num_classes)
        self.num_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.conv(self.pool(x)))
        return self.fc(self.drop(self.act(self.fc1(x))))

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)


class InceptionV3Aux(nn.Module):
    """Inception v3's auxiliary classifier on the 17x17 grid (after Mixed_6e).

    5x5/3 average pool (17 -> 5), 1x1 conv to 128, 5x5 conv to 768 (5 -> 1), global average
    pool (for larger inputs) and the classifier ``fc``. The grid must be at least 17x17 (a
    299-pixel input), as in torchvision.
    """

    def __init__(
        self,
        in_chs: int,
        num_classes: int = 1000,
        *,
        proj: int = 128,
        width: int = 768,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        bn = _bn(eps, momentum, norm_layer, act)
        self.pool = nn.AvgPool2d(5, 3)
        self.conv0 = ConvNormAct(in_chs, proj, 1, **bn)
        self.conv1 = ConvNormAct(proj, width, 5, padding=0, **bn)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(width, num_classes)
        self.num_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(self.flatten(self.global_pool(x)))

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)


class _Branches(nn.Module):
    """Shared forward of the v3 modules: subclasses list their branches as callables."""

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.branches(x), 1)


class InceptionV3A(_Branches):
    """35x35 module: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | 3x3/1 avg-pool -> 1x1.

    Output channels ``ch1x1 + ch5x5 + ch3x3dbl + pool_features`` (256 or 288 in v3).
    """

    def __init__(
        self,
        in_chs: int,
        pool_features: int,
        *,
        ch1x1: int = 64,
        ch5x5red: int = 48,
        ch5x5: int = 64,
        ch3x3dbl_red: int = 64,
        ch3x3dbl: int = 96,
        count_include_pad: bool = True,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        bn = _bn(eps, momentum, norm_layer, act)
        self.branch1x1 = ConvNormAct(in_chs, ch1x1, 1, **bn)
        self.branch5x5_1 = ConvNormAct(in_chs, ch5x5red, 1, **bn)
        self.branch5x5_2 = ConvNormAct(ch5x5red, ch5x5, 5, **bn)
        self.branch3x3dbl_1 = ConvNormAct(in_chs, ch3x3dbl_red, 1, **bn)
        self.branch3x3dbl_2 = ConvNormAct(ch3x3dbl_red, ch3x3dbl, 3, **bn)
        self.branch3x3dbl_3 = ConvNormAct(ch3x3dbl, ch3x3dbl, 3, **bn)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=count_include_pad)
        self.branch_pool = ConvNormAct(in_chs, pool_features, 1, **bn)
        self.out_chs = ch1x1 + ch5x5 + ch3x3dbl + pool_features

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(self.pool(x)),
        ]


class InceptionV3B(_Branches):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | 3x3/2 max-pool (all unpadded).

    Pooling and convolving side by side halves the grid without the representational
    bottleneck of pooling first (the paper's Figure 10). Output ``ch3x3 + ch3x3dbl + in_chs``.
    """

    def __init__(
        self,
        in_chs: int,
        *,
        ch3x3: int = 384,
        ch3x3dbl_red: int = 64,
        ch3x3dbl: int = 96,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        bn = _bn(eps, momentum, norm_layer, act)
        self.branch3x3 = ConvNormAct(in_chs, ch3x3, 3, 2, 0, **bn)
        self.branch3x3dbl_1 = ConvNormAct(in_chs, ch3x3dbl_red, 1, **bn)
        self.branch3x3dbl_2 = ConvNormAct(ch3x3dbl_red, ch3x3dbl, 3, **bn)
        self.branch3x3dbl_3 = ConvNormAct(ch3x3dbl, ch3x3dbl, 3, 2, 0, **bn)
        self.pool = nn.MaxPool2d(3, 2)
        self.out_chs = ch3x3 + ch3x3dbl + in_chs

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.pool(x),
        ]


class InceptionV3C(_Branches):
    """17x17 module with the 7x7 factorised into 1x7 and 7x1 convs (the paper's Figure 6):
    1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg-pool -> 1x1.

    ``channels_7x7`` is the width inside the factorised branches (128, 160 or 192 in v3);
    every branch ends at ``out_branch`` channels (4 * 192 = 768 out).
    """

    def __init__(
        self,
        in_chs: int,
        channels_7x7: int,
        *,
        out_branch: int = 192,
        count_include_pad: bool = True,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        bn = _bn(eps, momentum, norm_layer, act)
        c7, out = channels_7x7, out_branch
        row, col = (1, 7), (7, 1)  # a 1x7 conv mixes along the row, a 7x1 along the column
        pad_row, pad_col = (0, 3), (3, 0)
        self.branch1x1 = ConvNormAct(in_chs, out, 1, **bn)
        self.branch7x7_1 = ConvNormAct(in_chs, c7, 1, **bn)
        self.branch7x7_2 = ConvNormAct(c7, c7, row, padding=pad_row, **bn)
        self.branch7x7_3 = ConvNormAct(c7, out, col, padding=pad_col, **bn)
        self.branch7x7dbl_1 = ConvNormAct(in_chs, c7, 1, **bn)
        self.branch7x7dbl_2 = ConvNormAct(c7, c7, col, padding=pad_col, **bn)
        self.branch7x7dbl_3 = ConvNormAct(c7, c7, row, padding=pad_row, **bn)
        self.branch7x7dbl_4 = ConvNormAct(c7, c7, col, padding=pad_col, **bn)
        self.branch7x7dbl_5 = ConvNormAct(c7, out, row, padding=pad_row, **bn)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=count_include_pad)
        self.branch_pool = ConvNormAct(in_chs, out, 1, **bn)
        self.out_chs = 4 * out

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = self.branch7x7dbl_2(self.branch7x7dbl_1(x))
        d7 = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(d7)))
        return [self.branch1x1(x), b7, d7, self.branch_pool(self.pool(x))]


class InceptionV3D(_Branches):
    """Grid reduction 17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max-pool.

    Output ``ch3x3 + ch7x7x3 + in_chs`` (320 + 192 + 768 = 1280 in v3).
    """

    def __init__(
        self,
        in_chs: int,
        *,
        ch3x3red: int = 192,
        ch3x3: int = 320,
        ch7x7x3: int = 192,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        bn = _bn(eps, momentum, norm_layer, act)
        c = ch7x7x3
        self.branch3x3_1 = ConvNormAct(in_chs, ch3x3red, 1, **bn)
        self.branch3x3_2 = ConvNormAct(ch3x3red, ch3x3, 3, 2, 0, **bn)
        self.branch7x7x3_1 = ConvNormAct(in_chs, c, 1, **bn)
        self.branch7x7x3_2 = ConvNormAct(c, c, (1, 7), padding=(0, 3), **bn)
        self.branch7x7x3_3 = ConvNormAct(c, c, (7, 1), padding=(3, 0), **bn)
        self.branch7x7x3_4 = ConvNormAct(c, c, 3, 2, 0, **bn)
        self.pool = nn.MaxPool2d(3, 2)
        self.out_chs = ch3x3 + c + in_chs

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        return [self.branch3x3_2(self.branch3x3_1(x)), b7, self.pool(x)]


class InceptionV3E(_Branches):
    """8x8 module, the expanded filter bank (the paper's Figure 7): 1x1 | 1x1 -> (1x3 and
    3x1 side by side) | 1x1 -> 3x3 -> (1x3 and 3x1 side by side) | avg-pool -> 1x1.

    Output ``ch1x1 + 2 * ch3x3 + 2 * ch3x3dbl + pool_features`` (2048 in v3).
    """

    def __init__(
        self,
        in_chs: int,
        *,
        ch1x1: int = 320,
        ch3x3: int = 384,
        ch3x3dbl_red: int = 448,
        ch3x3dbl: int = 384,
        pool_features: int = 192,
        count_include_pad: bool = True,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        bn = _bn(eps, momentum, norm_layer, act)
        row, col = dict(padding=(0, 1)), dict(padding=(1, 0))
        self.branch1x1 = ConvNormAct(in_chs, ch1x1, 1, **bn)
        self.branch3x3_1 = ConvNormAct(in_chs, ch3x3, 1, **bn)
        self.branch3x3_2a = ConvNormAct(ch3x3, ch3x3, (1, 3), **row, **bn)
        self.branch3x3_2b = ConvNormAct(ch3x3, ch3x3, (3, 1), **col, **bn)
        self.branch3x3dbl_1 = ConvNormAct(in_chs, ch3x3dbl_red, 1, **bn)
        self.branch3x3dbl_2 = ConvNormAct(ch3x3dbl_red, ch3x3dbl, 3, **bn)
        self.branch3x3dbl_3a = ConvNormAct(ch3x3dbl, ch3x3dbl, (1, 3), **row, **bn)
        self.branch3x3dbl_3b = ConvNormAct(ch3x3dbl, ch3x3dbl, (3, 1), **col, **bn)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=count_include_pad)
        self.branch_pool = ConvNormAct(in_chs, pool_features, 1, **bn)
        self.out_chs = ch1x1 + 2 * ch3x3 + 2 * ch3x3dbl + pool_features

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return [
            self.branch1x1(x),
            torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1),
            torch.cat([self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3)], 1),
            self.branch_pool(self.pool(x)),
        ]
