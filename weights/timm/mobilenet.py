"""timm's MobileNet v1 checkpoints (``mobilenetv1_100``) -> our ``mobilenet_v1_*`` keys, and
the tag of timm's ImageNet weights.

timm builds MobileNet v1 with its EfficientNet class: ``conv_stem`` + ``bn1``, then
``blocks.{stage}.{block}`` of ``DepthwiseSeparableConv`` (``conv_dw``/``bn1``,
``conv_pw``/``bn2``), no head conv, classifier ``classifier``. Its ``blocks.i`` are already
grouped by resolution (strides 2, 4, 8, 16, 32), so they are our ``stages.i`` one for one.
No tensor is reshaped.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..layouts import register_layout
from ..registry import Preprocessing, WeightTag, register
from ..renames import StateDict, apply_rules

MOBILENET_V1_RULES = [
    (r"conv_stem\.", "stem.conv."),
    (r"bn1\.", "stem.bn."),
    (r"blocks\.(\d+)\.(\d+)\.conv_dw\.", r"stages.\1.\2.depthwise.conv."),
    (r"blocks\.(\d+)\.(\d+)\.bn1\.", r"stages.\1.\2.depthwise.bn."),
    (r"blocks\.(\d+)\.(\d+)\.conv_pw\.", r"stages.\1.\2.pointwise.conv."),
    (r"blocks\.(\d+)\.(\d+)\.bn2\.", r"stages.\1.\2.pointwise.bn."),
    (r"classifier\.", "head.fc."),
]


def convert_mobilenet_v1(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, MOBILENET_V1_RULES)


def looks_like_mobilenet_v1(state_dict: Mapping[str, torch.Tensor]) -> bool:
    # timm's MobileNet v2/v3 and EfficientNets share the names, but only v1 has a second
    # depthwise-separable block (theirs is an inverted residual with ``conv_pwl``) and no
    # ``conv_head``.
    return (
        "conv_stem.weight" in state_dict
        and "blocks.1.0.conv_dw.weight" in state_dict
        and "blocks.1.0.conv_pwl.weight" not in state_dict
        and "conv_head.weight" not in state_dict
    )


register_layout("timm", ["mobilenet_v1_*"], looks_like_mobilenet_v1, convert_mobilenet_v1)

# timm's default (and only) ImageNet weights for mobilenetv1_100 (pretrained_cfg of timm 1.0):
# trained at 224 with the "ra4" recipe for 3600 epochs; evaluated at 224 with crop_pct 0.875,
# i.e. resize_size = round(224 / 0.875) = 256, bicubic, inputs normalised to [-1, 1].
_HF_ID = "timm/mobilenetv1_100.ra4_e3600_r224_in1k"
_TAG = "mobilenet_v1_100.ra4_e3600_r224_in1k"
register(
    WeightTag(
        name=_TAG,
        arch="mobilenet_v1_100",
        source="timm",
        # The Hub names every timm file model.safetensors; the store keeps downloads by file
        # name, so this one is saved under the tag's name to stay clear of other timm tags.
        file_name=f"{_TAG}.safetensors",
        sha256="",
        url=f"https://huggingface.co/{_HF_ID}/resolve/main/model.safetensors",
        preprocessing=Preprocessing(
            input_size=224,
            resize_size=256,
            interpolation="bicubic",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        top1=75.382,
        top5=92.312,
        num_params=4_231_976,
        notes=(
            "timm's mobilenetv1_100.ra4_e3600_r224_in1k (Hugging Face, Apache-2.0); top-1/top-5 "
            "from timm's results table at 224 (76.094 / 93.004 at its 256 test size)"
        ),
        recipe="https://huggingface.co/blog/rwightman/mobilenet-baselines",
    ),
    default=True,
)
