"""ResNet-18/34/50/101/152 (He et al., 2015, "Deep Residual Learning for Image Recognition").

The layout of torchvision's weights: stride on the 3x3 conv of the bottleneck ("v1.5"),
convs without bias, BatchNorm eps 1e-5. Stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool;
stages are torchvision's layer1..layer4 (strides 4, 8, 16, 32).

Other layouts reuse the class through its options (``nets.models.seresnet``): ``block_kwargs`` go to
every block (``stride_in_1x1``, ``attn``), and ``stem_pool_padding``/``stem_pool_ceil_mode``
give the Caffe stem's pool (padding 0, ``ceil_mode=True``) that the SENet weights need.

torchvision's builder options, for backbones: ``norm_layer`` replaces every BatchNorm
(``FrozenBatchNorm2d``, ``lambda c: nn.GroupNorm(32, c)``; the keys stay, so the weights
load); ``replace_stride_with_dilation`` (three booleans, stages 2 to 4) keeps a stage at
its input's resolution and dilates its 3x3 convs instead, for an output stride of 16 or 8
(``[False, True, True]``), the first block of such a stage keeping the previous stage's
dilation, as torchvision does; ``feature_info`` then gives the real strides (4, 8, 8, 8).
``zero_init_residual`` starts the last BatchNorm of every residual branch at zero.

``keras_resnet50`` is ResNet-50 as keras.applications builds it, for its ImageNet .h5 weights:
the stride on the first 1x1 of each bottleneck, every conv with a bias (the stem's too,
``stem_bias``), BatchNorm eps 1.001e-5. Its padding is ours already: Keras pads 3 then runs
the 7x7/2 conv unpadded (= padding 3), pads 1 with zeros then max-pools 3x3/2 unpadded (=
padding 1: after the ReLU every value is >= 0, so zero and -inf padding give the same
maxima), and its 3x3 convs are "same" at stride 1 (= padding 1). 25,583,592 parameters
(Keras: 25,636,712 with BatchNorm's 53,120 moving statistics). ``keras_resnet101`` and
``keras_resnet152`` are Keras' ResNet101/ResNet152, the same options at those depths
(44,601,832 and 60,268,520 parameters; Keras counts 44,707,176 and 60,419,944).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..base import ClassifierHead, Network, init_conv_bn
from ..blocks import BasicBlock, Bottleneck, ConvNormAct, NormLayer
from ..registry import register_variants

# name: (block, blocks per stage)
RESNETS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}
STAGE_PLANES = (64, 128, 256, 512)


class ResNet(Network):
    first_conv = "stem.conv1.conv"

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: tuple[int, ...],
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        stem_width: int = 64,
        eps: float = 1e-5,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = False,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        norm_layer: NormLayer | None = None,
        block_kwargs: dict | None = None,
        stem_pool_padding: int = 1,
        stem_pool_ceil_mode: bool = False,
        stem_bias: bool = False,
    ) -> None:
        super().__init__(in_chans=in_chans)
        dilate = list(replace_stride_with_dilation or [False] * 3)
        if len(dilate) != 3:
            raise ValueError(
                f"replace_stride_with_dilation needs 3 booleans (stages 2 to 4), got {dilate}"
            )
        bn = dict(eps=eps, norm_layer=norm_layer)
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=ConvNormAct(in_chans, stem_width, 7, 2, 3, bias=stem_bias, **bn),
                # Caffe-trained weights (SENet) pool with padding 0 and ceil_mode=True: the
                # windows shift by one pixel, and an odd-sized map gives one row fewer.
                pool=nn.MaxPool2d(3, 2, stem_pool_padding, ceil_mode=stem_pool_ceil_mode),
            )
        )
        stages, channels, reductions, in_chs = [], [], [], stem_width
        total, index = sum(depths), 0
        reduction, dilation = 4, 1
        for i, (planes, depth) in enumerate(zip(STAGE_PLANES, depths, strict=True)):
            stride, first_dilation = (2 if i > 0 else 1), dilation
            if i > 0 and dilate[i - 1]:
                stride, dilation = 1, dilation * stride
            reduction *= stride
            blocks = []
            for j in range(depth):
                # Stochastic depth grows linearly with the block index (Huang et al., 2016).
                dp = drop_path_rate * index / max(total - 1, 1)
                blk = block(
                    in_chs,
                    planes,
                    stride if j == 0 else 1,
                    dilation=dilation,
                    first_dilation=first_dilation if j == 0 else dilation,
                    drop_path=dp,
                    **bn,
                    **(block_kwargs or {}),
                )
                blocks.append(blk)
                in_chs, index = blk.out_chs, index + 1
            stages.append(nn.Sequential(*blocks))
            channels.append(in_chs)
            reductions.append(reduction)
        self._set_stages(stages, channels, reductions)
        self.head = ClassifierHead(in_chs, num_classes, pooling, drop_rate, include_top)
        init_conv_bn(self)
        if zero_init_residual:
            # Start every residual branch at zero (Goyal et al., 2017): each block is identity.
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    last = m.conv2 if isinstance(m, BasicBlock) else m.conv3
                    nn.init.zeros_(last.bn.weight)


def _resnet(variant: tuple, **kwargs) -> ResNet:
    block, depths = variant
    return ResNet(block, depths, **kwargs)


PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
register_variants(RESNETS, _resnet, family="resnet", min_input_size=32, paper=PAPER)
register_variants(
    {f"keras_{n}": RESNETS[n] for n in ("resnet50", "resnet101", "resnet152")},
    _resnet,
    family="resnet",
    min_input_size=32,
    paper=PAPER + "; keras.applications",
    block_kwargs=dict(stride_in_1x1=True, bias=True),
    stem_bias=True,
    eps=1.001e-5,
)
