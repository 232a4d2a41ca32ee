"""Recognise where a state dict comes from and convert it to our key names.

One module per foreign format and family, each registering a pure ``convert(arch, sd)``
with the layout registry (``weights.layouts``); importing this module registers them all.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# Importing a format module registers its layouts.
from . import (  # noqa: F401
    efficientnet_lite_format,
    keras_format,
    timm_inception,
    timm_mobilenet,
    timm_seresnet,
    timm_xception,
    torchvision_densenet,
    torchvision_efficientnet,
    torchvision_format,
    torchvision_inception,
    torchvision_mobilenet,
)
from .io import KERAS_H5
from .layouts import layouts
from .renames import StateDict, drop_num_batches_tracked

NETS = "nets"
UNKNOWN = "unknown"

_OUR_ROOTS = ("stem.", "stages.", "head.", "aux.")

# Stored in every converted file; bump it whenever a rename table changes, so that files
# converted into the cache by an older version are converted again instead of failing.
CONVERTER_VERSION = "2"


def detect_source(
    state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str], arch: str | None = None
) -> str:
    """Name the publisher of a state dict's layout, from its metadata and key names.

    With ``arch``, only layouts that convert to that arch are tried, so that two publishers
    who use similar names for different families (``features.0...``) are told apart.
    """
    if metadata.get("format") == NETS or all(k.startswith(_OUR_ROOTS) for k in state_dict):
        return NETS
    if metadata.get("format") == KERAS_H5:
        # A Keras .h5 file: its model is recognised from the layer names when converting.
        return keras_format.KERAS
    for layout in layouts():
        if (arch is None or layout.handles(arch)) and layout.looks_like(state_dict):
            return layout.source
    return UNKNOWN


def to_ours(arch: str, source: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Convert ``state_dict`` in ``source``'s layout to our names for ``arch``.

    Without a matching layout the keys are kept, and the strict check reports them.
    """
    for layout in layouts():
        if layout.source == source and layout.handles(arch):
            return layout.convert(arch, state_dict)
    if source == keras_format.KERAS:
        keras_format.reject(arch, state_dict)  # a Keras file for an arch no Keras file fits
    return drop_num_batches_tracked(state_dict)
