"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) and ZFNet (Zeiler and Fergus, 2013).

Both are five convolutions in three stages, each stage closed by a 3x3/2 max-pool, then
a fully connected head: adaptive average pool to 6x6, Dropout, fc1, ReLU, Dropout, fc2,
ReLU, fc (the order of torchvision's AlexNet). One builder reads the table below.

AlexNet is the single-tower layout of torchvision's weights (the "one weird trick" variant,
Krizhevsky 2014): conv 64 11x11/4 pad 2, pool, conv 192 5x5 pad 2, pool, convs 384, 256,
256 3x3 pad 1, pool; convs have a bias, no local response normalisation, no BatchNorm.
Stride 4, 16, 32 at the end of the three stages.

ZFNet ("Visualizing and Understanding Convolutional Networks", ECCV 2014), as built here:

- conv1 96 7x7 stride 2 (instead of AlexNet's 11x11/4), padding 1; conv2 256 5x5 stride 2,
  padding 0; conv3-5 512, 1024, 512 filters, 3x3, padding 1: the larger model of the
  paper's Table 1/Section 5 ("layers 3, 4, 5: 512, 1024, 512 maps"), the one the CS231n
  notes describe; the Figure 3 model has 384, 384, 256.
- every max-pool is 3x3 stride 2 with ``ceil_mode=True`` (Caffe's rounding). With the
  paddings above this reproduces the map sizes of the paper's Figure 3 at 224x224 input:
  110, 55 (pool), 26, 13 (pool), 13, 13, 13, 6 (pool).
- no local contrast normalisation (the paper normalises the responses of layers 1 and 2
  across feature maps; it is left out to keep the model simple, as torchvision's AlexNet
  leaves out LRN), no BatchNorm; convs have a bias; ReLU everywhere.
- the same head as AlexNet: adaptive average pool to 6x6 (a no-op at 224 input), then
  Dropout-fc1 (512 * 36 = 18432 -> 4096)-ReLU-Dropout-fc2 (4096)-ReLU-fc.

``include_top=False`` keeps only a global pooling (keras.applications semantics: ``"avg"``
or ``"max"`` give a vector, ``None`` the map); with the top, ``pooling`` is not used.

Initialisation: PyTorch's default (Kaiming-uniform with a = sqrt(5) and the matching bias
range) for every conv and Linear, exactly what torchvision's AlexNet gets; a new classifier
from ``reset_classifier`` is a default ``nn.Linear``. The papers' N(0, 0.01) weights and
constant biases are not reproduced.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from ..base import Network, fully_connected_head
from ..blocks import ConvNormAct
from ..registry import register_variants


class Conv(NamedTuple):
    out_chs: int
    kernel: int
    stride: int
    padding: int


class AlexNetCfg(NamedTuple):
    stages: tuple[tuple[Conv, ...], ...]  # each stage ends with the 3x3/2 max-pool
    ceil_mode: bool  # rounding of the max-pools' output size
    min_input_size: int  # smallest square input with every map at least 1x1 (tested)
    input_size: int = 224


ALEXNETS = {
    "alexnet": AlexNetCfg(
        stages=(
            (Conv(64, 11, 4, 2),),
            (Conv(192, 5, 1, 2),),
            (Conv(384, 3, 1, 1), Conv(256, 3, 1, 1), Conv(256, 3, 1, 1)),
        ),
        ceil_mode=False,
        min_input_size=63,
    ),
    "zfnet": AlexNetCfg(
        stages=(
            (Conv(96, 7, 2, 1),),
            (Conv(256, 5, 2, 0),),
            (Conv(512, 3, 1, 1), Conv(1024, 3, 1, 1), Conv(512, 3, 1, 1)),
        ),
        ceil_mode=True,
        min_input_size=47,
    ),
}
HIDDEN = (4096, 4096)
POOL_SIZE = 6


class AlexNet(Network):
    first_conv = "stages.0.0.conv"

    def __init__(
        self,
        cfg: AlexNetCfg,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=cfg.min_input_size)
        self.stem = nn.Identity()
        stages, channels, reductions = [], [], []
        in_chs, reduction = in_chans, 1
        for convs in cfg.stages:
            layers = []
            for c in convs:
                layers.append(
                    ConvNormAct(
                        in_chs, c.out_chs, c.kernel, c.stride, c.padding, bias=True, norm=False
                    )
                )
                in_chs, reduction = c.out_chs, reduction * c.stride
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=cfg.ceil_mode))
            reduction *= 2
            stages.append(nn.Sequential(*layers))
            channels.append(in_chs)
            reductions.append(reduction)
        self._set_stages(stages, channels, reductions)
        self.head = fully_connected_head(
            in_chs,
            POOL_SIZE,
            HIDDEN,
            num_classes,
            include_top=include_top,
            pooling=pooling,
            drop_rate=drop_rate,
            dropout_first=True,
        )
        # PyTorch's default initialisation, as torchvision's AlexNet (see the module doc).


PAPERS = {
    "alexnet": (
        "Krizhevsky, Sutskever and Hinton, ImageNet Classification with Deep Convolutional "
        "Neural Networks, NIPS 2012 (torchvision's single-tower layout: Krizhevsky, One weird "
        "trick for parallelizing convolutional neural networks, 2014)"
    ),
    "zfnet": ("Zeiler and Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014"),
}

register_variants(
    ALEXNETS,
    AlexNet,
    family="alexnet",
    input_size=lambda cfg: cfg.input_size,
    min_input_size=lambda cfg: cfg.min_input_size,
    paper=PAPERS.__getitem__,
)
