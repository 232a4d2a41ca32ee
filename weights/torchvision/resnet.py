"""torchvision's ResNet checkpoints (``resnet*.pth`` from download.pytorch.org) -> our keys.

The rules say where each torchvision module lands in the stem/stages/head anatomy; timm's
SE-ResNets (``weights.timm_seresnet``) share them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..layouts import has_keys, register_layout
from ..renames import StateDict, apply_rules
from .tag import register_torchvision


def stage_block(m: re.Match) -> str:
    """``layer<N>.<M>`` -> ``stages.<N - 1>.<M>``: torchvision's (and timm's) layer1..layer4
    are our stages 0..3."""
    return f"stages.{int(m[1]) - 1}.{m[2]}"


RESNET_RULES = [
    (r"conv1\.", "stem.conv1.conv."),
    (r"bn1\.", "stem.conv1.bn."),
    (r"layer(\d)\.(\d+)\.conv(\d)\.", lambda m: f"{stage_block(m)}.conv{m[3]}.conv."),
    (r"layer(\d)\.(\d+)\.bn(\d)\.", lambda m: f"{stage_block(m)}.conv{m[3]}.bn."),
    # downsample is Sequential(conv, bn) in torchvision, a ConvNormAct in ours.
    (r"layer(\d)\.(\d+)\.downsample\.0\.", lambda m: f"{stage_block(m)}.downsample.conv."),
    (r"layer(\d)\.(\d+)\.downsample\.1\.", lambda m: f"{stage_block(m)}.downsample.bn."),
    (r"fc\.", "head.fc."),
]


def convert_resnet(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, RESNET_RULES)


register_layout(
    "torchvision",
    ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
    has_keys("conv1.weight", "layer1.0.conv1.weight", "fc.weight"),
    convert_resnet,
)


# -- tags: torchvision 0.29's metadata (ImageNet-1k val, 224 crop); tv2 = its new training recipe
register_torchvision("resnet18", "tv", "resnet18-f37072fd.pth", 11_689_512, 69.758, 89.078)
register_torchvision("resnet34", "tv", "resnet34-b627a593.pth", 21_797_672, 73.314, 91.420)
for _arch, _v1, _v2, _params, _acc in (
    (
        "resnet50",
        "resnet50-0676ba61.pth",
        "resnet50-11ad3fa6.pth",
        25_557_032,
        (76.130, 92.862, 80.858, 95.434),
    ),
    (
        "resnet101",
        "resnet101-63fe2227.pth",
        "resnet101-cd907fc2.pth",
        44_549_160,
        (77.374, 93.546, 81.886, 95.780),
    ),
    (
        "resnet152",
        "resnet152-394f9c45.pth",
        "resnet152-f82ba261.pth",
        60_192_808,
        (78.312, 94.046, 82.284, 96.002),
    ),
):
    register_torchvision(_arch, "tv", _v1, _params, _acc[0], _acc[1], default=False)
    # The V2 recipe evaluates with a 232 resize before the 224 crop.
    register_torchvision(
        _arch,
        "tv2",
        _v2,
        _params,
        _acc[2],
        _acc[3],
        resize=232,
        recipe="https://github.com/pytorch/vision/issues/3995#issuecomment-1013906621",
    )
