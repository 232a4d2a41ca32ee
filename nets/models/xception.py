"""Xception (Chollet, 2017, "Xception: Deep Learning with Depthwise Separable Convolutions").

The layout of timm's ``legacy_xception`` (Keras' ImageNet weights, ported by Cadene): convs
without bias, BatchNorm eps 1e-5 (the port's PyTorch default, not Keras' 1e-3: the converted
weights were evaluated that way), unpadded stem convs, 299x299 inputs (71x71 at least, as in
Keras), inputs normalised to [-1, 1].

The paper's three flows, and where they land in our anatomy (stages end where the spatial
size halves; the strided blocks end with a 3x3/2 max-pool, so each one begins a stage):

- entry flow: 3x3/2 conv (32) and 3x3 conv (64), both unpadded -> ``stem`` (stride 2);
  block 1 (128) -> ``stages.0`` (stride 4); block 2 (256) -> ``stages.1`` (stride 8);
  block 3 (728) -> ``stages.2.0``;
- middle flow: blocks 4-11 (728, identity shortcuts) -> ``stages.2.1`` .. ``stages.2.8``
  (stride 16);
- exit flow: block 12 (728 -> 1024) -> ``stages.3.0``, separable convs ``conv3`` (1536) and
  ``conv4`` (2048) with BN and ReLU -> ``stages.3.conv3``, ``stages.3.conv4`` (stride 32).

A block's output is the sum of its branches with no ReLU after it (the next block begins
with one), so the maps of ``stages.0`` .. ``stages.2`` are pre-activation; timm's feature
taps are the same maps after that ReLU.

``keras_xception`` is keras.applications' ``Xception``, for its ImageNet .h5 weights: the
same graph and keys, with Keras' numerics: BatchNorm eps 1e-3 and momentum 0.01 (Keras'
0.99), and TF "same" padding of the separable convs and 3x3/2 max-pools (``padding="same"``;
on an even input size, 74 -> 37 at 299, TF pads the pool (0, 1), timm's port (1, 1)).
22,855,952 parameters (Keras: 22,910,480 with 54,528 moving statistics).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from torch import nn

from ..base import ClassifierHead, Network, init_conv_bn
from ..blocks import ConvNormAct, NormLayer, SeparableConvNormAct, XceptionBlock
from ..registry import register_model


class BlockRow(NamedTuple):
    """One block of Figure 5 (one row per block, as in MobileNetV3's table)."""

    in_chs: int
    out_chs: int
    reps: int  # separable convs in the block
    stride: int
    start_with_relu: bool = True
    grow_first: bool = True


# Figure 5 of the paper: blocks 1-12 (entry 1-3, middle 4-11, exit 12).
BLOCKS = (
    BlockRow(64, 128, 2, 2, start_with_relu=False),
    BlockRow(128, 256, 2, 2),
    BlockRow(256, 728, 2, 2),
    *[BlockRow(728, 728, 3, 1)] * 8,
    BlockRow(728, 1024, 2, 2, grow_first=False),
)
STEM_CHS = (32, 64)
EXIT_CHS = (1536, 2048)  # the exit flow's separable convs after block 12: conv3, conv4


class Xception(Network):
    first_conv = "stem.conv1.conv"

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.0,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        blocks: tuple[BlockRow, ...] = BLOCKS,
        exit_chs: tuple[int, ...] = EXIT_CHS,
        padding: str | None = None,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=71)
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        # Both stem convs are unpadded ("valid" in Keras): 299 -> 149 -> 147.
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=ConvNormAct(in_chans, STEM_CHS[0], 3, 2, padding=0, **bn),
                conv2=ConvNormAct(STEM_CHS[0], STEM_CHS[1], 3, 1, padding=0, **bn),
            )
        )
        stage_blocks: list[list[nn.Module]] = []
        reductions, reduction = [], 2
        for row in blocks:
            if row.stride != 1 or not stage_blocks:
                # A strided block halves the size at its end: it begins a new stage.
                stage_blocks.append([])
                reduction *= row.stride
                reductions.append(reduction)
            stage_blocks[-1].append(
                XceptionBlock(
                    row.in_chs,
                    row.out_chs,
                    row.reps,
                    row.stride,
                    start_with_relu=row.start_with_relu,
                    grow_first=row.grow_first,
                    padding=padding,
                    **bn,
                )
            )
        channels = [stage[-1].out_chs for stage in stage_blocks]

        stages: list[nn.Module] = [nn.Sequential(*stage) for stage in stage_blocks[:-1]]
        last = OrderedDict((str(j), blk) for j, blk in enumerate(stage_blocks[-1]))
        width = channels[-1]
        for k, out_chs in enumerate(exit_chs, start=3):
            # Post-activation here (SepConv, BN, ReLU), unlike the blocks' ReLU-SepConv-BN.
            last[f"conv{k}"] = SeparableConvNormAct(width, out_chs, 3, padding=padding, **bn)
            width = out_chs
        stages.append(nn.Sequential(last))
        channels[-1] = width
        self._set_stages(stages, channels, reductions)
        self.head = ClassifierHead(width, num_classes, pooling, drop_rate, include_top)
        # Kaiming-normal (fan-out) convs, unit BN, PyTorch's default Linear: timm's init.
        init_conv_bn(self)


def xception(**kwargs) -> Xception:
    return Xception(**kwargs)


register_model(
    "legacy_xception",
    xception,
    family="xception",
    input_size=299,
    min_input_size=71,
    paper="Chollet, Xception: Deep Learning with Depthwise Separable Convolutions, CVPR 2017",
)


register_model(
    "keras_xception",
    xception,
    family="xception",
    input_size=299,
    min_input_size=71,
    paper=(
        "Chollet, Xception: Deep Learning with Depthwise Separable Convolutions, CVPR 2017; "
        "keras.applications.Xception"
    ),
    eps=1e-3,
    momentum=0.01,
    padding="same",
)
