"""timm's ``legacy_xception`` checkpoint (Keras' ImageNet Xception, ported by Cadene) -> ours.

timm names the network flat: ``conv1``/``bn1``, ``conv2``/``bn2`` (the stem), ``block1`` ..
``block12``, ``conv3``/``bn3``, ``conv4``/``bn4`` (the exit flow's separable convs) and ``fc``.
Inside a block, ``rep`` is one Sequential of (ReLU, SeparableConv2d, BatchNorm) triples whose
first ReLU is left out in block 1, so the index of the k-th separable conv depends on the
block; its depthwise conv is ``conv1`` and its pointwise conv ``pointwise``. The strided
blocks' shortcut is ``skip`` (1x1 conv) with ``skipbn``.

Ours (``nets.models.xception``) groups the blocks by resolution: block 1 -> ``stages.0.0``,
block 2 -> ``stages.1.0``, blocks 3-11 -> ``stages.2.0`` .. ``stages.2.8``, block 12 ->
``stages.3.0``, and the exit convs -> ``stages.3.conv3``/``stages.3.conv4``. Only names change;
no tensor is
reshaped.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..layouts import has_keys, register_layout
from ..registry import Preprocessing, WeightTag, register
from ..renames import StateDict, apply_prefixes

# timm block number: (our module, separable convs in it, does ``rep`` start with a ReLU?)
BLOCKS: dict[int, tuple[str, int, bool]] = {
    1: ("stages.0.0", 2, False),
    2: ("stages.1.0", 2, True),
    3: ("stages.2.0", 2, True),
    **{n: (f"stages.2.{n - 3}", 3, True) for n in range(4, 12)},
    12: ("stages.3.0", 2, True),
}

FIXED = {
    "conv1": "stem.conv1.conv",
    "bn1": "stem.conv1.bn",
    "conv2": "stem.conv2.conv",
    "bn2": "stem.conv2.bn",
    "conv3.conv1": "stages.3.conv3.conv.depthwise",
    "conv3.pointwise": "stages.3.conv3.conv.pointwise",
    "bn3": "stages.3.conv3.bn",
    "conv4.conv1": "stages.3.conv4.conv.depthwise",
    "conv4.pointwise": "stages.3.conv4.conv.pointwise",
    "bn4": "stages.3.conv4.bn",
    "fc": "head.fc",
}


def table() -> dict[str, str]:
    """The module-prefix rename table for ``legacy_xception``."""
    out = dict(FIXED)
    for n, (ours, reps, starts_with_relu) in BLOCKS.items():
        out[f"block{n}.skip"] = f"{ours}.skip.conv"
        out[f"block{n}.skipbn"] = f"{ours}.skip.bn"
        for k in range(reps):
            # ``rep`` holds (ReLU, SepConv, BN) per separable conv; without the leading
            # ReLU every index moves down by one.
            sep = 3 * k + (1 if starts_with_relu else 0)
            out[f"block{n}.rep.{sep}.conv1"] = f"{ours}.convs.{k}.conv.depthwise"
            out[f"block{n}.rep.{sep}.pointwise"] = f"{ours}.convs.{k}.conv.pointwise"
            out[f"block{n}.rep.{sep + 1}"] = f"{ours}.convs.{k}.bn"
    return out


TABLE = table()


def convert(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_prefixes(state_dict, TABLE)


looks_like = has_keys("block1.rep.0.conv1.weight", "block12.skip.weight", "conv4.pointwise.weight")


register_layout("timm", ["legacy_xception"], looks_like, convert)

# timm 1.0's pretrained_cfg: 299 crop with crop_pct 0.8975, so the resize is
# round(299 / 0.8975) = 333 (the port's own note says "resize 333, centre crop 299");
# bicubic; inputs in [-1, 1] (mean 0.5, std 0.5), as Keras' "tf" preprocessing.
_FILE = "xception-43020ad28.pth"
register(
    WeightTag(
        name="legacy_xception.tf_in1k",
        arch="legacy_xception",
        source="timm",
        file_name=_FILE,
        sha256="",  # timm publishes no digest; the store records it on first download
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/"
        + _FILE,
        preprocessing=Preprocessing(
            input_size=299,
            resize_size=333,
            interpolation="bicubic",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        top1=79.040,
        top5=94.382,
        num_params=22_855_952,
        notes=(
            "Keras' ImageNet Xception (Chollet) ported to PyTorch by Cadene, as timm serves it; "
            "accuracy from timm's results-imagenet.csv (299, crop 0.8975, bicubic)"
        ),
    ),
    default=True,
)
