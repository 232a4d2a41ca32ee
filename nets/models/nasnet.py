"""NASNet-A (Zoph et al., 2018, "Learning Transferable Architectures for Scalable Image
Recognition"): the searched normal and reduction cells (``nets.blocks.nasnet``) stacked by a
table. "NASNet-A (N @ P)" has N normal cells per group and P channels in the last cell.

The layout, as Keras' ``NASNet`` and timm's ``nasnetalarge`` build it, with F = P / 24:

- ``stem``: 3x3/2 conv (unpadded) and BN, no ReLU (stride 2);
- ``stages.0``: reduction cell "stem_1" (F / 4 filters), which reads the stem's output as
  both of its inputs (stride 4, F channels out);
- ``stages.1``: reduction cell "stem_2" (F / 2), then N normal cells (F) (stride 8, 6F);
- ``stages.2``: a reduction cell (2F), then N normal cells (2F) (stride 16, 12F);
- ``stages.3``: a reduction cell (4F), N normal cells (4F) and a ReLU (stride 32, 24F = P);
- ``head``: global average pooling and the classifier.

Each cell reads the last two outputs, ``x`` and ``prev``; a stage takes and returns that
pair. After a reduction cell, ``prev`` is normally the reduction cell's input; with
``skip_reduction`` (NASNet-A Large) it stays the ``prev`` the reduction cell was given (the
output two cells back), as in both Keras and timm. The stage outputs before the last are
the cells' outputs before any ReLU (the next cell begins with one, as in Xception).

Variants (``padding`` and the reduction cells' max-pool padding are explicit arguments):

- ``keras_nasnet_mobile`` (4 @ 1056) and ``keras_nasnet_large`` (6 @ 4032): keras.applications'
  ``NASNetMobile`` / ``NASNetLarge``, for its ``NASNet-mobile.h5`` / ``NASNet-large.h5`` weights:
  TF "same" padding, BN eps 1e-3 and momentum 0.0003 (Keras' 0.9997), and the 3x3/2 max-pools
  padded with zeros (``pool_pad_value=0.0``: Keras' ``ZeroPadding2D`` before a valid pool);
- ``nasnetalarge`` (6 @ 4032): timm's port (Cadene's, of the TF-slim checkpoint), for its
  ``nasnetalarge`` weights: the same graph and TF "same" padding, BN eps 1e-3 and momentum
  0.1, and the max-pools padded with -inf (timm's ``MaxPool2dSame``, TF's own SAME).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import ClassifierHead, Network, init_conv_bn
from ..blocks import ConvNormAct, NASNetNormalCell, NASNetReductionCell, NormLayer
from ..registry import register_variants

PAPER = (
    "Zoph, Vasudevan, Shlens, Le, Learning Transferable Architectures for Scalable Image "
    "Recognition, CVPR 2018"
)


class NASNetCfg(NamedTuple):
    """One NASNet-A configuration: "N @ P" and its stem."""

    num_blocks: int  # N: normal cells after each reduction
    penultimate_filters: int  # P: channels of the last cell's output (24 F)
    stem_chs: int
    skip_reduction: bool  # a reduction cell leaves ``prev`` as it was (Large)
    filter_multiplier: int = 2  # width ratio between successive groups


VARIANTS = {
    "keras_nasnet_mobile": NASNetCfg(4, 1056, 32, skip_reduction=False),
    "keras_nasnet_large": NASNetCfg(6, 4032, 96, skip_reduction=True),
    "nasnetalarge": NASNetCfg(6, 4032, 96, skip_reduction=True),
}


class NASNetStage(nn.ModuleList):
    """Cells ``0``, ``1``, ... run in turn on the pair (x, prev); ``act=True`` ends the stage
    with a ReLU (the last stage: Keras' ReLU before pooling).

    ``keep_prev[i]``: after cell i, ``prev`` stays as it was instead of becoming cell i's
    input (a reduction cell under ``skip_reduction``). A ``ModuleList`` of the cells alone, so
    that TorchScript can iterate over them; the ReLU is therefore a function, not a child.
    """

    def __init__(
        self, cells: Sequence[nn.Module], keep_prev: Sequence[bool], act: bool = False
    ) -> None:
        super().__init__(cells)
        self.keep_prev = list(keep_prev)
        self.ends_with_relu = act
        self.out_chs = cells[-1].out_chs

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: the last cell's output (N, C, H, W); prev: the one before (same or twice the size).
        for i, cell in enumerate(self):
            out = cell(x, prev)
            x, prev = out, (prev if self.keep_prev[i] else x)
        if self.ends_with_relu:
            x = F.relu(x)
        return x, prev


class NASNetStages(nn.Sequential):
    """The stages, run in turn on the pair (x, prev): a Sequential whose forward passes both
    maps along (Sequential's own would call each stage with one, which TorchScript, compiling
    every submodule's forward, refuses)."""

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for stage in self:
            x, prev = stage(x, prev)
        return x, prev


class NASNet(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        cfg: NASNetCfg,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.0,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        padding: str | None = "same",
        pool_pad_value: float = 0.0,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=32)
        if cfg.penultimate_filters % (24 * cfg.filter_multiplier**2):
            raise ValueError(
                f"penultimate_filters must be a multiple of 24 * {cfg.filter_multiplier}**2, "
                f"got {cfg.penultimate_filters}"
            )
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        cell_kw = dict(padding=padding, **bn)
        red_kw = dict(pool_pad_value=pool_pad_value, **cell_kw)
        f, m = cfg.penultimate_filters // 24, cfg.filter_multiplier
        # Unpadded 3x3/2 conv: 224 -> 111, 331 -> 165.
        self.stem = ConvNormAct(in_chans, cfg.stem_chs, 3, 2, padding=0, act=None, **bn)

        # Channel and size bookkeeping for (x, prev): each cell's adjust follows from it.
        x_chs, prev_chs = cfg.stem_chs, cfg.stem_chs
        x_stride, prev_stride = 2, 2

        def adjust(filters: int) -> str | None:
            if prev_stride != x_stride:
                return "reduce"
            return "project" if prev_chs != filters else None

        def add(cell: nn.Module, keep: bool, stride: int) -> None:
            nonlocal x_chs, prev_chs, x_stride, prev_stride
            if not keep:
                prev_chs, prev_stride = x_chs, x_stride
            x_chs, x_stride = cell.out_chs, stride
            cells.append(cell)
            keeps.append(keep)

        stages: list[NASNetStage] = []
        # The first stem cell reads the stem's output as prev too, unadjusted (Keras: p = None).
        cells, keeps = [], []
        add(NASNetReductionCell(x_chs, prev_chs, f // m**2, adjust=None, **red_kw), False, 4)
        stages.append(NASNetStage(cells, keeps))
        for group in range(3):
            filters = f * m**group
            cells, keeps = [], []
            if group == 0:  # the second stem cell; prev is the stem's output
                cell = NASNetReductionCell(x_chs, prev_chs, f // m, adjust="reduce", **red_kw)
                add(cell, False, 8)
            else:
                cell = NASNetReductionCell(
                    x_chs, prev_chs, filters, adjust=adjust(filters), **red_kw
                )
                add(cell, cfg.skip_reduction, x_stride * 2)
            for _ in range(cfg.num_blocks):
                add(NASNetNormalCell(x_chs, prev_chs, filters, adjust=adjust(filters), **cell_kw),
                    False, x_stride)  # fmt: skip
            stages.append(NASNetStage(cells, keeps, act=group == 2))
        self._set_stages(stages, [s.out_chs for s in stages], [4, 8, 16, 32])
        self.stages = NASNetStages(*self.stages)
        self.head = ClassifierHead(x_chs, num_classes, pooling, drop_rate, include_top)
        init_conv_bn(self)

    def stage_outputs(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        x = self.stem(x)  # (N, stem_chs, H/2, W/2)
        prev = x  # the first cell reads the stem's output twice
        for stage in self.stages:
            x, prev = stage(x, prev)
            yield x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stem(x)
        x, _ = self.stages(x, x)  # the first cell reads the stem's output twice
        return x


def nasnet(cfg: NASNetCfg, **kwargs) -> NASNet:
    return NASNet(cfg, **kwargs)


register_variants(
    {k: v for k, v in VARIANTS.items() if k.startswith("keras_")},
    nasnet,
    family="nasnet",
    paper=lambda name: f"{PAPER}; keras.applications.NASNet{name.split('_')[-1].title()}",
    input_size=lambda cfg: 331 if cfg.num_blocks == 6 else 224,
    eps=1e-3,
    momentum=1 - 0.9997,  # Keras' BatchNorm momentum 0.9997, in PyTorch's convention
    padding="same",
    pool_pad_value=0.0,  # Keras: ZeroPadding2D, then a valid max-pool
)
register_variants(
    {"nasnetalarge": VARIANTS["nasnetalarge"]},
    nasnet,
    family="nasnet",
    paper=f"{PAPER}; timm's nasnetalarge (Cadene's port of the TF-slim weights)",
    input_size=331,
    eps=1e-3,
    momentum=0.1,
    padding="same",
    pool_pad_value=float("-inf"),  # timm: MaxPool2dSame pads with -inf
)
