"""Inception-v4 (Szegedy et al., 2016, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning").

The layout of Google's TF-slim checkpoint as timm ports it (``inception_v4.tf_in1k``):
convs without bias, BatchNorm eps 1e-3, unpadded ("VALID") stride-2 convs and pools, and
average pools that leave the padding out of the mean. 299x299 inputs; 75x75 is the smallest
input whose last Reduction-B still has a 3x3 map to reduce.

Anatomy. The paper's "stem" runs to 35x35 and crosses three halvings, so it is spread over
the stages, each of which ends where the next halving begins:

- ``stem``: the 3x3/2 conv (Conv2d_1a), 299 -> 149;
- ``stages.0`` (stride 2, 64 ch): Conv2d_2a (3x3, unpadded) and Conv2d_2b (3x3, padded);
- ``stages.1`` (stride 4, 192 ch): Mixed_3a (pool | conv, /2) and Mixed_4a;
- ``stages.2`` (stride 8, 384 ch): Mixed_5a (conv | pool, /2) and 4 Inception-A;
- ``stages.3`` (stride 16, 1024 ch): Reduction-A (Mixed_6a) and 7 Inception-B;
- ``stages.4`` (stride 32, 1536 ch): Reduction-B (Mixed_7a) and 3 Inception-C;
- ``head``: global average pool, dropout (keep 0.8 in the paper's Fig. 9), ``fc``.

timm's feature_info puts the stride-4 tap after Mixed_3a (160 ch); ours is the output of
Mixed_4a (192 ch), the last map at stride 4.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import ClassifierHead, Network
from ..blocks import (
    ConvNormAct,
    FactorizedStemBlock,
    InceptionReductionA,
    InceptionV4A,
    InceptionV4B,
    InceptionV4C,
    InceptionV4ReductionB,
    NormLayer,
    PoolConvReduction,
)
from ..registry import register_model

# Blocks repeated after each reduction: Inception-A, -B, -C (Fig. 9).
DEPTHS = (4, 7, 3)
# Reduction-A's k, l, m, n for Inception-v4 (Table 1).
REDUCTION_A = (192, 224, 256, 384)
STAGE_CHANNELS = (64, 192, 384, 1024, 1536)
STAGE_REDUCTIONS = (2, 4, 8, 16, 32)
MIN_INPUT_SIZE = 75


def _stage(first: tuple[str, nn.Module], blocks: list[nn.Module]) -> nn.Sequential:
    """A stage: its named reduction block, then the repeated blocks as "0", "1", ..."""
    return nn.Sequential(OrderedDict([first, *((str(i), b) for i, b in enumerate(blocks))]))


class InceptionV4(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.2,
        depths: tuple[int, int, int] = DEPTHS,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        count_include_pad: bool = False,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=MIN_INPUT_SIZE)
        kw = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        pool_kw = dict(count_include_pad=count_include_pad, **kw)
        self.stem = ConvNormAct(in_chans, 32, 3, 2, 0, **kw)
        stages = [
            nn.Sequential(
                OrderedDict(
                    conv2a=ConvNormAct(32, 32, 3, 1, 0, **kw),
                    conv2b=ConvNormAct(32, 64, 3, 1, 1, **kw),
                )
            ),
            nn.Sequential(
                OrderedDict(
                    mixed_3a=PoolConvReduction(64, 96, pool_first=True, **kw),
                    mixed_4a=FactorizedStemBlock(160, **kw),
                )
            ),
            _stage(
                ("mixed_5a", PoolConvReduction(192, 192, pool_first=False, **kw)),
                [InceptionV4A(384, **pool_kw) for _ in range(depths[0])],
            ),
            _stage(
                ("mixed_6a", InceptionReductionA(384, *REDUCTION_A, **kw)),
                [InceptionV4B(1024, **pool_kw) for _ in range(depths[1])],
            ),
            _stage(
                ("mixed_7a", InceptionV4ReductionB(1024, **kw)),
                [InceptionV4C(1536, **pool_kw) for _ in range(depths[2])],
            ),
        ]
        self._set_stages(stages, STAGE_CHANNELS, STAGE_REDUCTIONS)
        self.head = ClassifierHead(STAGE_CHANNELS[-1], num_classes, pooling, drop_rate, include_top)
        # No init of our own: the reference (timm, from Cadene's port of TF-slim) keeps
        # PyTorch's default initialisation of every layer.


def inception_v4(**kwargs) -> InceptionV4:
    return InceptionV4(**kwargs)


register_model(
    "inception_v4",
    inception_v4,
    family="inception_v4",
    input_size=299,
    min_input_size=MIN_INPUT_SIZE,
    paper=(
        "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual "
        "Connections on Learning, AAAI 2017 (arXiv:1602.07261)"
    ),
)
