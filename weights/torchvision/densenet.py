"""torchvision's DenseNet checkpoints (``densenet121-a639ec97.pth``, ...) -> our key names.

torchvision keeps everything but the classifier in one ``features`` Sequential. Where each
module lands (see nets/models/densenet.py for the anatomy):

    features.conv0 / norm0                 -> stem.conv1.conv / stem.conv1.bn
    features.denseblock<b>.denselayer<l>.X -> stages.<b-1>.block.<l-1>.X
    features.transition<t>.{norm,conv}     -> stages.<t>.transition.{norm,conv}
    features.norm5                         -> stages.<last>.norm
    classifier                             -> head.fc

The files torchvision downloads predate PyTorch's ban on dots in module names and spell
the dense layers' children ``norm.1``, ``conv.1``, ``norm.2``, ``conv.2`` (torchvision's own
loader rewrites them with a regex); the rules take both spellings. No tensor changes shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..layouts import register_layout
from ..renames import StateDict, apply_rules
from .tag import register_torchvision

ARCHS = ["densenet121", "densenet161", "densenet169", "densenet201"]


def _dense_layer(m: re.Match) -> str:
    block, layer, kind, index = m.groups()
    # ``norm.1`` (old files) and ``norm1`` (torchvision's modules today) are the same module.
    return f"stages.{int(block) - 1}.block.{int(layer) - 1}.{kind}{index}."


def densenet_rules(num_blocks: int) -> list[tuple]:
    """The rename table for a DenseNet with ``num_blocks`` dense blocks (4 in all four)."""
    return [
        (r"features\.conv0\.", "stem.conv1.conv."),
        (r"features\.norm0\.", "stem.conv1.bn."),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.(norm|conv)\.?([12])\.", _dense_layer),
        # transition<t> sits between blocks t and t+1: it opens our stage t (0-based).
        (r"features\.transition(\d+)\.(norm|conv)\.", r"stages.\1.transition.\2."),
        (r"features\.norm5\.", f"stages.{num_blocks - 1}.norm."),
        (r"classifier\.", "head.fc."),
    ]


def _num_blocks(state_dict: Mapping[str, torch.Tensor]) -> int:
    blocks = {int(m[1]) for k in state_dict if (m := re.match(r"features\.denseblock(\d+)\.", k))}
    return max(blocks, default=0)


def convert_densenet(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, densenet_rules(_num_blocks(state_dict)))


def looks_like_densenet(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return (
        "features.conv0.weight" in state_dict
        and "features.norm5.weight" in state_dict
        and "classifier.weight" in state_dict
    )


register_layout("torchvision", ARCHS, looks_like_densenet, convert_densenet)

# torchvision 0.29 metadata (ImageNet-1k val, resize 256, crop 224, bilinear); the weights
# were ported from the authors' Lua Torch models.
register_torchvision("densenet121", "tv", "densenet121-a639ec97.pth", 7_978_856, 74.434, 91.972)
register_torchvision("densenet161", "tv", "densenet161-8d451a50.pth", 28_681_000, 77.138, 93.560)
register_torchvision("densenet169", "tv", "densenet169-b2777c0a.pth", 14_149_480, 75.600, 92.806)
register_torchvision("densenet201", "tv", "densenet201-c1103571.pth", 20_013_928, 76.896, 93.370)
