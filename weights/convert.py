"""Recognise where a state dict comes from and convert it to our key names.

One package per publisher (``torchvision``, ``timm``, ``keras``, ``tensorflow``), one module
per family in it, each registering a pure ``convert(arch, sd)`` with the layout registry
(``weights.layouts``) and its tags beside it; importing this module registers them all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch

# Importing a publisher's package registers its layouts and its tags. The order is the order
# in which layouts are tried when a file's publisher is detected, and the order in which tags
# are registered: Keras' tags become an arch's default only where no tag before them is.
# isort: off
from . import tensorflow, keras, timm, torchvision  # noqa: F401

# isort: on
from .layouts import layouts, of_source
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
    for layout in layouts():
        if layout.container is not None and metadata.get("format") == layout.container:
            # A container only this source writes (Keras' .h5): the layout tells the model
            # from the keys when converting, and refuses what it cannot convert.
            return layout.source
    for layout in layouts():
        if (arch is None or layout.handles(arch)) and layout.looks_like(state_dict):
            return layout.source
    return UNKNOWN


def to_ours(
    arch: str,
    source: str,
    state_dict: Mapping[str, torch.Tensor],
    expected: Collection[str] | None = None,
) -> StateDict:
    """Convert ``state_dict`` in ``source``'s layout to our names for ``arch``.

    ``expected``: the key names of the model it will load into, where there is one; layouts
    that group blocks as our model does read that grouping from it (``Layout.takes_expected``).

    Without a matching layout the keys are kept, and the strict check reports them, unless
    the source refuses the file with its own error (a Keras file for an arch no Keras file
    fits).

    BatchNorm's step counters are dropped here, once, before any layout sees the keys.
    """
    state_dict = drop_num_batches_tracked(state_dict)
    for layout in layouts():
        if layout.source == source and layout.handles(arch):
            if layout.takes_expected:
                return layout.convert(arch, state_dict, expected=expected)
            return layout.convert(arch, state_dict)
    for layout in of_source(source):
        if layout.reject is not None:
            layout.reject(arch, state_dict)
    return state_dict


def describe(source: str, state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, str], str]:
    """What a file of ``source`` says about itself: metadata to merge into the file's, and a
    remark for messages about it ("" for none), from its layouts' ``describe`` hooks."""
    meta: dict[str, str] = {}
    remarks = []
    for layout in of_source(source):
        if layout.describe is not None:
            more, remark = layout.describe(state_dict)
            meta.update(more)
            remarks += [remark] if remark else []
    return meta, "; ".join(remarks)
