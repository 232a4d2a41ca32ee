"""MobileNet v3 large and small (Howard et al., 2019, "Searching for MobileNetV3").

The layout of torchvision's ``mobilenet_v3_large`` / ``mobilenet_v3_small`` and their
weights: a 3x3/2 stem conv (16 channels, hardswish), the inverted-residual blocks of the
paper's Tables 1 and 2 (kernel 3 or 5, ReLU or hardswish per row, optional squeeze-and-
excitation after the depthwise conv with squeeze = make_divisible(expanded // 4, 8), ReLU,
then a hardsigmoid gate; blocks whose expansion equals their input have no expansion conv),
a 1x1 conv to 6x the last block's width (960 / 576, hardswish), then global pooling and the
head Linear(960 -> 1280 / 576 -> 1024), hardswish, dropout 0.2, Linear classifier. Convs
without bias; BatchNorm eps 1e-3, momentum 0.01 (TF's 0.99).

Stages by resolution (a new stage at each stride-2 block), the last ending with the 1x1 conv
``conv_head``:
- large: strides 2, 4, 8, 16, 32 with 1, 2, 3, 6 and 3 blocks (torchvision's
  ``features.1``, ``2-3``, ``4-6``, ``7-12``, ``13-15`` + ``16``);
- small: its first block already has stride 2, so only the stem runs at stride 2 and the
  four stages end at strides 4, 8, 16, 32 with 1, 2, 5 and 3 blocks (``features.1``,
  ``2-3``, ``4-8``, ``9-11`` + ``12``).

``include_top=False`` keeps only the pooling over the 960 / 576-channel map: the first
Linear of the head belongs to the top (it is the paper's 1x1 conv after pooling).

The ``keras_mobilenet_v3_*`` models are keras.applications' ``MobileNetV3Large`` /
``MobileNetV3Small`` in the six configurations Keras publishes ImageNet files for (large and
small, alpha 1.0 and 0.75, and the minimalistic alpha 1.0), built by this same builder with
Keras' conventions as options:

- ``padding="same"``: Keras' stem conv is "same" and each stride-2 depthwise conv follows a
  ``ZeroPadding2D(correct_pad(x, k))``, which for a known even size is TF's SAME for that
  kernel (1 before and 2 after for 5x5, 0 and 1 for 3x3); at 224 every strided conv sees an
  even size. (A Keras model built with ``input_shape=None`` pads as if the size were even
  also on odd sizes; ours pads as TF's SAME on every size.)
- ``width_rule="keras"``: the stem keeps 16 channels whatever ``alpha``; a block's expanded
  width is ``_depth(its scaled input * ratio)`` (the ratio of the table, 72 / 24 = 3), not
  the table's expanded width scaled (at alpha 0.75 the second block expands 16 -> 64 in Keras,
  48 in torchvision); the head's hidden 1x1 conv (``last_point_ch``, 1280 / 1024) is scaled
  only when alpha > 1. At alpha 1.0 both rules give the same widths.
- ``minimalistic=True``: Keras' minimalistic models: every depthwise kernel 3x3, ReLU
  everywhere (stem, blocks, the last conv, the head), no squeeze-and-excitation.
- BatchNorm eps 1e-3 as torchvision's, momentum 0.001 (Keras' 0.999); dropout 0.2.

Keras' SE is ours: ``_depth(expanded * 0.25)`` channels (= make_divisible(expanded // 4, 8)
for a multiple of 8), 1x1 convs with bias, ReLU, then ``relu6(x + 3) / 6``, torch's
hardsigmoid; Keras' hard-swish is ``x * relu6(x + 3) / 6``, torch's hardswish. Keras' head,
global average pooling, a 1x1 conv with bias to 1280 / 1024, the activation, dropout and a 1x1
conv with bias to the classes, is ours with the two 1x1 convs on a 1x1 map as Linears
(``fc1``, ``fc``). Keras' ``include_top=False`` drops the same layers as ours (its top begins
at the pooling before ``conv_2``) and ends with the 960 / 576-channel map; Keras' default
``pooling=None`` returns that map, ours pools it unless ``pooling=None`` is passed.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from ..base import ClassifierHead, Network, init_conv_bn
from ..blocks import (
    ActLayer,
    ConvNormAct,
    InvertedResidual,
    NormLayer,
    ReLU,
    SqueezeExcite,
    make_divisible,
)
from ..blocks.mbconv import group_by_resolution
from ..registry import register_variants

Hardswish: ActLayer = partial(nn.Hardswish, inplace=True)


class BlockRow(NamedTuple):
    """One row of the paper's Tables 1 and 2 (one block)."""

    in_chs: int
    kernel: int
    expanded: int  # "exp size": the depthwise conv's width
    out_chs: int
    se: bool
    act: str  # "RE": ReLU, "HS": hardswish
    stride: int


LARGE = (
    BlockRow(16, 3, 16, 16, False, "RE", 1),
    BlockRow(16, 3, 64, 24, False, "RE", 2),
    BlockRow(24, 3, 72, 24, False, "RE", 1),
    BlockRow(24, 5, 72, 40, True, "RE", 2),
    BlockRow(40, 5, 120, 40, True, "RE", 1),
    BlockRow(40, 5, 120, 40, True, "RE", 1),
    BlockRow(40, 3, 240, 80, False, "HS", 2),
    BlockRow(80, 3, 200, 80, False, "HS", 1),
    BlockRow(80, 3, 184, 80, False, "HS", 1),
    BlockRow(80, 3, 184, 80, False, "HS", 1),
    BlockRow(80, 3, 480, 112, True, "HS", 1),
    BlockRow(112, 3, 672, 112, True, "HS", 1),
    BlockRow(112, 5, 672, 160, True, "HS", 2),
    BlockRow(160, 5, 960, 160, True, "HS", 1),
    BlockRow(160, 5, 960, 160, True, "HS", 1),
)
SMALL = (
    BlockRow(16, 3, 16, 16, True, "RE", 2),
    BlockRow(16, 3, 72, 24, False, "RE", 2),
    BlockRow(24, 3, 88, 24, False, "RE", 1),
    BlockRow(24, 5, 96, 40, True, "HS", 2),
    BlockRow(40, 5, 240, 40, True, "HS", 1),
    BlockRow(40, 5, 240, 40, True, "HS", 1),
    BlockRow(40, 5, 120, 48, True, "HS", 1),
    BlockRow(48, 5, 144, 48, True, "HS", 1),
    BlockRow(48, 5, 288, 96, True, "HS", 2),
    BlockRow(96, 5, 576, 96, True, "HS", 1),
    BlockRow(96, 5, 576, 96, True, "HS", 1),
)
# name: (blocks, width of the head's hidden Linear before width scaling)
VARIANTS = {
    "mobilenet_v3_large": (LARGE, 1280),
    "mobilenet_v3_small": (SMALL, 1024),
}
# keras.applications' configurations with ImageNet files (its WEIGHTS_HASHES): name ->
# (blocks, head width, alpha, minimalistic). Names as mobilenet_v1_075: the width x100.
KERAS_VARIANTS = {
    "keras_mobilenet_v3_large": (LARGE, 1280, 1.0, False),
    "keras_mobilenet_v3_large_075": (LARGE, 1280, 0.75, False),
    "keras_mobilenet_v3_large_minimalistic": (LARGE, 1280, 1.0, True),
    "keras_mobilenet_v3_small": (SMALL, 1024, 1.0, False),
    "keras_mobilenet_v3_small_075": (SMALL, 1024, 0.75, False),
    "keras_mobilenet_v3_small_minimalistic": (SMALL, 1024, 1.0, True),
}
ACTS: dict[str, ActLayer] = {"RE": ReLU, "HS": Hardswish}


class MobileNetV3Head(ClassifierHead):
    """Global pooling, ``fc1`` (Linear to ``hidden``) and ``act`` (hardswish; ReLU in Keras'
    minimalistic models), dropout, classifier ``fc``.

    Pre-logits are the hardswish outputs (``num_features = hidden``), so a new classifier
    (``reset``) keeps ``fc1``, as a fine-tuned torchvision model replaces ``classifier[3]``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        num_classes: int = 1000,
        pooling: str = "avg",
        drop_rate: float = 0.2,
        act: ActLayer = Hardswish,
    ) -> None:
        super().__init__(hidden, num_classes, pooling, drop_rate)
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = act()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.fc1(self.flatten(self.pool(x))))  # (N, C, H, W) -> (N, hidden)
        if pre_logits:
            return x
        return self.fc(self.drop(x))


class MobileNetV3(Network):
    first_conv = "stem.conv"

    def __init__(
        self,
        blocks: tuple[BlockRow, ...],
        head_hidden: int,
        *,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 3,
        drop_rate: float = 0.2,
        eps: float = 1e-3,
        momentum: float = 0.01,
        norm_layer: NormLayer | None = None,
        padding: int | str | None = None,
        width_rule: str = "torchvision",
        minimalistic: bool = False,
    ) -> None:
        """``padding``: None (symmetric) or ``"same"`` (TF's, Keras'); ``width_rule``:
        ``"torchvision"`` or ``"keras"`` (how ``width_mult`` scales the stem, the expanded
        widths and the head, see the module's docstring); ``minimalistic``: kernels 3x3,
        ReLU everywhere, no SE (Keras' minimalistic models)."""
        super().__init__(in_chans=in_chans)
        if width_rule not in ("torchvision", "keras"):
            raise ValueError(f"width_rule must be 'torchvision' or 'keras', got {width_rule!r}")
        keras = width_rule == "keras"
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        if minimalistic:
            blocks = tuple(row._replace(kernel=3, se=False, act="RE") for row in blocks)
        act = ReLU if minimalistic else Hardswish  # of the stem, the last conv and the head

        def scale(c: float) -> int:
            return make_divisible(c * width_mult, 8)

        stem_chs = blocks[0].in_chs if keras else scale(blocks[0].in_chs)  # Keras: always 16
        self.stem = ConvNormAct(in_chans, stem_chs, 3, 2, padding, act=act, **bn)

        positions = group_by_resolution([b.stride for b in blocks])
        n_stages = positions[-1][0] + 1
        stage_blocks: list[OrderedDict[str, nn.Module]] = [OrderedDict() for _ in range(n_stages)]
        channels, reductions = [0] * n_stages, [0] * n_stages
        cin = stem_chs
        for row, (s, reduction) in zip(blocks, positions, strict=True):
            cout = scale(row.out_chs)
            if keras:  # Keras' _depth(infilters * expansion), the ratio from the table
                mid = make_divisible(cin * (row.expanded / row.in_chs), 8)
            else:
                mid = scale(row.expanded)
            attn = None
            if row.se:
                attn = partial(
                    SqueezeExcite,
                    squeeze_chs=make_divisible(mid // 4, 8),
                    act=nn.ReLU,
                    gate=nn.Hardsigmoid,
                )
            blk = InvertedResidual(
                cin,
                cout,
                row.stride,
                mid / cin,
                row.kernel,
                padding=padding,
                act=ACTS[row.act],
                attn=attn,
                mid_chs=mid,  # mid == cin: no expansion conv, as in the paper's first rows
                **bn,
            )
            stage_blocks[s][str(len(stage_blocks[s]))] = blk
            channels[s], reductions[s] = cout, reduction
            cin = cout
        last_in = channels[-1]
        last_chs = 6 * last_in
        stage_blocks[-1]["conv_head"] = ConvNormAct(last_in, last_chs, 1, act=act, **bn)
        channels[-1] = last_chs
        self._set_stages([nn.Sequential(b) for b in stage_blocks], channels, reductions)
        if include_top:
            # Keras scales last_point_ch only when alpha > 1; torchvision always.
            hidden = head_hidden if keras and width_mult <= 1 else scale(head_hidden)
            self.head = MobileNetV3Head(last_chs, hidden, num_classes, pooling, drop_rate, act=act)
        else:
            self.head = ClassifierHead(last_chs, 0, pooling, include_top=False)
        # torchvision's init: Kaiming-normal fan-out convs (SE's too), unit BN, Linear
        # N(0, 0.01), zero biases.
        init_conv_bn(self, linear_std=0.01)

    def init_classifier(self, fc: nn.Linear) -> None:
        """N(0, 0.01) weights, zero bias: torchvision's MobileNet init."""
        nn.init.normal_(fc.weight, 0.0, 0.01)
        nn.init.zeros_(fc.bias)


register_variants(
    VARIANTS,
    lambda variant, **kwargs: MobileNetV3(*variant, **kwargs),
    family="mobilenet_v3",
    min_input_size=32,
    paper="Howard et al., Searching for MobileNetV3, ICCV 2019",
)

register_variants(
    KERAS_VARIANTS,
    lambda variant, **kwargs: MobileNetV3(variant[0], variant[1], **kwargs),
    family="mobilenet_v3",
    min_input_size=32,  # Keras' minimum
    paper=lambda name: (
        "Howard et al., Searching for MobileNetV3, ICCV 2019; keras.applications."
        + ("MobileNetV3Large" if "large" in name else "MobileNetV3Small")
    ),
    defaults=lambda variant: dict(width_mult=variant[2], minimalistic=variant[3]),
    padding="same",
    width_rule="keras",
    eps=1e-3,
    momentum=0.001,
)
