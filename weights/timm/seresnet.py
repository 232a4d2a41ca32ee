"""timm's SE-ResNet checkpoints -> our key names.

Two layouts, both onto ``nets.models.seresnet`` (a ResNet whose bottlenecks carry the SE module as
``attn``, with ``reduce``/``expand`` 1x1 convs):

- ``legacy_seresnet*`` (the SENet authors' Caffe models ported by Cadene, kept in timm's
  ``senet.py``): stem ``layer0.conv1``/``layer0.bn1``, SE ``se_module.fc1``/``fc2``,
  classifier ``last_linear``;
- ``seresnet*`` (timm's ResNet with ``attn_layer="se"``): torchvision's names plus SE
  ``se.fc1``/``se.fc2``.

Everything else (``layerN.M.convK``/``bnK``, ``downsample.0``/``.1``) has torchvision's names,
so both tables end with torchvision's ResNet rules. Only names change; no tensor is reshaped.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..layouts import has_keys, register_layout
from ..registry import Preprocessing, WeightTag, register
from ..renames import StateDict, apply_rules
from ..torchvision.resnet import RESNET_RULES, stage_block

LEGACY_RULES = [
    (r"layer0\.conv1\.", "stem.conv1.conv."),
    (r"layer0\.bn1\.", "stem.conv1.bn."),
    (r"layer(\d)\.(\d+)\.se_module\.fc1\.", lambda m: f"{stage_block(m)}.attn.reduce."),
    (r"layer(\d)\.(\d+)\.se_module\.fc2\.", lambda m: f"{stage_block(m)}.attn.expand."),
    (r"last_linear\.", "head.fc."),
    *RESNET_RULES,
]

TIMM_RULES = [
    (r"layer(\d)\.(\d+)\.se\.fc1\.", lambda m: f"{stage_block(m)}.attn.reduce."),
    (r"layer(\d)\.(\d+)\.se\.fc2\.", lambda m: f"{stage_block(m)}.attn.expand."),
    *RESNET_RULES,
]


def convert_legacy(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, LEGACY_RULES)


def convert_timm(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_rules(state_dict, TIMM_RULES)


looks_like_legacy = has_keys(
    "layer0.conv1.weight", "layer1.0.se_module.fc1.weight", "last_linear.weight"
)


looks_like_timm = has_keys("conv1.weight", "layer1.0.se.fc1.weight", "fc.weight")


LEGACY_ARCHS = ["legacy_seresnet50", "legacy_seresnet101", "legacy_seresnet152"]
TIMM_ARCHS = ["seresnet50", "seresnet101", "seresnet152"]

register_layout("timm", LEGACY_ARCHS, looks_like_legacy, convert_legacy)
register_layout("timm", TIMM_ARCHS, looks_like_timm, convert_timm)


# timm 1.0's pretrained_cfg for these tags: 224 crop with crop_pct 0.875, so the resize is
# round(224 / 0.875) = 256; ImageNet mean/std. Top-1/top-5: timm's results-imagenet.csv.
_CADENE = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/"
for _depth, _file, _params, _top1, _top5 in (
    (50, "se_resnet50-ce0d4300.pth", 28_088_024, 77.644, 93.758),
    (101, "se_resnet101-7e38fcc6.pth", 49_326_872, 78.386, 94.262),
    (152, "se_resnet152-d17c99b7.pth", 66_821_848, 78.660, 94.370),
):
    register(
        WeightTag(
            name=f"legacy_seresnet{_depth}.in1k",
            arch=f"legacy_seresnet{_depth}",
            source="timm",
            file_name=_file,
            # timm publishes no digest for these GitHub-release files; the store records
            # the one it sees on the first download.
            sha256="",
            url=_CADENE + _file,
            preprocessing=Preprocessing(input_size=224, resize_size=256, interpolation="bilinear"),
            top1=_top1,
            top5=_top5,
            num_params=_params,
            notes=(
                "SENet authors' Caffe weights (Hu et al.) ported by Cadene, as timm serves "
                "them; accuracy from timm's results-imagenet.csv (224, crop 0.875, bilinear)"
            ),
        ),
        default=True,
    )

# timm's pretrained_cfg ``url`` (a GitHub release; timm also serves the weights from the
# Hugging Face Hub as ``model.safetensors``): a file name of its own, which cannot meet
# another tag's ``model.safetensors`` in the downloads cache.
_RA2_FILE = "seresnet50_ra_224-8efdb4bb.pth"
register(
    WeightTag(
        name="seresnet50.ra2_in1k",
        arch="seresnet50",
        source="timm",
        file_name=_RA2_FILE,
        sha256="",  # timm publishes no full digest; the store records it on first download
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
        + _RA2_FILE,
        preprocessing=Preprocessing(input_size=224, resize_size=256, interpolation="bicubic"),
        top1=81.284,
        top5=95.652,
        num_params=28_088_024,
        notes=(
            "timm's RandAugment (ra2) recipe, also on the Hugging Face Hub as "
            "timm/seresnet50.ra2_in1k. Accuracy from timm's results-imagenet.csv, measured "
            "at timm's test size (288, crop 0.95, bicubic); the preprocessing here is the "
            "cfg's 224 training size (crop_pct 0.875 -> resize 256)"
        ),
        recipe="https://github.com/huggingface/pytorch-image-models",
    ),
    default=True,
)
