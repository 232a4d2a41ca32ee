"""torchvision's EfficientNet-B0..B7 checkpoints -> our key names, and their tags.

torchvision keeps the whole trunk in one Sequential ``features``: ``features.0`` is the
stem (conv, BN), ``features.1`` .. ``features.7`` the seven block groups (each a Sequential
of MBConv blocks whose layers sit in ``block``), ``features.8`` the 1x1 head conv; the
classifier is ``classifier.1`` (after a Dropout at 0).

Our stages group the blocks by resolution (groups 3 and 4 share stride 16, groups 5 and 6
stride 32), and the last stage ends with the head conv (``conv_head``), so the block index
inside a stage runs on across the groups it holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..layouts import register_layout
from ..renames import StateDict, apply_prefixes
from ..tensorflow.efficientnet_lite import GROUP_TO_STAGE
from .tag import register_torchvision

ARCHS = [f"efficientnet_b{i}" for i in range(8)]

# torchvision's Conv2dNormActivation is Sequential(conv, bn, act); our ConvNormAct names them.
CNA = {"0": "conv", "1": "bn"}
# A block with an expansion conv (expand ratio 6): torchvision's ``block`` layers -> our
# InvertedResidual's children.
MBCONV_PARTS = {"0": "expand", "1": "depthwise", "2": "attn", "3": "project"}
# The first group's blocks (expand ratio 1) have no expansion conv: our DepthwiseSeparable,
# whose 1x1 conv is ``pointwise``.
DEPTHWISE_SEPARABLE_PARTS = {"0": "depthwise", "1": "attn", "2": "pointwise"}
# torchvision's SqueezeExcitation (fc1, fc2: 1x1 convs with bias) -> our SqueezeExcite.
SE_PARTS = {"fc1": "reduce", "fc2": "expand"}


def table(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The module-prefix rename table for one checkpoint, from the blocks it holds.

    The number of blocks per group depends on the variant's depth; it is read from the keys.
    """
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        if m := re.match(r"features\.(\d+)\.(\d+)\.block\.", key):
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    groups = sorted(blocks)
    out = {"features.0.0": "stem.conv", "features.0.1": "stem.bn", "classifier.1": "head.fc"}
    stage, j = -1, 0
    for g, feature in enumerate(groups):
        if g >= len(GROUP_TO_STAGE):
            break  # not a B0-B7 layout; the strict check reports the leftover keys
        if GROUP_TO_STAGE[g] != stage:
            stage, j = GROUP_TO_STAGE[g], 0
        for m in sorted(blocks[feature]):
            theirs = f"features.{feature}.{m}.block"
            has_expand = f"{theirs}.3.0.weight" in state_dict
            parts = MBCONV_PARTS if has_expand else DEPTHWISE_SEPARABLE_PARTS
            for k, part in parts.items():
                subs = SE_PARTS if part == "attn" else CNA
                for t, o in subs.items():
                    out[f"{theirs}.{k}.{t}"] = f"stages.{stage}.{j}.{part}.{o}"
            j += 1
    # The head conv follows the last block group in ``features``.
    head = f"features.{groups[-1] + 1}" if groups else "features.8"
    out[f"{head}.0"] = f"stages.{stage}.conv_head.conv"
    out[f"{head}.1"] = f"stages.{stage}.conv_head.bn"
    return out


def convert(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_prefixes(state_dict, table(state_dict))


def looks_like(state_dict: Mapping[str, torch.Tensor]) -> bool:
    # ``features.1.0.block`` (a group Sequential holding blocks) tells EfficientNet from
    # MobileNetV3 (``features.1.block``); SE in the first block tells V1 from V2 (FusedMBConv).
    return all(
        k in state_dict
        for k in ("features.0.0.weight", "features.1.0.block.1.fc1.weight", "classifier.1.weight")
    )


register_layout("torchvision", ARCHS, looks_like, convert)

# torchvision 0.29's EfficientNet_B*_Weights (ImageNet-1k val). V1 weights were ported from
# timm (B0-B4) and lukemelas' EfficientNet-PyTorch (B5-B7) and are evaluated with bicubic
# resizing; the resize -> crop sizes are torchvision's, not the paper's resolutions.
# (variant, file name after "efficientnet_<variant>_", params, acc@1, acc@5, resize, crop)
TV_V1 = (
    ("b0", "rwightman-7f5810bc.pth", 5_288_548, 77.692, 93.532, 256, 224),
    ("b1", "rwightman-bac287d4.pth", 7_794_184, 78.642, 94.186, 256, 240),
    ("b2", "rwightman-c35c1473.pth", 9_109_994, 80.608, 95.310, 288, 288),
    ("b3", "rwightman-b3899882.pth", 12_233_232, 82.008, 96.054, 320, 300),
    ("b4", "rwightman-23ab8bcd.pth", 19_341_616, 83.384, 96.594, 384, 380),
    ("b5", "lukemelas-1a07897c.pth", 30_389_784, 83.444, 96.628, 456, 456),
    ("b6", "lukemelas-24a108a5.pth", 43_040_704, 84.008, 96.916, 528, 528),
    ("b7", "lukemelas-c5b4e57e.pth", 66_347_960, 84.122, 96.908, 600, 600),
)
for _v, _file, _params, _top1, _top5, _resize, _crop in TV_V1:
    register_torchvision(
        f"efficientnet_{_v}",
        "tv",
        f"efficientnet_{_v}_{_file}",
        _params,
        _top1,
        _top5,
        resize=_resize,
        crop=_crop,
        interpolation="bicubic",
        # B1 also has torchvision's own V2 weights, and those are its DEFAULT.
        default=_v != "b1",
    )
# B1 trained with torchvision's recipe: evaluated with bilinear resizing to 255.
register_torchvision(
    "efficientnet_b1",
    "tv2",
    "efficientnet_b1-c27df63c.pth",
    7_794_184,
    79.838,
    94.934,
    resize=255,
    crop=240,
    interpolation="bilinear",
    recipe="https://github.com/pytorch/vision/issues/3995#new-recipe-with-lr-wd-crop-tuning",
)
