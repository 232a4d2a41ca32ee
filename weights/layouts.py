"""The registry of checkpoint layouts: which foreign key layouts convert to which archs.

A layout is one publisher's naming for one family (torchvision's ResNet, timm's
Inception-v4, the TF port of EfficientNet-Lite, ...): a predicate that recognises its keys
and a pure function that renames them onto our anatomy. The format modules register
their layouts when ``weights.convert`` imports them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

from .types import StateDict


@dataclass(frozen=True)
class Layout:
    source: str  # the publisher: "torchvision", "timm", "tf_efficientnet_lite", ...
    archs: tuple[str, ...]  # arch names (shell patterns allowed) this layout converts to
    looks_like: Callable[[Mapping[str, torch.Tensor]], bool]
    convert: Callable[[str, Mapping[str, torch.Tensor]], StateDict]
    # The hooks below let ``weights.convert`` and ``weights.loading`` treat every format
    # alike; a layout that needs none leaves them unset.
    # A file container that only this source writes (``io.KERAS_H5``): a file in it is this
    # source's, whatever its keys, and the layout tells the model from the keys itself.
    container: str | None = None
    # Raises the format's own error for a file of this source that converts to no layout of
    # it for ``arch`` (a Keras file of another model); otherwise the strict check reports keys.
    reject: Callable[[str, Mapping[str, torch.Tensor]], None] | None = None
    # What a file of this source says about itself: metadata merged into the file's (the
    # model, its preprocessing), and a remark for messages about the file ("" for none).
    describe: Callable[[Mapping[str, torch.Tensor]], tuple[dict[str, str], str]] | None = None
    # ``convert`` also takes ``expected=``: our key names for the arch, in the model's order,
    # where the caller loads into a model (None where it has none), so that the converter can
    # follow our grouping of blocks into stages instead of restating it.
    takes_expected: bool = False

    def handles(self, arch: str) -> bool:
        return any(fnmatch.fnmatchcase(arch, pattern) for pattern in self.archs)


_LAYOUTS: list[Layout] = []


def register_layout(
    source: str,
    archs: Iterable[str],
    looks_like: Callable[[Mapping[str, torch.Tensor]], bool],
    convert: Callable[[str, Mapping[str, torch.Tensor]], StateDict],
    **hooks,
) -> Layout:
    """Register a layout; ``hooks`` are ``Layout``'s optional fields (container, reject,
    describe, takes_expected)."""
    layout = Layout(source, tuple(archs), looks_like, convert, **hooks)
    for other in _LAYOUTS:
        overlap = [a for a in layout.archs if other.source == source and other.handles(a)]
        if overlap:
            raise ValueError(f"a {source} layout for {overlap[0]!r} is registered twice")
    _LAYOUTS.append(layout)
    return layout


def layouts() -> list[Layout]:
    return list(_LAYOUTS)


def of_source(source: str) -> list[Layout]:
    """The layouts one source registered."""
    return [layout for layout in _LAYOUTS if layout.source == source]


def has_keys(*keys: str) -> Callable[[Mapping], bool]:
    """A layout's test: the checkpoint holds every one of ``keys``."""
    return lambda state_dict: all(k in state_dict for k in keys)


def block_prefixes(expected: Iterable[str], leaf: str) -> list[str]:
    """Our prefixes of the blocks that hold ``leaf``, in the model's order: with
    ``leaf="depthwise.conv.weight"`` the ``stages.<s>.<j>`` of every inverted-residual block."""
    suffix = "." + leaf
    return [k[: -len(suffix)] for k in expected if k.endswith(suffix)]
