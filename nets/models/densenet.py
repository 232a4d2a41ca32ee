"""DenseNet-121/161/169/201 (Huang et al., 2017, "Densely Connected Convolutional Networks"),
the DenseNet-BC variants: bottleneck layers (``bn_size * growth_rate`` channels before each
3x3 conv) and transitions that halve the channels.

The layout of torchvision's weights: convs without bias, BatchNorm eps 1e-5, ReLU.
Anatomy (torchvision's ``features`` -> ours):

- stem: conv0, norm0, relu0 (``stem.conv1``, a ConvNormAct) and the 3x3/2 max-pool pool0;
- stage 0: denseblock1 (stride 4);
- stage i = 1..3: transition<i> (BN-ReLU-1x1 conv, 2x2 average pool) then denseblock<i+1>,
  so each later stage begins where the size halves, as ResNet's stages begin with their
  stride-2 block, and its output is a whole dense block's concatenation (strides 8, 16, 32);
- the last stage also holds norm5 and the ReLU torchvision applies after ``features``, so
  ``forward_features`` returns the normalised, activated map;
- head: global average pool and ``classifier`` (``head.fc``).

``keras_densenet121``, ``keras_densenet169``, ``keras_densenet201`` are keras.applications'
DenseNets, for their ImageNet .h5 weights: the same network with BatchNorm eps 1.001e-5
(momentum 0.01, Keras' 0.99). Keras' padding is ours: 3 zeros then the 7x7/2 conv unpadded,
1 zero then the 3x3/2 max-pool after a ReLU (zero and -inf padding give the same maxima on
non-negative values), "same" 3x3 convs at stride 1.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from torch import nn

from ..base import ClassifierHead, Network
from ..blocks import ConvNormAct, DenseBlock, NormLayer, ReLU, Transition, make_norm
from ..registry import register_variants


class DenseNetCfg(NamedTuple):
    growth_rate: int  # k: channels each dense layer adds
    block_config: tuple[int, int, int, int]  # dense layers per block
    num_init_features: int  # the stem's channels
    bn_size: int = 4  # bottleneck width, in multiples of k


# Table 1 of the paper (k = 32; DenseNet-161 has k = 48 and a 96-channel stem).
DENSENETS = {
    "densenet121": DenseNetCfg(32, (6, 12, 24, 16), 64),
    "densenet161": DenseNetCfg(48, (6, 12, 36, 24), 96),
    "densenet169": DenseNetCfg(32, (6, 12, 32, 32), 64),
    "densenet201": DenseNetCfg(32, (6, 12, 48, 32), 64),
}


class DenseNet(Network):
    first_conv = "stem.conv1.conv"

    def __init__(
        self,
        growth_rate: int,
        block_config: tuple[int, ...],
        num_init_features: int,
        bn_size: int = 4,
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        eps: float = 1e-5,
        drop_rate: float = 0.0,
        dense_drop_rate: float = 0.0,
        memory_efficient: bool = False,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        """``drop_rate`` is dropout before the classifier, as in every family here;
        ``dense_drop_rate`` is torchvision's ``drop_rate``, dropout on each dense layer's new
        features. ``memory_efficient`` checkpoints each layer's bottleneck (slower training,
        far less activation memory, the same numbers)."""
        super().__init__(in_chans=in_chans)
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=ConvNormAct(in_chans, num_init_features, 7, 2, 3, **bn),
                pool=nn.MaxPool2d(3, 2, 1),
            )
        )
        layer_kwargs = dict(
            bn_size=bn_size,
            drop_rate=dense_drop_rate,
            memory_efficient=memory_efficient,
            **bn,
        )
        stages, channels, reductions = [], [], []
        in_chs, reduction = num_init_features, 4
        for i, num_layers in enumerate(block_config):
            parts = OrderedDict()
            if i > 0:
                # DenseNet-BC's compression: the transition halves the channels (theta = 0.5).
                parts["transition"] = Transition(in_chs, in_chs // 2, **bn)
                in_chs, reduction = in_chs // 2, reduction * 2
            parts["block"] = DenseBlock(num_layers, in_chs, growth_rate, **layer_kwargs)
            in_chs = parts["block"].out_chs
            if i == len(block_config) - 1:
                # torchvision's norm5 and the F.relu of its forward, after the last block.
                parts["norm"] = make_norm(in_chs, norm_layer, eps, momentum)
                parts["act"] = ReLU()
            stages.append(nn.Sequential(parts))
            channels.append(in_chs)
            reductions.append(reduction)
        self._set_stages(stages, channels, reductions)
        self.head = ClassifierHead(in_chs, num_classes, pooling, drop_rate, include_top)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's (from the Lua Torch original): kaiming_normal_ with its defaults
        # (fan_in, gain sqrt(2)), unit BatchNorm, PyTorch's default Linear weight, zero bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                self.init_classifier(m)

    def init_classifier(self, fc: nn.Linear) -> None:
        nn.init.zeros_(fc.bias)


def _densenet(cfg: DenseNetCfg, **kwargs) -> DenseNet:
    return DenseNet(*cfg, **kwargs)


register_variants(
    DENSENETS,
    _densenet,
    family="densenet",
    # Keras' minimum for DenseNet (torchvision's metadata says 29: the last map is 1x1).
    min_input_size=32,
    paper="Huang et al., Densely Connected Convolutional Networks, CVPR 2017",
)
register_variants(
    {f"keras_{n}": DENSENETS[n] for n in ("densenet121", "densenet169", "densenet201")},
    _densenet,
    family="densenet",
    min_input_size=32,
    paper="Huang et al., Densely Connected Convolutional Networks, CVPR 2017; keras.applications",
    eps=1.001e-5,
    momentum=0.01,
)
