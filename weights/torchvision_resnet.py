"""torchvision's ResNet checkpoints (``resnet*.pth`` from download.pytorch.org) -> our keys.

The rules say where each torchvision module lands in the stem/stages/head anatomy; timm's
SE-ResNets (``weights.timm_seresnet``) share them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .layouts import has_keys, register_layout
from .renames import StateDict, apply_rules


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
