"""torchvision's MobileNet v2 and v3 checkpoints -> our key names, and their tags.

torchvision numbers every layer in one ``features`` Sequential: the stem conv at 0, one
inverted-residual block per index, the final 1x1 conv last. Our stages group the blocks by
resolution (a new stage at each stride-2 block), and the final 1x1 conv ends the last stage
as ``conv_head``. Strides are not in a state dict: the grouping is read from the key names of
the model the weights load into, which the loading path hands over (``expected``), and only a
conversion without a model falls back to a table per arch.

Inside a block torchvision has one Sequential too:
- v2: ``conv.0`` (expand ConvBNReLU6, absent when t = 1), the depthwise ConvBNReLU6, then a
  bare projection conv and its BatchNorm as two entries;
- v3: ``block.0..`` (expand, absent when the expansion equals the input), depthwise,
  ``SqueezeExcitation`` (``fc1``/``fc2``, where the block has SE), projection.
Which of these a block has is read from its keys. No tensor is reshaped: every torchvision
module maps onto one of ours with the same parameter shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping

import torch

from ..layouts import block_prefixes, has_keys, register_layout
from ..renames import StateDict, apply_prefixes
from .tag import register_torchvision

# Blocks per stage (our stages 0, 1, ...), in torchvision's order features.1, features.2, ...
# Only for a conversion without a model to load into (``weights.resolve`` called alone): the
# loading path hands over the model's keys, and the grouping is read from those.
STAGE_BLOCKS = {
    "mobilenet_v2": (1, 2, 3, 7, 4),
    "mobilenet_v3_large": (1, 2, 3, 6, 3),
    "mobilenet_v3_small": (1, 2, 5, 3),
}
V2_HEAD = {"classifier.1": "head.fc"}  # classifier.0 is the dropout
V3_HEAD = {"classifier.0": "head.fc1", "classifier.3": "head.fc"}  # 1, 2: hardswish, dropout


def _positions(arch: str, expected: Collection[str] | None = None) -> list[str]:
    """Our prefix for each of torchvision's blocks ``features.1`` .. ``features.N``: the
    model's blocks in its order where its keys are given, else from ``STAGE_BLOCKS``."""
    if expected is not None:
        return block_prefixes(expected, "depthwise.conv.weight")
    return [f"stages.{s}.{j}" for s, count in enumerate(STAGE_BLOCKS[arch]) for j in range(count)]


def _conv_bn(table: dict[str, str], theirs: str, ours: str) -> None:
    # torchvision's Conv2dNormActivation is Sequential(conv, bn, act): our ConvNormAct.
    table[f"{theirs}.0"] = f"{ours}.conv"
    table[f"{theirs}.1"] = f"{ours}.bn"


def _table(
    head: Mapping[str, str],
    positions: list[str],
    block: Callable[[dict[str, str], str, str], None],
) -> dict[str, str]:
    """Stem, one ``block(table, theirs, ours)`` per block, and the final 1x1 conv, which ends
    the last block's stage as ``conv_head``."""
    table = dict(head)
    _conv_bn(table, "features.0", "stem")
    for n, ours in enumerate(positions, start=1):
        block(table, f"features.{n}", ours)
    last_stage = positions[-1].rpartition(".")[0]
    _conv_bn(table, f"features.{len(positions) + 1}", f"{last_stage}.conv_head")
    return table


def v2_table(
    arch: str, state_dict: Mapping[str, torch.Tensor], expected: Collection[str] | None = None
) -> dict[str, str]:
    def block(table: dict[str, str], theirs: str, ours: str) -> None:
        # With an expansion conv the projection conv and BN sit at 2 and 3, else at 1 and 2.
        expand = f"{theirs}.conv.3.weight" in state_dict
        parts = ["expand", "depthwise"] if expand else ["depthwise"]
        for k, part in enumerate(parts):
            _conv_bn(table, f"{theirs}.conv.{k}", f"{ours}.{part}")
        table[f"{theirs}.conv.{len(parts)}"] = f"{ours}.project.conv"
        table[f"{theirs}.conv.{len(parts) + 1}"] = f"{ours}.project.bn"

    return _table(V2_HEAD, _positions(arch, expected), block)


def v3_table(
    arch: str, state_dict: Mapping[str, torch.Tensor], expected: Collection[str] | None = None
) -> dict[str, str]:
    def block(table: dict[str, str], theirs: str, ours: str) -> None:
        seq = f"{theirs}.block"
        indices = sorted(
            {int(m[1]) for k in state_dict if (m := re.match(rf"{re.escape(seq)}\.(\d+)\.", k))}
        )
        se = [k for k in indices if f"{seq}.{k}.fc1.weight" in state_dict]
        convs = [k for k in indices if k not in se]
        # Three convs: expand, depthwise, project; two: the expansion conv is absent.
        parts = ["expand", "depthwise", "project"][3 - len(convs) :]
        for k, part in zip(convs, parts, strict=False):
            _conv_bn(table, f"{seq}.{k}", f"{ours}.{part}")
        for k in se:
            table[f"{seq}.{k}.fc1"] = f"{ours}.attn.reduce"
            table[f"{seq}.{k}.fc2"] = f"{ours}.attn.expand"

    return _table(V3_HEAD, _positions(arch, expected), block)


def convert_v2(
    arch: str, state_dict: Mapping[str, torch.Tensor], expected: Collection[str] | None = None
) -> StateDict:
    return apply_prefixes(state_dict, v2_table(arch, state_dict, expected))


def convert_v3(
    arch: str, state_dict: Mapping[str, torch.Tensor], expected: Collection[str] | None = None
) -> StateDict:
    return apply_prefixes(state_dict, v3_table(arch, state_dict, expected))


looks_like_v2 = has_keys("features.0.0.weight", "features.1.conv.0.0.weight", "classifier.1.weight")


looks_like_v3 = has_keys(
    "features.0.0.weight", "features.1.block.0.0.weight", "classifier.3.weight"
)


register_layout("torchvision", ["mobilenet_v2"], looks_like_v2, convert_v2, takes_expected=True)
register_layout(
    "torchvision",
    ["mobilenet_v3_large", "mobilenet_v3_small"],
    looks_like_v3,
    convert_v3,
    takes_expected=True,
)

# torchvision 0.29 metadata. V2 = torchvision's new training recipe, evaluated after a 232
# resize (V1: 256) before the 224 crop; V2 is torchvision's DEFAULT where it exists.
_V2_RECIPE = "https://github.com/pytorch/vision/issues/3995#new-recipe-with-reg-tuning"
register_torchvision(
    "mobilenet_v2",
    "tv",
    "mobilenet_v2-b0353104.pth",
    3_504_872,
    71.878,
    90.286,
    default=False,
    recipe="https://github.com/pytorch/vision/tree/main/references/classification#mobilenetv2",
)
register_torchvision(
    "mobilenet_v2",
    "tv2",
    "mobilenet_v2-7ebf99e0.pth",
    3_504_872,
    72.154,
    90.822,
    resize=232,
    recipe=_V2_RECIPE,
)
_V3_RECIPE = (
    "https://github.com/pytorch/vision/tree/main/references/classification#mobilenetv3-large--small"
)
register_torchvision(
    "mobilenet_v3_large",
    "tv",
    "mobilenet_v3_large-8738ca79.pth",
    5_483_032,
    74.042,
    91.340,
    default=False,
    recipe=_V3_RECIPE,
)
register_torchvision(
    "mobilenet_v3_large",
    "tv2",
    "mobilenet_v3_large-5c1a4163.pth",
    5_483_032,
    75.274,
    92.566,
    resize=232,
    recipe=_V2_RECIPE,
)
register_torchvision(
    "mobilenet_v3_small",
    "tv",
    "mobilenet_v3_small-047dcff4.pth",
    2_542_856,
    67.668,
    87.402,
    recipe=_V3_RECIPE,
)
