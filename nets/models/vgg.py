"""VGG-11/13/16/19, with and without BatchNorm (Simonyan and Zisserman, 2014, "Very Deep
Convolutional Networks for Large-Scale Image Recognition"; configurations A, B, D, E).

The layout of torchvision's weights: 3x3 convs with padding 1 and a bias (kept with
BatchNorm too, as torchvision has it), BatchNorm eps 1e-5, ReLU, and a 2x2/2 max-pool
closing each of the five stages (strides 2, 4, 8, 16, 32). The head pools the map to 7x7
(adaptively, so inputs other than 224 work) and runs fc1 25088->4096, ReLU, Dropout,
fc2 4096->4096, ReLU, Dropout, fc. Keys are ``stages.{s}.{j}.conv`` / ``.bn`` with the
pool as the stage's last element, as ``weights.torchvision.vgg_alexnet.vgg_table`` produces.

``include_top=False`` keeps only a global pooling, as keras.applications does (``"avg"`` or
``"max"``: a 512 vector; ``None``: the 512-channel map); with the top, ``pooling`` is not
used (the head always pools to 7x7), also as in Keras. Initialisation as torchvision's:
Kaiming-normal (fan-out) convs, unit BatchNorm, Linear N(0, 0.01) with zero bias.
"""

from __future__ import annotations

from torch import nn

from ..base import Network, fully_connected_head, init_conv_bn
from ..blocks import ConvNormAct, NormLayer
from ..registry import register_variants

# name: 3x3 conv layers per stage (the paper's configurations A, B, D and E)
VGGS = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
STAGE_WIDTHS = (64, 128, 256, 512, 512)
HIDDEN = (4096, 4096)
POOL_SIZE = 7  # the head's adaptive pool: 512 * 7 * 7 = 25088 inputs to fc1
MIN_INPUT_SIZE = 32  # five 2x2/2 pools: 32 -> 1x1 (Keras' minimum)


class VGG(Network):
    first_conv = "stages.0.0.conv"

    def __init__(
        self,
        depths: tuple[int, ...],
        *,
        batch_norm: bool = False,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        eps: float = 1e-5,
        norm_layer: NormLayer | None = None,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=MIN_INPUT_SIZE)
        if norm_layer is not None and not batch_norm:
            raise ValueError("norm_layer replaces BatchNorm, which only the *_bn VGGs have")
        bn = dict(norm=batch_norm, eps=eps, norm_layer=norm_layer)
        self.stem = nn.Identity()
        stages, in_chs, reduction, reductions = [], in_chans, 1, []
        for width, depth in zip(STAGE_WIDTHS, depths, strict=True):
            layers = []
            for _ in range(depth):
                layers.append(ConvNormAct(in_chs, width, 3, 1, 1, bias=True, **bn))
                in_chs = width
            layers.append(nn.MaxPool2d(2, 2))
            stages.append(nn.Sequential(*layers))
            reduction *= 2
            reductions.append(reduction)
        self._set_stages(stages, STAGE_WIDTHS, reductions)
        self.head = fully_connected_head(
            in_chs,
            POOL_SIZE,
            HIDDEN,
            num_classes,
            include_top=include_top,
            pooling=pooling,
            drop_rate=drop_rate,
            dropout_first=False,
        )
        # torchvision's VGG init: Kaiming-normal (fan-out) convs, unit BN, Linear N(0, 0.01).
        init_conv_bn(self, linear_std=0.01)

    def init_classifier(self, fc: nn.Linear) -> None:
        nn.init.normal_(fc.weight, 0.0, 0.01)
        nn.init.zeros_(fc.bias)


PAPER = (
    "Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition, ICLR 2015"
)
BN_NOTE = "; BatchNorm after each conv as in torchvision's *_bn models"
# vgg11 ... vgg19 and their BatchNorm versions, vgg11_bn ... vgg19_bn: (depths, batch_norm).
register_variants(
    {
        (f"{name}_bn" if bn else name): (depths, bn)
        for name, depths in VGGS.items()
        for bn in (False, True)
    },
    lambda variant, **kwargs: VGG(variant[0], **{"batch_norm": variant[1], **kwargs}),
    family="vgg",
    min_input_size=MIN_INPUT_SIZE,
    paper=lambda name: (
        PAPER
        + (
            "; BatchNorm after each conv as in torchvision's *_bn models"
            if name.endswith("_bn")
            else ""
        )
    ),
)
