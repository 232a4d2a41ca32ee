"""``PretrainedCfg``: what a model built by ``create_model`` knows about its weights and
its input, as one typed, frozen record.

Its ``preprocessing`` is always set, so that ``weights.transforms(model)`` works for every
model, with or without weights; ``preprocessing_from`` says where it came from: the
weights tag, the checkpoint file's metadata, the family's default tag (no weights
loaded, or a file that carries none), or the generic ImageNet default for a network that
has no registered weights at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace

import weights as wts

__all__ = ["PretrainedCfg", "default_preprocessing"]


def default_preprocessing(input_size: int) -> wts.Preprocessing:
    """For a network without registered weights: ImageNet statistics, the short side
    resized to ``input_size / 0.875``, a centre crop (torchvision's and timm's convention)."""
    return wts.Preprocessing(input_size=input_size, resize_size=round(input_size / 0.875))


@dataclass(frozen=True)
class PretrainedCfg(Mapping):
    """A model's weights and input facts. Read as attributes (``cfg.preprocessing``) or,
    as timm users do, by key (``cfg["tag"]``, ``cfg.get("origin")``); never changed in
    place: ``cfg.replace(...)`` makes a new one."""

    arch: str
    input_size: int  # the size the network was designed and trained at
    preprocessing: wts.Preprocessing
    preprocessing_from: str  # where ``preprocessing`` came from, in words
    tag: str | None = None  # the weights tag loaded, if any
    origin: str | None = None  # the file or tag the weights came from
    source: str | None = None  # the publisher's format (torchvision, timm, keras...)
    class_names: tuple[str, ...] | None = None  # a trainer's checkpoint's classes

    @classmethod
    def unweighted(cls, arch: str, input_size: int) -> PretrainedCfg:
        """Before any weights are loaded: the family's default tag's preprocessing (what
        its published weights expect), else the generic default."""
        tag = wts.default_tag(arch)
        if tag is not None:
            pre = wts.get_tag(tag).preprocessing
            return cls(arch, input_size, pre, f"the default tag {tag} (no weights loaded)")
        pre = default_preprocessing(input_size)
        return cls(arch, input_size, pre, "the generic ImageNet default (no weights registered)")

    def replace(self, **changes: object) -> PretrainedCfg:
        return replace(self, **changes)

    # -- read-only mapping, for cfg["key"] and cfg.get("key") -------------------------------
    def __getitem__(self, key: str) -> object:
        if key in self._keys():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
