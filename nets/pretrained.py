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
    # What timm's pretrained_cfg also tells (create_model fills them in from the model).
    in_chans: int = 3
    num_classes: int = 1000
    first_conv: str = "stem.conv"
    classifier: str = "head.fc"
    pool_size: tuple[int, int] | None = None  # the last feature map at ``input_size``

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

    # -- timm's view: timm.data.resolve_data_config(model=m) reads these keys -------------
    def timm_view(self) -> dict[str, object]:
        """The preprocessing as timm's pretrained_cfg spells it: ``input_size`` as (C, H, W)
        and ``crop_pct``, so that ``timm.data.create_transform(**resolve_data_config(
        model=m))`` resizes and crops exactly as ``weights.transforms(m)`` does."""
        p = self.preprocessing
        mean, std = wts.channel_stats(p, self.in_chans)
        return {
            "input_size": (self.in_chans, p.input_size, p.input_size),
            "interpolation": p.interpolation,
            "mean": tuple(mean),
            "std": tuple(std),
            # timm resizes to floor(size / crop_pct): half a pixel above our resize size
            # keeps that floor on it whatever the float rounding.
            "crop_pct": p.input_size / (p.resize_size + 0.5),
            "crop_mode": "center",
        }

    # -- read-only mapping, for cfg["key"] and cfg.get("key") -------------------------------
    # Our fields and timm's keys; ``cfg["input_size"]`` is timm's (C, H, W) while the
    # attribute ``cfg.input_size`` stays the size the network was designed at.
    def __getitem__(self, key: str) -> object:
        timm = self.timm_view()
        if key in timm:
            return timm[key]
        if key in self._keys():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        ours = tuple(f.name for f in fields(cls))
        return (*ours, "interpolation", "mean", "std", "crop_pct", "crop_mode")
