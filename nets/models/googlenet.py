"""GoogLeNet, Inception v1 (Szegedy et al., 2014, "Going Deeper with Convolutions").

The layout of torchvision's weights (ported from the original): convs without bias, each
followed by BatchNorm (eps 1e-3) and ReLU, max-pools with ``ceil_mode=True``, and in every
Inception module the "5x5" branch really a 3x3 conv (a bug torchvision keeps for its
weights; ``kernel_5x5=5`` builds the paper's kernel, for training from scratch).

Anatomy (torchvision module -> ours):

- ``stem``: ``transform`` (see below), conv1 7x7/2, maxpool1, conv2 1x1, conv3 3x3, maxpool2:
  stride 8, 192 channels.
- ``stages``: the Inception modules by resolution; the max-pool that halves the grid opens
  the next stage, as the strided block does in ResNet:
  stage 0 = inception3a, 3b (stride 8, 480 channels);
  stage 1 = maxpool3, inception4a..4e (stride 16, 832);
  stage 2 = maxpool4, inception5a, 5b (stride 32, 1024).
- ``head``: global average pool, dropout 0.2, ``fc``.
- ``aux`` (``aux_logits=True`` only): torchvision's aux1 and aux2, the auxiliary
  classifiers on the outputs of inception4a and inception4d. In training mode ``forward``
  returns ``AuxOutputs(logits, aux=(aux1, aux2))``; in eval mode the logits alone.
  torchvision's checkpoint carries both heads, but they were not trained with the ported
  weights (torchvision warns so): train them before relying on them.

``transform_input``: the Google weights expect inputs scaled to [-1, 1], while torchvision
(and our ``googlenet.tv_in1k`` tag) feed ImageNet-normalised tensors and re-normalise inside
the model, which torchvision's builder switches on whenever it loads the weights. The conv1
has padding 3 and no bias, so the map cannot be folded into its kernel exactly; it is an
explicit first stem module (``InceptionInputTransform``) instead. The class defaults to
``transform_input=False`` (torchvision's class default); the registered ``googlenet`` turns
it on, so ``create_model("googlenet", weights=...)`` gives torchvision's logits for
ImageNet-normalised input. Pass ``transform_input=False`` for inputs already in [-1, 1] or to
train from scratch without it. It applies to RGB input only (``in_chans=3``).

Initialisation as torchvision's: convs and Linears N(0, 0.01) truncated at +-2 (absolute
bounds, so in effect untruncated), unit BatchNorm.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import AuxClassifierNetwork, ClassifierHead
from ..blocks import ConvNormAct, GoogLeNetAux, InceptionInputTransform, InceptionModule, NormLayer
from ..registry import register_model

# Table 1 of the paper: name: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj),
# grouped by stage. The inputs chain: each module reads the previous one's output.
STAGES = (
    (
        ("inception3a", (64, 96, 128, 16, 32, 32)),
        ("inception3b", (128, 128, 192, 32, 96, 64)),
    ),
    (
        ("inception4a", (192, 96, 208, 16, 48, 64)),
        ("inception4b", (160, 112, 224, 24, 64, 64)),
        ("inception4c", (128, 128, 256, 24, 64, 64)),
        ("inception4d", (112, 144, 288, 32, 64, 64)),
        ("inception4e", (256, 160, 320, 32, 128, 128)),
    ),
    (
        ("inception5a", (256, 160, 320, 32, 128, 128)),
        ("inception5b", (384, 192, 384, 48, 128, 128)),
    ),
)
# The max-pool opening stages 1 and 2: torchvision's maxpool3 (3x3/2) and maxpool4 (2x2/2).
STAGE_POOLS = (None, (3, 2), (2, 2))
REDUCTIONS = (8, 16, 32)
# Where the auxiliary classifiers read: (stage, module name), shallowest first.
AUX_TAPS = ((1, "inception4a"), (1, "inception4d"))
MIN_INPUT_SIZE = 15  # torchvision's meta min_size: the last pools still see one pixel


class GoogLeNet(AuxClassifierNetwork):
    first_conv = "stem.conv1.conv"

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.2,
        aux_logits: bool = False,
        aux_drop_rate: float = 0.7,
        transform_input: bool = False,
        kernel_5x5: int = 3,
        eps: float = 1e-3,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=MIN_INPUT_SIZE)
        if aux_logits and not include_top:
            raise ValueError("aux_logits=True needs include_top=True (the aux heads classify)")
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        # Google's [-1, 1] scaling is defined for RGB only.
        use_transform = transform_input and in_chans == 3
        self.stem = nn.Sequential(
            OrderedDict(
                transform=InceptionInputTransform() if use_transform else nn.Identity(),
                conv1=ConvNormAct(in_chans, 64, 7, 2, 3, **bn),
                pool1=nn.MaxPool2d(3, 2, ceil_mode=True),
                conv2=ConvNormAct(64, 64, 1, **bn),
                conv3=ConvNormAct(64, 192, 3, **bn),
                pool2=nn.MaxPool2d(3, 2, ceil_mode=True),
            )
        )
        stages, channels, in_chs = [], [], 192
        widths: dict[str, int] = {}
        for modules, pool in zip(STAGES, STAGE_POOLS, strict=True):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if pool is not None:
                layers["pool"] = nn.MaxPool2d(*pool, ceil_mode=True)
            for name, cfg in modules:
                block = InceptionModule(in_chs, *cfg, kernel_5x5=kernel_5x5, **bn)
                layers[name] = block
                in_chs = widths[name] = block.out_chs
            stages.append(nn.Sequential(layers))
            channels.append(in_chs)
        self._set_stages(stages, channels, REDUCTIONS)
        self.head = ClassifierHead(in_chs, num_classes, pooling, drop_rate, include_top)

        self.aux_taps = AUX_TAPS if aux_logits else ()
        self.aux = nn.ModuleList(
            GoogLeNetAux(widths[name], num_classes, drop_rate=aux_drop_rate, **bn)
            for _, name in self.aux_taps
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, 0.0, 0.01, -2, 2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def init_classifier(self, fc: nn.Linear) -> None:
        nn.init.trunc_normal_(fc.weight, 0.0, 0.01, -2, 2)


def googlenet(**kwargs) -> GoogLeNet:
    return GoogLeNet(**kwargs)


register_model(
    "googlenet",
    googlenet,
    family="googlenet",
    input_size=224,
    min_input_size=MIN_INPUT_SIZE,
    aux_heads=True,
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
    # As torchvision's builder sets it with the ImageNet weights: the model takes
    # ImageNet-normalised input (see the module docstring).
    transform_input=True,
)
