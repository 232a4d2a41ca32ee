"""The blocks of Inception-v4 and Inception-ResNet-v2 (Szegedy et al., 2016, "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning").

Widths and branch layouts are those of Google's TF-slim models, which the published
checkpoints (and timm's ports of them) follow; where TF-slim differs from the paper's
figures the docstring says so. Numeric conventions are keyword arguments with the
checkpoints' values as defaults: BatchNorm ``eps=1e-3`` (TF's 0.001), convs without bias,
"VALID" (unpadded) stride-2 convs and max-pools with ``ceil_mode=False``, and 3x3 average
pools that leave the zero padding out of the mean (``count_include_pad=False``).

Children are called ``branch0``, ``branch1``, ... in concatenation order; a branch of one
conv is a ``ConvNormAct``, a longer one an ``nn.Sequential``. The residual blocks call their
1x1 linear projection ``project``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from .core import ActLayer, ConvNormAct, NormLayer, ReLU

__all__ = [
    "FactorizedStemBlock",
    "InceptionConcat",
    "InceptionReductionA",
    "InceptionResNetA",
    "InceptionResNetB",
    "InceptionResNetBlock",
    "InceptionResNetC",
    "InceptionResNetMixed5b",
    "InceptionResNetReductionB",
    "InceptionV4A",
    "InceptionV4B",
    "InceptionV4C",
    "InceptionV4ReductionB",
    "PoolConvReduction",
]

# One conv of a branch: (out channels, kernel, stride, padded). ``padded`` keeps the spatial
# size at stride 1 ((k - 1) // 2 on each side, per dimension); unpadded is TF's "VALID".
ConvSpec = tuple[int, int | tuple[int, int], int, bool]


def _conv(in_chs: int, spec: ConvSpec, kw: dict) -> ConvNormAct:
    out_chs, kernel, stride, padded = spec
    kh, kw_ = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    padding = ((kh - 1) // 2, (kw_ - 1) // 2) if padded else (0, 0)
    return ConvNormAct(in_chs, out_chs, (kh, kw_), stride, padding, **kw)


def _branch(in_chs: int, specs: Sequence[ConvSpec], kw: dict) -> nn.Module:
    """A chain of ConvNormActs; a chain of one is the conv itself (no Sequential around it)."""
    convs = []
    for spec in specs:
        convs.append(_conv(in_chs, spec, kw))
        in_chs = spec[0]
    return convs[0] if len(convs) == 1 else nn.Sequential(*convs)


class Pool(NamedTuple):
    """A pooling branch. ``"avg"``: 3x3/1 average pool then a 1x1 conv to ``proj`` channels
    (the pool branch of the Inception blocks); ``"max"``: a 3x3/2 max-pool beside the
    reducing convs (the input's channels pass through)."""

    kind: str
    proj: int = 0


MAX = Pool("max")  # the reductions' pool branch

# One branch: a chain of convs, or a pool.
Branch = tuple[ConvSpec, ...] | Pool


def _make_branch(in_chs: int, branch: Branch, kw: dict, pool_kw: dict) -> tuple[nn.Module, int]:
    """The branch's module and output channels."""
    if isinstance(branch, Pool) and branch.kind == "max":
        return nn.MaxPool2d(3, 2, ceil_mode=pool_kw["ceil_mode"]), in_chs
    if isinstance(branch, Pool):
        pool = nn.AvgPool2d(3, 1, 1, count_include_pad=pool_kw["count_include_pad"])
        return nn.Sequential(pool, _conv(in_chs, (branch.proj, 1, 1, False), kw)), branch.proj
    return _branch(in_chs, branch, kw), branch[-1][0]


def _conv_kw(
    eps: float, momentum: float, norm_layer: NormLayer | None, bias: bool, act: ActLayer
) -> dict:
    return dict(eps=eps, momentum=momentum, norm_layer=norm_layer, bias=bias, act=act)


class InceptionConcat(nn.ModuleDict):
    """Parallel branches over one input, concatenated: every Inception-v4 and
    Inception-ResNet-v2 block is one of these with its table of branches.

    ``branches`` (or the subclass's ``BRANCHES``) lists each branch: a chain of
    ``(out channels, kernel, stride, padded)`` convs, ``Pool("avg", proj)`` or ``MAX``.
    Children are ``branch0``, ``branch1``, ... in concatenation order; a branch of one conv
    is the ``ConvNormAct`` itself. ``count_include_pad`` applies to the average pools,
    ``ceil_mode`` to the max-pools; the other arguments to every conv.

    A ``ModuleDict`` of its children, so that ``forward`` can run a table's worth of
    branches by iterating over them: TorchScript compiles no ``getattr`` of a computed name.
    """

    BRANCHES: ClassVar[tuple[Branch, ...]] = ()
    IN_CHS: ClassVar[int] = 0  # the published block's input width, the default

    def __init__(
        self,
        in_chs: int | None = None,
        *,
        branches: Sequence[Branch] | None = None,
        count_include_pad: bool = False,
        ceil_mode: bool = False,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bias: bool = False,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        in_chs = self.IN_CHS if in_chs is None else in_chs
        branches = self.BRANCHES if branches is None else tuple(branches)
        if not branches or in_chs < 1:
            raise ValueError(f"{type(self).__name__} needs branches and in_chs, got {in_chs}")
        kw = _conv_kw(eps, momentum, norm_layer, bias, act)
        pool_kw = dict(count_include_pad=count_include_pad, ceil_mode=ceil_mode)
        self.cat_chs = 0
        for i, branch in enumerate(branches):
            module, out = _make_branch(in_chs, branch, kw, pool_kw)
            self.add_module(f"branch{i}", module)
            self.cat_chs += out
        self.num_branches = len(branches)
        self.out_chs = self.cat_chs

    def concat(self, x: torch.Tensor) -> torch.Tensor:
        """The branches' outputs, concatenated along channels."""
        outs: list[torch.Tensor] = []
        for name, branch in self.items():
            if name.startswith("branch"):  # a subclass's other children come after them
                outs.append(branch(x))
        return torch.cat(outs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.concat(x)


class PoolConvReduction(nn.Module):
    """A 3x3/2 max-pool beside a 3x3/2 conv, concatenated: the stem's Mixed_3a (pool first,
    64 -> 64 + 96 channels) and Mixed_5a (conv first, 192 -> 192 + 192) of Inception-v4.

    Children ``pool`` and ``conv``; ``pool_first`` is the concatenation order.
    """

    def __init__(
        self,
        in_chs: int,
        conv_chs: int,
        *,
        pool_first: bool,
        ceil_mode: bool = False,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bias: bool = False,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=ceil_mode)
        self.conv = _conv(
            in_chs, (conv_chs, 3, 2, False), _conv_kw(eps, momentum, norm_layer, bias, act)
        )
        self.pool_first = pool_first
        self.out_chs = in_chs + conv_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = (self.pool(x), self.conv(x)) if self.pool_first else (self.conv(x), self.pool(x))
        return torch.cat(parts, 1)


class FactorizedStemBlock(InceptionConcat):
    """Inception-v4's Mixed_4a (Fig. 3): two 1x1-bottlenecked branches that each end in an
    unpadded 3x3 conv (73x73 -> 71x71 at 299 input), the second with a 7x7 factorized into
    1x7 and 7x1. 160 -> 96 + 96 channels."""

    IN_CHS = 160
    BRANCHES = (
        ((64, 1, 1, False), (96, 3, 1, False)),
        ((64, 1, 1, False), (64, (1, 7), 1, True), (64, (7, 1), 1, True), (96, 3, 1, False)),
    )


class InceptionV4A(InceptionConcat):
    """Inception-A (Fig. 4), the 35x35 block: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | avgpool-1x1,
    96 channels each (384 in and out)."""

    IN_CHS = 384
    BRANCHES = (
        ((96, 1, 1, False),),
        ((64, 1, 1, False), (96, 3, 1, True)),
        ((64, 1, 1, False), (96, 3, 1, True), (96, 3, 1, True)),
        Pool("avg", 96),
    )


class InceptionReductionA(InceptionConcat):
    """Reduction-A (Fig. 7), 35x35 -> 17x17: an unpadded 3x3/2 conv of ``n`` filters | 1x1
    (``k``) - 3x3 (``l``) - 3x3/2 (``m``) | 3x3/2 max-pool. Output ``n + m + in_chs``.

    Table 1 of the paper: Inception-v4 k, l, m, n = 192, 224, 256, 384 (Mixed_6a, 384 ->
    1024); Inception-ResNet-v2 256, 256, 384, 384 (Mixed_6a, 320 -> 1088).
    """

    def __init__(
        self,
        in_chs: int,
        k: int,
        l: int,  # noqa: E741 (the paper's name)
        m: int,
        n: int,
        **kwargs,
    ) -> None:
        branches = (((n, 3, 2, False),), ((k, 1, 1, False), (l, 3, 1, True), (m, 3, 2, False)), MAX)
        super().__init__(in_chs, branches=branches, **kwargs)


class InceptionV4B(InceptionConcat):
    """Inception-B (Fig. 5), the 17x17 block with 7x7 convs factorized into 1x7 and 7x1:
    1x1 (384) | 1x1-1x7-7x1 (256) | 1x1-7x1-1x7-7x1-1x7 (256) | avgpool-1x1 (128); 1024 in
    and out. The long branch starts with a 7x1 as in TF-slim (Fig. 5 draws a 1x7 first)."""

    IN_CHS = 1024
    BRANCHES = (
        ((384, 1, 1, False),),
        ((192, 1, 1, False), (224, (1, 7), 1, True), (256, (7, 1), 1, True)),
        (
            (192, 1, 1, False),
            (192, (7, 1), 1, True),
            (224, (1, 7), 1, True),
            (224, (7, 1), 1, True),
            (256, (1, 7), 1, True),
        ),
        Pool("avg", 128),
    )


class InceptionV4ReductionB(InceptionConcat):
    """Reduction-B (Fig. 8), 17x17 -> 8x8: 1x1 (192) - 3x3/2 (192) | 1x1 (256) - 1x7 (256) -
    7x1 (320) - 3x3/2 (320) | 3x3/2 max-pool; 1024 -> 1536 channels."""

    IN_CHS = 1024
    BRANCHES = (
        ((192, 1, 1, False), (192, 3, 2, False)),
        ((256, 1, 1, False), (256, (1, 7), 1, True), (320, (7, 1), 1, True), (320, 3, 2, False)),
        MAX,
    )


class InceptionV4C(nn.Module):
    """Inception-C (Fig. 6), the 8x8 block: 1x1 (256) | 1x1 (384) then 1x3 and 3x1 side by
    side (256 each) | 1x1 (384) - 3x1 (448) - 1x3 (512) then 1x3 and 3x1 side by side (256
    each) | avgpool-1x1 (256); 1536 in and out. TF-slim's order of the 3x1 (448) and 1x3
    (512); Fig. 6 draws the 1x3 first.

    The split branches are flat children, as in timm's port: ``branch1_0`` feeds ``branch1_1a``
    and ``branch1_1b``; ``branch2_0`` ... ``branch2_2`` feed ``branch2_3a`` and ``branch2_3b``.
    """

    def __init__(
        self,
        in_chs: int = 1536,
        *,
        count_include_pad: bool = False,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bias: bool = False,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        kw = _conv_kw(eps, momentum, norm_layer, bias, act)
        self.branch0 = _conv(in_chs, (256, 1, 1, False), kw)
        self.branch1_0 = _conv(in_chs, (384, 1, 1, False), kw)
        self.branch1_1a = _conv(384, (256, (1, 3), 1, True), kw)
        self.branch1_1b = _conv(384, (256, (3, 1), 1, True), kw)
        self.branch2_0 = _conv(in_chs, (384, 1, 1, False), kw)
        self.branch2_1 = _conv(384, (448, (3, 1), 1, True), kw)
        self.branch2_2 = _conv(448, (512, (1, 3), 1, True), kw)
        self.branch2_3a = _conv(512, (256, (1, 3), 1, True), kw)
        self.branch2_3b = _conv(512, (256, (3, 1), 1, True), kw)
        self.branch3, _ = _make_branch(
            in_chs, Pool("avg", 256), kw, dict(count_include_pad=count_include_pad)
        )
        self.out_chs = 1536

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.branch1_0(x)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                self.branch0(x),
                self.branch1_1a(x1),
                self.branch1_1b(x1),
                self.branch2_3a(x2),
                self.branch2_3b(x2),
                self.branch3(x),
            ],
            1,
        )


class InceptionResNetMixed5b(InceptionConcat):
    """The last block of Inception-ResNet-v2's stem in TF-slim (Mixed_5b; the paper's Fig. 3
    stem is replaced by this Inception-A-like block): 1x1 (96) | 1x1 (48) - 5x5 (64) |
    1x1 (64) - 3x3 (96) - 3x3 (96) | avgpool-1x1 (64); 192 -> 320 channels."""

    IN_CHS = 192
    BRANCHES = (
        ((96, 1, 1, False),),
        ((48, 1, 1, False), (64, 5, 1, True)),
        ((64, 1, 1, False), (96, 3, 1, True), (96, 3, 1, True)),
        Pool("avg", 64),
    )


class InceptionResNetBlock(InceptionConcat):
    """x + scale * project(concat(branches(x))), then the activation (if any): the residual
    Inception block, table-driven like ``InceptionConcat``.

    Scaling the residual branch down (0.1 to 0.3) before the addition is what the paper
    found to keep very wide residual Inception networks from dying early in training
    (Section 3.3). ``project`` is a plain 1x1 conv back to ``in_chs``, with a bias and no
    BatchNorm, as in TF-slim. ``final_act=False`` leaves the sum linear (the last Block8 of
    Inception-ResNet-v2).
    """

    def __init__(
        self,
        in_chs: int | None = None,
        scale: float = 1.0,
        *,
        branches: Sequence[Branch] | None = None,
        final_act: bool = True,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bias: bool = False,
        project_bias: bool = True,
        act: ActLayer = ReLU,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__(
            in_chs,
            branches=branches,
            eps=eps,
            momentum=momentum,
            norm_layer=norm_layer,
            bias=bias,
            act=act,
        )
        in_chs = self.IN_CHS if in_chs is None else in_chs
        self.project = nn.Conv2d(self.cat_chs, in_chs, 1, bias=project_bias)
        self.scale = scale
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path else nn.Identity()
        self.act = act() if final_act else nn.Identity()
        self.out_chs = in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.concat(x))
        return self.act(self.drop_path(out * self.scale) + x)


class InceptionResNetA(InceptionResNetBlock):
    """Inception-ResNet-A (Fig. 16; TF-slim's block35), the 35x35 residual block:
    1x1 (32) | 1x1 (32) - 3x3 (32) | 1x1 (32) - 3x3 (48) - 3x3 (64), projected back to
    ``in_chs`` (320 in TF-slim; the paper draws 384) and added with ``scale`` (0.17)."""

    IN_CHS = 320
    BRANCHES = (
        ((32, 1, 1, False),),
        ((32, 1, 1, False), (32, 3, 1, True)),
        ((32, 1, 1, False), (48, 3, 1, True), (64, 3, 1, True)),
    )


class InceptionResNetB(InceptionResNetBlock):
    """Inception-ResNet-B (Fig. 17; TF-slim's block17), the 17x17 residual block:
    1x1 (192) | 1x1 (128) - 1x7 (160) - 7x1 (192), projected back to ``in_chs`` (1088) and
    added with ``scale`` (0.10)."""

    IN_CHS = 1088
    BRANCHES = (
        ((192, 1, 1, False),),
        ((128, 1, 1, False), (160, (1, 7), 1, True), (192, (7, 1), 1, True)),
    )


class InceptionResNetC(InceptionResNetBlock):
    """Inception-ResNet-C (Fig. 19; TF-slim's block8), the 8x8 residual block:
    1x1 (192) | 1x1 (192) - 1x3 (224) - 3x1 (256), projected back to ``in_chs`` (2080) and
    added with ``scale`` (0.20; 1.0 and no activation for the network's last one)."""

    IN_CHS = 2080
    BRANCHES = (
        ((192, 1, 1, False),),
        ((192, 1, 1, False), (224, (1, 3), 1, True), (256, (3, 1), 1, True)),
    )


class InceptionResNetReductionB(InceptionConcat):
    """Inception-ResNet-v2's Reduction-B (Fig. 18; Mixed_7a), 17x17 -> 8x8:
    1x1 (256) - 3x3/2 (384) | 1x1 (256) - 3x3/2 (288) | 1x1 (256) - 3x3 (288) - 3x3/2 (320) |
    3x3/2 max-pool; 1088 -> 2080 channels."""

    IN_CHS = 1088
    BRANCHES = (
        ((256, 1, 1, False), (384, 3, 2, False)),
        ((256, 1, 1, False), (288, 3, 2, False)),
        ((256, 1, 1, False), (288, 3, 1, True), (320, 3, 2, False)),
        MAX,
    )
