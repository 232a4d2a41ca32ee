"""Inception v3 (Szegedy et al., 2015, "Rethinking the Inception Architecture for Computer
Vision"), the layout of torchvision's weights (ported from Google's TF checkpoint).

Convs without bias, BatchNorm eps 1e-3, ReLU; unpadded pools without ``ceil_mode``; 299x299
input (75x75 at least, Keras' minimum: the last grid is then 1x1).

Anatomy (torchvision module -> ours):

- ``stem``: ``transform`` (see below), Conv2d_1a_3x3 (3x3/2) -> ``conv1a``, Conv2d_2a_3x3 ->
  ``conv2a``, Conv2d_2b_3x3 -> ``conv2b``, maxpool1 -> ``pool1``, Conv2d_3b_1x1 -> ``conv3b``,
  Conv2d_4a_3x3 -> ``conv4a``, maxpool2 -> ``pool2``: stride 8, 192 channels (35x35 at 299).
- ``stages``: the Inception modules by grid size; the grid-reduction module that halves the
  grid opens the next stage, as the strided block does in ResNet:
  stage 0 = Mixed_5b..5d (``InceptionV3A``; stride 8, 288 channels, 35x35),
  stage 1 = Mixed_6a (``InceptionV3B``), Mixed_6b..6e (``InceptionV3C``; stride 16, 768,
  17x17), stage 2 = Mixed_7a (``InceptionV3D``), Mixed_7b..7c (``InceptionV3E``; stride 32,
  2048, 8x8). Modules are named ``mixed5b`` ... ``mixed7c``.
- ``head``: global average pool, dropout 0.5, ``fc``.
- ``aux`` (``aux_logits=True`` only): torchvision's AuxLogits, on stage 1's output
  (Mixed_6e). In training mode ``forward`` returns ``AuxOutputs(logits, aux=(aux,))``; in
  eval mode the logits alone. It needs the 17x17 grid of a 299-pixel input.

``aux_logits`` defaults to False, as for GoogLeNet (torchvision's builder defaults to True);
torchvision's checkpoint carries AuxLogits, and its published parameter count (27,161,264)
includes them; without them the network has 23,834,568.

``transform_input``: as for GoogLeNet (see ``nets.models.googlenet``): the Google weights expect
[-1, 1] inputs; the registered ``inception_v3`` re-normalises ImageNet-normalised input in
its first stem module, as torchvision's builder does with the weights; the class defaults
to False.

``keras_inception_v3`` is keras.applications' ``InceptionV3``, for its ImageNet .h5 weights:
BatchNorm without the scale gamma (``bn_scale=False``; eps 1e-3, momentum 0.01, Keras'
0.99), the 3x3/1 average pools "same" in TF's sense, which leaves the padding out of the
average (``count_include_pad=False``), no dropout, and [-1, 1] input (``tf`` mode, no
``transform_input``). 23,817,352 parameters (Keras: 23,851,784 with 34,432 moving statistics).

Initialisation as torchvision's: convs and Linears N(0, 0.1) truncated at +-2, except the aux
head's 5x5 conv (std 0.01) and classifier (std 0.001); unit BatchNorm.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import AuxClassifierNetwork, ClassifierHead, drop_bn_scale
from ..blocks import (
    ConvNormAct,
    InceptionInputTransform,
    InceptionV3A,
    InceptionV3Aux,
    InceptionV3B,
    InceptionV3C,
    InceptionV3D,
    InceptionV3E,
    NormLayer,
)
from ..registry import register_model

# Per stage: (module name, block, its arguments besides the input width). Each module reads
# the previous one's output.
STAGES = (
    (
        ("mixed5b", InceptionV3A, dict(pool_features=32)),
        ("mixed5c", InceptionV3A, dict(pool_features=64)),
        ("mixed5d", InceptionV3A, dict(pool_features=64)),
    ),
    (
        ("mixed6a", InceptionV3B, {}),
        ("mixed6b", InceptionV3C, dict(channels_7x7=128)),
        ("mixed6c", InceptionV3C, dict(channels_7x7=160)),
        ("mixed6d", InceptionV3C, dict(channels_7x7=160)),
        ("mixed6e", InceptionV3C, dict(channels_7x7=192)),
    ),
    (
        ("mixed7a", InceptionV3D, {}),
        ("mixed7b", InceptionV3E, {}),
        ("mixed7c", InceptionV3E, {}),
    ),
)
REDUCTIONS = (8, 16, 32)
AUX_TAPS = ((1, "mixed6e"),)
MIN_INPUT_SIZE = 75
# The auxiliary head's 5x5 conv, after a 5x5/3 average pool, needs Mixed_6e's 17x17 map.
AUX_MIN_INPUT_SIZE = 299
INIT_STD = 0.1  # torchvision's default ``stddev`` for every conv and Linear


class InceptionV3(AuxClassifierNetwork):
    first_conv = "stem.conv1a.conv"

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.5,
        aux_logits: bool = False,
        transform_input: bool = False,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bn_scale: bool = True,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=MIN_INPUT_SIZE)
        self.aux_min_input_size = AUX_MIN_INPUT_SIZE
        if aux_logits and not include_top:
            raise ValueError("aux_logits=True needs include_top=True (the aux head classifies)")
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        use_transform = transform_input and in_chans == 3  # defined for RGB only
        self.stem = nn.Sequential(
            OrderedDict(
                transform=InceptionInputTransform() if use_transform else nn.Identity(),
                conv1a=ConvNormAct(in_chans, 32, 3, 2, 0, **bn),
                conv2a=ConvNormAct(32, 32, 3, 1, 0, **bn),
                conv2b=ConvNormAct(32, 64, 3, 1, 1, **bn),
                pool1=nn.MaxPool2d(3, 2),
                conv3b=ConvNormAct(64, 80, 1, **bn),
                conv4a=ConvNormAct(80, 192, 3, 1, 0, **bn),
                pool2=nn.MaxPool2d(3, 2),
            )
        )
        stages, channels, in_chs = [], [], 192
        widths: dict[str, int] = {}
        for modules in STAGES:
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for name, block, kwargs in modules:
                if block in (InceptionV3A, InceptionV3C, InceptionV3E):
                    kwargs = {**kwargs, "count_include_pad": count_include_pad}
                layers[name] = block(in_chs, **kwargs, **bn)
                in_chs = widths[name] = layers[name].out_chs
            stages.append(nn.Sequential(layers))
            channels.append(in_chs)
        self._set_stages(stages, channels, REDUCTIONS)
        self.head = ClassifierHead(in_chs, num_classes, pooling, drop_rate, include_top)

        self.aux_taps = AUX_TAPS if aux_logits else ()
        self.aux = nn.ModuleList(
            InceptionV3Aux(widths[name], num_classes, **bn) for _, name in self.aux_taps
        )
        self._init_weights()
        if not bn_scale:
            drop_bn_scale(self)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, 0.0, INIT_STD, -2, 2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for aux in self.aux:
            # torchvision's ``stddev`` attributes on InceptionAux.conv1 and .fc.
            nn.init.trunc_normal_(aux.conv1.conv.weight, 0.0, 0.01, -2, 2)
            self.init_aux_classifier(aux.fc)

    def init_classifier(self, fc: nn.Linear) -> None:
        nn.init.trunc_normal_(fc.weight, 0.0, INIT_STD, -2, 2)

    def init_aux_classifier(self, fc: nn.Linear) -> None:
        nn.init.trunc_normal_(fc.weight, 0.0, 0.001, -2, 2)  # torchvision's AuxLogits.fc


def inception_v3(**kwargs) -> InceptionV3:
    return InceptionV3(**kwargs)


register_model(
    "inception_v3",
    inception_v3,
    family="inception_v3",
    input_size=299,
    min_input_size=MIN_INPUT_SIZE,
    aux_heads=True,
    paper=("Szegedy et al., Rethinking the Inception Architecture for Computer Vision, CVPR 2016"),
    # As torchvision's builder sets it with the ImageNet weights: the model takes
    # ImageNet-normalised input (see the module docstring).
    transform_input=True,
)


register_model(
    "keras_inception_v3",
    inception_v3,
    family="inception_v3",
    input_size=299,
    min_input_size=MIN_INPUT_SIZE,
    aux_heads=True,
    paper=(
        "Szegedy et al., Rethinking the Inception Architecture for Computer Vision, CVPR 2016; "
        "keras.applications.InceptionV3"
    ),
    bn_scale=False,
    count_include_pad=False,
    drop_rate=0.0,
    momentum=0.01,
)
