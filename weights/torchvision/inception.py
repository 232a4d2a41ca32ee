"""torchvision's GoogLeNet and Inception v3 checkpoints -> our key names, and their tags.

Both are Google's weights ported by torchvision; both files carry the auxiliary classifiers
(GoogLeNet's ``aux1``/``aux2``, Inception v3's ``AuxLogits``). The converters always map
those to ``aux.0``/``aux.1`` (shallowest first); a model built without aux heads leaves
them out when loading (``nets.load_pretrained`` drops ``aux.*`` keys the model lacks).

Every conv here is torchvision's ``BasicConv2d`` (``conv``, ``bn``), which is our
``ConvNormAct`` with the same child names, so the tables only move modules; no tensor is
reshaped. ``transform_input`` (the re-normalisation to [-1, 1] these weights need) has no
keys: the registered models switch it on (see ``nets.models.googlenet``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..layouts import has_keys, register_layout
from ..renames import StateDict, apply_rules
from .tag import register_torchvision

# GoogLeNet: which stage each Inception module falls in (see nets.models.googlenet: the max-pool
# that halves the grid opens the next stage).
GOOGLENET_STAGE = {"3": 0, "4": 1, "5": 2}

# The branches of torchvision's ``Inception``: Sequential indices -> our named children.
# branch3 is the "5x5" branch (a 3x3 conv in torchvision's weights).
GOOGLENET_BRANCHES = {
    "branch1": "branch1x1",
    "branch2.0": "branch3x3.reduce",
    "branch2.1": "branch3x3.conv",
    "branch3.0": "branch5x5.reduce",
    "branch3.1": "branch5x5.conv",
    # branch4.0 is the max-pool (no weights); branch4.1 the pool projection.
    "branch4.1": "branch_pool.proj",
}


def _googlenet_module(m: re.Match) -> str:
    return f"stages.{GOOGLENET_STAGE[m[1]]}.inception{m[1]}{m[2]}.{GOOGLENET_BRANCHES[m[3]]}."


GOOGLENET_RULES = [
    (r"conv([123])\.", r"stem.conv\1."),
    (r"inception([345])([a-e])\.(branch1|branch[23]\.[01]|branch4\.1)\.", _googlenet_module),
    # aux1 reads inception4a, aux2 inception4d: our aux heads 0 and 1.
    (r"aux1\.fc2\.", "aux.0.fc."),
    (r"aux2\.fc2\.", "aux.1.fc."),
    (r"aux1\.", "aux.0."),
    (r"aux2\.", "aux.1."),
    (r"fc\.", "head.fc."),
]

# Inception v3's stem convs (TF-slim names) -> ours.
INCEPTION_V3_STEM = {
    "Conv2d_1a_3x3": "conv1a",
    "Conv2d_2a_3x3": "conv2a",
    "Conv2d_2b_3x3": "conv2b",
    "Conv2d_3b_1x1": "conv3b",
    "Conv2d_4a_3x3": "conv4a",
}
# Mixed_5x are stage 0, Mixed_6x stage 1, Mixed_7x stage 2 (the grid-reduction modules 6a
# and 7a open their stage); inside a module the branch names are torchvision's.
INCEPTION_V3_STAGE = {"5": 0, "6": 1, "7": 2}

INCEPTION_V3_RULES = [
    (
        r"(Conv2d_1a_3x3|Conv2d_2a_3x3|Conv2d_2b_3x3|Conv2d_3b_1x1|Conv2d_4a_3x3)\.",
        lambda m: f"stem.{INCEPTION_V3_STEM[m[1]]}.",
    ),
    (
        r"Mixed_([567])([a-e])\.",
        lambda m: f"stages.{INCEPTION_V3_STAGE[m[1]]}.mixed{m[1]}{m[2]}.",
    ),
    # AuxLogits (conv0, conv1, fc) reads Mixed_6e: our aux head 0, same child names.
    (r"AuxLogits\.", "aux.0."),
    (r"fc\.", "head.fc."),
]


def convert_googlenet(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, GOOGLENET_RULES)


def convert_inception_v3(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, INCEPTION_V3_RULES)


register_layout(
    "torchvision",
    ["googlenet"],
    has_keys("conv1.conv.weight", "inception3a.branch1.conv.weight", "fc.weight"),
    convert_googlenet,
)
register_layout(
    "torchvision",
    ["inception_v3"],
    has_keys("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch1x1.conv.weight", "fc.weight"),
    convert_inception_v3,
)

# torchvision 0.29 metadata. Both evaluate ImageNet-normalised crops (the models re-normalise
# to [-1, 1] inside). num_params is torchvision's: GoogLeNet's counts no aux heads, Inception
# v3's counts AuxLogits (23,834,568 without).
register_torchvision(
    "googlenet",
    "tv",
    "googlenet-1378be20.pth",
    6_624_904,
    69.778,
    89.530,
    notes="ported from the original; the file's aux1/aux2 heads are untrained",
)
register_torchvision(
    "inception_v3",
    "tv",
    "inception_v3_google-0cc3c7bd.pth",
    27_161_264,
    77.294,
    93.450,
    resize=342,
    crop=299,
    notes="ported from Google's TF checkpoint; num_params includes AuxLogits (aux_logits=True)",
)
