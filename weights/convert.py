"""Recognise where a state dict comes from and convert it to our key names.

One converter module per foreign format; each is a pure function ``convert(arch, sd)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from . import efficientnet_lite_format, torchvision_format
from .renames import StateDict, drop_num_batches_tracked

NETS = "nets"
TORCHVISION = "torchvision"
TF_EFFICIENTNET_LITE = "tf_efficientnet_lite"
UNKNOWN = "unknown"

_OUR_ROOTS = ("stem.", "stages.", "head.")

# Stored in every converted file; bump it whenever a rename table changes, so that files
# converted into the cache by an older version are converted again instead of failing.
CONVERTER_VERSION = "2"


def detect_source(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """Name the layout of a state dict from its metadata and key names."""
    if metadata.get("format") == NETS or all(k.startswith(_OUR_ROOTS) for k in state_dict):
        return NETS
    if efficientnet_lite_format.looks_like(state_dict):
        return TF_EFFICIENTNET_LITE
    if torchvision_format.looks_like(state_dict):
        return TORCHVISION
    return UNKNOWN


def to_ours(arch: str, source: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Convert ``state_dict`` in layout ``source`` to our names for ``arch``."""
    if source == TORCHVISION:
        return torchvision_format.convert(arch, state_dict)
    if source == TF_EFFICIENTNET_LITE:
        return efficientnet_lite_format.convert(arch, state_dict)
    return drop_num_batches_tracked(state_dict)
