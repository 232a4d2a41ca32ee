"""timm's Inception-v4 and Inception-ResNet-v2 checkpoints -> our key names.

Both are timm's ports (via Cadene's pretrained-models) of Google's TF-slim checkpoints,
published on the Hugging Face Hub as ``timm/inception_v4.tf_in1k`` and
``timm/inception_resnet_v2.tf_in1k``. Inside the blocks our children carry timm's names
(``branch0``..``branch3``, ``branch1_1a``, ..., each conv a ``conv``/``bn`` pair), so the
tables only say where each of timm's top-level modules lands in stem/stages/head; the one
renamed child is the residual blocks' 1x1 projection, timm's ``conv2d``, our ``project``.
No tensor is reshaped: every layer keeps its shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ..layouts import has_keys, register_layout
from ..registry import Preprocessing, WeightTag, register
from ..renames import StateDict, apply_rules

# Inception-v4: timm numbers every layer of the feature extractor in one Sequential,
# ``features.0`` .. ``features.21``: three stem convs, Mixed_3a/4a/5a, 4 Inception-A,
# Reduction-A, 7 Inception-B, Reduction-B, 3 Inception-C. The classifier is ``last_linear``.
INCEPTION_V4_FEATURES = {
    0: "stem",
    1: "stages.0.conv2a",
    2: "stages.0.conv2b",
    3: "stages.1.mixed_3a",
    4: "stages.1.mixed_4a",
    5: "stages.2.mixed_5a",
    **{6 + i: f"stages.2.{i}" for i in range(4)},  # Inception-A
    10: "stages.3.mixed_6a",
    **{11 + i: f"stages.3.{i}" for i in range(7)},  # Inception-B
    18: "stages.4.mixed_7a",
    **{19 + i: f"stages.4.{i}" for i in range(3)},  # Inception-C
}


def _features(m) -> str:
    index = int(m[1])
    # An index past the table (another network's features) is kept, for the strict check.
    return INCEPTION_V4_FEATURES.get(index, f"features.{index}") + "."


INCEPTION_V4_RULES = [
    (r"features\.(\d+)\.", _features),
    (r"last_linear\.", "head.fc."),
]

# Inception-ResNet-v2: timm keeps TF-slim's module names. Its max-pools have no weights.
INCEPTION_RESNET_V2_RULES = [
    (r"conv2d_1a\.", "stem."),
    (r"conv2d_2a\.", "stages.0.conv2a."),
    (r"conv2d_2b\.", "stages.0.conv2b."),
    (r"conv2d_3b\.", "stages.1.conv3b."),
    (r"conv2d_4a\.", "stages.1.conv4a."),
    (r"mixed_5b\.", "stages.2.mixed_5b."),
    (r"repeat\.(\d+)\.", r"stages.2.\1."),  # 10 x Block35 (Inception-ResNet-A)
    (r"mixed_6a\.", "stages.3.mixed_6a."),
    (r"repeat_1\.(\d+)\.", r"stages.3.\1."),  # 20 x Block17 (Inception-ResNet-B)
    (r"mixed_7a\.", "stages.4.mixed_7a."),
    (r"repeat_2\.(\d+)\.", r"stages.4.\1."),  # 9 x Block8 (Inception-ResNet-C), scale 0.2
    # The tenth Block8 (unscaled, no ReLU) follows the nine repeats in our stage 4.
    (r"block8\.", "stages.4.9."),
    (r"conv2d_7b\.", "stages.4.conv7b."),
    (r"classif\.", "head.fc."),
]
# Second pass, on our names: the residual blocks' 1x1 projection.
PROJECTION_RULES = [
    (r"(stages\.[234]\.\d+)\.conv2d\.", r"\1.project."),
]


def convert_inception_v4(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, INCEPTION_V4_RULES)


def convert_inception_resnet_v2(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    renamed = apply_rules(state_dict, INCEPTION_RESNET_V2_RULES)
    return apply_rules(renamed, PROJECTION_RULES)


def looks_like_inception_v4(state_dict: Mapping[str, torch.Tensor]) -> bool:
    # ``features.N.conv``/``.bn`` pairs with Inception-C's split-branch names: no other
    # ``features.*`` layout (torchvision's VGG, AlexNet, MobileNet, DenseNet) has both.
    return "features.0.conv.weight" in state_dict and any(
        k.startswith("features.") and ".branch1_1a.conv." in k for k in state_dict
    )


looks_like_inception_resnet_v2 = has_keys(
    "conv2d_1a.conv.weight", "mixed_5b.branch0.conv.weight", "block8.conv2d.weight"
)


register_layout("timm", ["inception_v4"], looks_like_inception_v4, convert_inception_v4)
register_layout(
    "timm", ["inception_resnet_v2"], looks_like_inception_resnet_v2, convert_inception_resnet_v2
)


# -- tags ---------------------------------------------------------------------------------
# From timm 1.0's pretrained_cfg: 299 input, bicubic, mean = std = 0.5 (inputs in [-1, 1],
# TF's Inception preprocessing). timm resizes the short side to floor(299 / crop_pct) before
# the centre crop: 341 for crop_pct 0.875, 333 for 0.8975.
INCEPTION_PREPROCESSING = dict(
    input_size=299, interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
)
HF_URL = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
TIMM_RESULTS = (
    "top-1/top-5 from timm's results-imagenet.csv (ImageNet-1k val, timm's eval transform)"
)


def _timm_tag(name: str, crop_pct: float, top1: float, top5: float, params: int, notes: str):
    arch = name.split(".")[0]
    return WeightTag(
        name=name,
        arch=arch,
        source="timm",
        # Every timm repository names its file model.safetensors; the name here is the tag's,
        # so that two timm downloads cannot overwrite each other in the cache.
        file_name=f"{name}.safetensors",
        sha256="",  # the Hub publishes no digest; the store records the one it sees
        url=HF_URL.format(name),
        preprocessing=Preprocessing(
            resize_size=math.floor(299 / crop_pct), **INCEPTION_PREPROCESSING
        ),
        top1=top1,
        top5=top5,
        num_params=params,
        notes=notes,
    )


register(
    _timm_tag(
        "inception_v4.tf_in1k",
        0.875,
        80.156,
        94.968,
        42_679_816,
        f"TF-slim's inception_v4_2016_09_09 checkpoint as ported by timm; {TIMM_RESULTS}; "
        "the paper reports 80.0 / 95.0 (single crop)",
    ),
    default=True,
)
register(
    _timm_tag(
        "inception_resnet_v2.tf_in1k",
        0.8975,
        80.462,
        95.308,
        55_843_464,
        f"TF-slim's inception_resnet_v2_2016_08_30 checkpoint as ported by timm; {TIMM_RESULTS}; "
        "the paper reports 80.1 / 95.1 (single crop), Keras' copy of the weights 80.3 / 95.3",
    ),
    default=True,
)
register(
    _timm_tag(
        "inception_resnet_v2.tf_ens_adv_in1k",
        0.8975,
        79.978,
        94.946,
        55_843_464,
        "TF's ens_adv_inception_resnet_v2_2017_08_18 (ensemble adversarial training, "
        f"Tramer et al., 2018, arXiv:1705.07204) as ported by timm; {TIMM_RESULTS}",
    ),
)
