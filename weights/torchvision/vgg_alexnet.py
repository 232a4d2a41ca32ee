"""torchvision's VGG and AlexNet checkpoints (download.pytorch.org) -> our key names.

Both number every layer in two Sequentials, ``features`` and ``classifier``; the tables say
where each of those modules lands in the stem/stages/head anatomy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..layouts import has_keys, register_layout
from ..renames import StateDict, apply_prefixes
from .tag import register_torchvision

# AlexNet's features Sequential: conv at 0, 3, 6, 8, 10 with max-pools after 0, 3 and 10;
# the classifier has dropout at 0 and 3.
ALEXNET_TABLE = {
    "features.0": "stages.0.0.conv",
    "features.3": "stages.1.0.conv",
    "features.6": "stages.2.0.conv",
    "features.8": "stages.2.1.conv",
    "features.10": "stages.2.2.conv",
    "classifier.1": "head.fc1",
    "classifier.4": "head.fc2",
    "classifier.6": "head.fc",
}

VGG_CLASSIFIER = {"classifier.0": "head.fc1", "classifier.3": "head.fc2", "classifier.6": "head.fc"}


def vgg_table(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Build VGG's rename table from the indices of ``features``.

    torchvision numbers every layer in one Sequential: conv, [bn], relu per conv layer and a
    max-pool at the end of each stage. Conv layers of one stage are therefore ``step`` apart
    (2, or 3 with BatchNorm); a larger gap means a pool, so the next stage begins.
    """
    convs = sorted(
        int(k.split(".")[1])
        for k, v in state_dict.items()
        if re.fullmatch(r"features\.\d+\.weight", k) and v.dim() == 4
    )
    with_bn = any(f"features.{i + 1}.running_mean" in state_dict for i in convs)
    step = 3 if with_bn else 2
    table = dict(VGG_CLASSIFIER)
    stage, j, prev = 0, 0, None
    for i in convs:
        if prev is not None:
            if i - prev > step:
                stage, j = stage + 1, 0
            else:
                j += 1
        table[f"features.{i}"] = f"stages.{stage}.{j}.conv"
        if with_bn:
            table[f"features.{i + 1}"] = f"stages.{stage}.{j}.bn"
        prev = i
    return table


def convert_vgg(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_prefixes(state_dict, vgg_table(state_dict))


def convert_alexnet(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_prefixes(state_dict, ALEXNET_TABLE)


register_layout(
    "torchvision",
    ["vgg11", "vgg13", "vgg16", "vgg19", "vgg*_bn"],
    has_keys("features.0.weight", "classifier.6.weight"),
    convert_vgg,
)
register_layout(
    "torchvision",
    ["alexnet"],
    has_keys("features.0.weight", "features.10.weight", "classifier.6.weight"),
    convert_alexnet,
)


# -- tags: torchvision 0.29's metadata (ImageNet-1k val, 224 crop)
register_torchvision("alexnet", "tv", "alexnet-owt-7be5be79.pth", 61_100_840, 56.522, 79.066)
register_torchvision("vgg11", "tv", "vgg11-8a719046.pth", 132_863_336, 69.020, 88.628)
register_torchvision("vgg11_bn", "tv", "vgg11_bn-6002323d.pth", 132_868_840, 70.370, 89.810)
register_torchvision("vgg13", "tv", "vgg13-19584684.pth", 133_047_848, 69.928, 89.246)
register_torchvision("vgg13_bn", "tv", "vgg13_bn-abd245e5.pth", 133_053_736, 71.586, 90.374)
register_torchvision("vgg16", "tv", "vgg16-397923af.pth", 138_357_544, 71.592, 90.382)
register_torchvision("vgg16_bn", "tv", "vgg16_bn-6c64b313.pth", 138_365_992, 73.360, 91.516)
register_torchvision("vgg19", "tv", "vgg19-dcbb9e9d.pth", 143_667_240, 72.376, 90.876)
register_torchvision("vgg19_bn", "tv", "vgg19_bn-c79401a0.pth", 143_678_248, 74.218, 91.842)
