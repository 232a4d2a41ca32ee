"""Inception-ResNet-v2 (Szegedy et al., 2016, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning").

The layout of Google's TF-slim checkpoint as timm ports it (``inception_resnet_v2.tf_in1k``;
Keras' InceptionResNetV2 has the same graph): convs without bias, BatchNorm eps 1e-3,
unpadded ("VALID") stride-2 convs and pools, average pools that leave the padding out of the
mean, and residual branches scaled by 0.17, 0.10 and 0.20 before the addition. TF-slim's
stem differs from the paper's Fig. 3 (max-pools and a 1x1/3x3 pair, then Mixed_5b), and
its 35x35 blocks are 320 wide, not 384. 299x299 inputs, 75x75 at least.

Anatomy (the stages end where the next halving begins; the feature taps are timm's):

- ``stem``: the 3x3/2 conv (Conv2d_1a), 299 -> 149;
- ``stages.0`` (stride 2, 64 ch): Conv2d_2a (3x3, unpadded), Conv2d_2b (3x3, padded);
- ``stages.1`` (stride 4, 192 ch): MaxPool_3a, Conv2d_3b (1x1), Conv2d_4a (3x3, unpadded);
- ``stages.2`` (stride 8, 320 ch): MaxPool_5a, Mixed_5b, 10 Inception-ResNet-A;
- ``stages.3`` (stride 16, 1088 ch): Reduction-A (Mixed_6a), 20 Inception-ResNet-B;
- ``stages.4`` (stride 32, 1536 ch): Reduction-B (Mixed_7a), 10 Inception-ResNet-C (the
  last one, ``9``, unscaled and without activation) and the 1x1 Conv2d_7b (2080 -> 1536);
- ``head``: global average pool, dropout (keep 0.8 in the paper's Fig. 15), ``fc``.

``keras_inception_resnet_v2`` is keras.applications' ``InceptionResNetV2``, for its ImageNet
.h5 weights: the same graph (Keras' "same" convs are the padded ones here, its "valid" ones
the unpadded; its 3x3/1 average pool in Mixed_5b leaves the padding out of the mean, as
``count_include_pad=False`` does), with BatchNorm without the scale gamma (``bn_scale=False``,
Keras' ``scale=False``; eps 1e-3, momentum 0.01 = Keras' 0.99), the residual projections'
biases (Keras' ``block35_1_conv`` ...), and no dropout. 55,813,192 parameters (Keras:
55,873,736 with 60,544 moving statistics).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import ClassifierHead, Network, drop_bn_scale
from ..blocks import (
    ConvNormAct,
    InceptionReductionA,
    InceptionResNetA,
    InceptionResNetB,
    InceptionResNetC,
    InceptionResNetMixed5b,
    InceptionResNetReductionB,
    NormLayer,
)
from ..registry import register_model

# Residual blocks after each reduction: A, B and C (the last C is the unscaled, linear one).
DEPTHS = (10, 20, 10)
# The residual scales of TF-slim (the paper says "between 0.1 and 0.3", Section 3.3).
SCALES = (0.17, 0.10, 0.20)
# Reduction-A's k, l, m, n for Inception-ResNet-v2 (Table 1).
REDUCTION_A = (256, 256, 384, 384)
STAGE_CHANNELS = (64, 192, 320, 1088, 1536)
STAGE_REDUCTIONS = (2, 4, 8, 16, 32)
MIN_INPUT_SIZE = 75  # Keras' minimum for InceptionResNetV2


def _stage(
    first: list[tuple[str, nn.Module]],
    blocks: list[nn.Module],
    last: list[tuple[str, nn.Module]] | tuple = (),
) -> nn.Sequential:
    """A stage: its named leading layers, the residual blocks as "0", "1", ..., then ``last``."""
    numbered = [(str(i), b) for i, b in enumerate(blocks)]
    return nn.Sequential(OrderedDict([*first, *numbered, *last]))


class InceptionResNetV2(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        depths: tuple[int, int, int] = DEPTHS,
        scales: tuple[float, float, float] = SCALES,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        count_include_pad: bool = False,
        bn_scale: bool = True,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=MIN_INPUT_SIZE)
        kw = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        total, index = sum(depths), 0

        def dp() -> float:
            # Stochastic depth grows linearly with the residual block's index (off by default;
            # the published weights were trained without it).
            nonlocal index
            rate = drop_path_rate * index / max(total - 1, 1)
            index += 1
            return rate

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
                    pool=nn.MaxPool2d(3, 2),
                    conv3b=ConvNormAct(64, 80, 1, 1, 0, **kw),
                    conv4a=ConvNormAct(80, 192, 3, 1, 0, **kw),
                )
            ),
            _stage(
                [
                    ("pool", nn.MaxPool2d(3, 2)),
                    (
                        "mixed_5b",
                        InceptionResNetMixed5b(192, count_include_pad=count_include_pad, **kw),
                    ),
                ],
                [InceptionResNetA(320, scales[0], drop_path=dp(), **kw) for _ in range(depths[0])],
            ),
            _stage(
                [("mixed_6a", InceptionReductionA(320, *REDUCTION_A, **kw))],
                [InceptionResNetB(1088, scales[1], drop_path=dp(), **kw) for _ in range(depths[1])],
            ),
            _stage(
                [("mixed_7a", InceptionResNetReductionB(1088, **kw))],
                [
                    InceptionResNetC(2080, scales[2], drop_path=dp(), **kw)
                    for _ in range(depths[2] - 1)
                ]
                # TF-slim ends with one more block, unscaled and linear, before Conv2d_7b.
                + [InceptionResNetC(2080, 1.0, final_act=False, drop_path=dp(), **kw)],
                [("conv7b", ConvNormAct(2080, 1536, 1, 1, 0, **kw))],
            ),
        ]
        self._set_stages(stages, STAGE_CHANNELS, STAGE_REDUCTIONS)
        self.head = ClassifierHead(STAGE_CHANNELS[-1], num_classes, pooling, drop_rate, include_top)
        # No init of our own: the reference (timm, from Cadene's port of TF-slim) keeps
        # PyTorch's default initialisation of every layer.
        if not bn_scale:
            drop_bn_scale(self)


def inception_resnet_v2(**kwargs) -> InceptionResNetV2:
    return InceptionResNetV2(**kwargs)


register_model(
    "inception_resnet_v2",
    inception_resnet_v2,
    family="inception_resnet_v2",
    input_size=299,
    min_input_size=MIN_INPUT_SIZE,
    paper=(
        "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual "
        "Connections on Learning, AAAI 2017 (arXiv:1602.07261)"
    ),
)


register_model(
    "keras_inception_resnet_v2",
    inception_resnet_v2,
    family="inception_resnet_v2",
    input_size=299,
    min_input_size=MIN_INPUT_SIZE,
    paper=(
        "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual "
        "Connections on Learning, AAAI 2017 (arXiv:1602.07261); "
        "keras.applications.InceptionResNetV2"
    ),
    bn_scale=False,
    momentum=0.01,
    drop_rate=0.0,
)
