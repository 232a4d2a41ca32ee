"""ResNet-50/101/152 v2 (He et al., 2016, "Identity Mappings in Deep Residual Networks"):
pre-activation bottlenecks (``nets.PreActBottleneck``), as keras.applications builds
ResNet50V2/101V2/152V2 (after TF-slim), for Keras' ImageNet .h5 weights.

Keras' layout, which its weights need:

- stem: a 7x7/2 conv with a bias and no BatchNorm (the first block's pre-activation
  normalises it), then Keras pads 1 with *zeros* and max-pools 3x3/2 unpadded. No ReLU comes
  before that pool, so values can be negative and a zero pad can win the max: the pool's
  padding is an explicit ``nn.ZeroPad2d``, not ``MaxPool2d``'s -inf padding;
- Keras' stacks conv2..conv5 have 3, 4, 6, 3 blocks (101: 3, 4, 23, 3; 152: 3, 8, 36, 3);
  the *first* block of a stack widens the channels (1x1 conv shortcut from the
  pre-activation), the *last* block of conv2..conv4 carries the stride 2 (1x1 max-pool
  shortcut), conv5 has no stride;
- the last 1x1 conv and the shortcut conv have a bias; BatchNorm eps 1.001e-5 (momentum
  0.99 in Keras' terms, 0.01 in PyTorch's);
- after the last block a BatchNorm and a ReLU (Keras' ``post_bn``), then pooling.

Our stages end where the spatial size halves: a stage holds the blocks that run at one
resolution, and each stride-2 block *starts* the next stage (it is where the size halves).
So ``stages.0`` is conv2_block1..block{n-1} (stride 4, 256 channels); ``stages.1`` is conv2's
last block, which halves to stride 8, then conv3_block1..block{n-1} (512 channels); likewise
``stages.2`` (stride 16, 1024) and ``stages.3`` (conv4's last block, all of conv5, then the
post BN-ReLU as ``stages.3.norm``/``act``; stride 32, 2048). ``feature_info`` then has the
strides 4, 8, 16, 32 and the channels of ``resnet50``, so feature pyramids and U-Net encoders
can swap one for the other. Keras' stack boundaries are one block later than ours; the
converter (``weights.keras.resnet.resnet_v2_moves``) maps block by block.

Names: ``resnet50_v2`` is Keras' ``ResNet50V2``. timm's ``resnetv2_50`` is another layout of
the same paper (the stride in a stack's first block, no conv biases); its weights do not
load here, and we register no alias under its name.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import ClassifierHead, Network, init_conv_bn
from ..blocks import ConvNormAct, NormLayer, PreActBottleneck, ReLU, make_norm
from ..registry import register_variants

# name: blocks per Keras stack (conv2..conv5)
RESNETS_V2 = {
    "resnet50_v2": (3, 4, 6, 3),
    "resnet101_v2": (3, 4, 23, 3),
    "resnet152_v2": (3, 8, 36, 3),
}
STACK_PLANES = (64, 128, 256, 512)
STACK_LAST_STRIDE = (2, 2, 2, 1)  # the stride of each stack's last block


def block_plan(depths: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(planes, stride)`` of every block in Keras' order, stack by stack."""
    plan = []
    for planes, depth, last_stride in zip(STACK_PLANES, depths, STACK_LAST_STRIDE, strict=True):
        plan += [(planes, last_stride if b == depth - 1 else 1) for b in range(depth)]
    return plan


class ResNetV2(Network):
    first_conv = "stem.conv1.conv"

    def __init__(
        self,
        depths: tuple[int, ...],
        *,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        stem_width: int = 64,
        eps: float = 1.001e-5,
        momentum: float = 0.01,
        norm_layer: NormLayer | None = None,
        bias: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__(in_chans=in_chans)
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=ConvNormAct(in_chans, stem_width, 7, 2, 3, bias=bias, norm=False, act=None),
                pad=nn.ZeroPad2d(1),  # zeros, as Keras' pool1_pad (see the module's docstring)
                pool=nn.MaxPool2d(3, 2),
            )
        )
        plan = block_plan(depths)
        stages: list[list[nn.Module]] = [[]]
        channels, in_chs = [], stem_width
        for index, (planes, stride) in enumerate(plan):
            if stride > 1:  # the size halves here: a new stage begins
                channels.append(in_chs)
                stages.append([])
            # Stochastic depth grows linearly with the block index (Huang et al., 2016).
            dp = drop_path_rate * index / max(len(plan) - 1, 1)
            blk = PreActBottleneck(
                in_chs,
                planes,
                stride,
                bias=bias,
                eps=eps,
                momentum=momentum,
                norm_layer=norm_layer,
                drop_path=dp,
            )
            stages[-1].append(blk)
            in_chs = blk.out_chs
        channels.append(in_chs)
        parts = [nn.Sequential(*blocks) for blocks in stages]
        # The blocks end unnormalised (pre-activation): the post BN-ReLU closes the last stage.
        parts[-1].add_module("norm", make_norm(in_chs, norm_layer, eps, momentum))
        parts[-1].add_module("act", ReLU())
        self._set_stages(parts, channels, tuple(4 * 2**i for i in range(len(parts))))
        self.head = ClassifierHead(in_chs, num_classes, pooling, drop_rate, include_top)
        init_conv_bn(self)


def _resnet_v2(depths: tuple[int, ...], **kwargs) -> ResNetV2:
    return ResNetV2(depths, **kwargs)


register_variants(
    RESNETS_V2,
    _resnet_v2,
    family="resnet_v2",
    min_input_size=32,  # Keras' minimum
    paper="He et al., Identity Mappings in Deep Residual Networks, ECCV 2016; keras.applications",
)
