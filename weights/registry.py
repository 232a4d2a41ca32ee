"""The registry of pretrained weights: one tag per checkpoint we know how to fetch.

A tag is ``<arch>.<origin>_<dataset>`` as in timm (``resnet50.tv_in1k`` for torchvision's
V1 weights, ``resnet50.tv2_in1k`` for its V2 recipe). Each carries where the file comes
from, its sha256 (the prefix published in the file name, or the whole digest where we have
the file), the preprocessing it was trained with and the reference figures from
torchvision's metadata.

This module holds the registry, not the tags: each is registered beside its publisher's
converter (``weights/README.md``).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field

from .errors import UnknownTagError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How images were prepared for a checkpoint: resize the short side, centre-crop, normalise."""

    input_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def as_metadata(self) -> dict[str, str]:
        return {
            "input_size": str(self.input_size),
            "resize_size": str(self.resize_size),
            "interpolation": self.interpolation,
            "mean": ",".join(repr(v) for v in self.mean),
            "std": ",".join(repr(v) for v in self.std),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> Preprocessing | None:
        try:
            return cls(
                input_size=int(meta["input_size"]),
                resize_size=int(meta["resize_size"]),
                interpolation=meta["interpolation"],
                mean=tuple(float(v) for v in meta["mean"].split(",")),
                std=tuple(float(v) for v in meta["std"].split(",")),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class WeightTag:
    name: str
    arch: str
    source: str  # checkpoint format, the key of the converter in weights.convert
    file_name: str
    # The full digest, or the prefix the publisher put in the file name; "" where the
    # publisher gives none (Hugging Face files of timm): the digest seen on first download
    # is then recorded in the converted file's metadata.
    sha256: str
    url: str | None
    preprocessing: Preprocessing
    top1: float
    top5: float | None
    num_params: int
    categories: str = "imagenet_classes.txt"
    # A pip package that ships the file, and the file's path inside that package.
    package: tuple[str, str] | None = None
    notes: str = ""
    recipe: str = field(default="", compare=False)
    # keras.applications publishes MD5 digests (its file_hash), not SHA-256: kept and checked.
    md5: str = ""


_TAGS: dict[str, WeightTag] = {}
_DEFAULTS: dict[str, str] = {}


def register(tag: WeightTag, *, default: bool = False) -> WeightTag:
    if tag.name in _TAGS:
        raise ValueError(f"weights tag {tag.name!r} is registered twice")
    for other in _TAGS.values():
        if other.file_name == tag.file_name and other.url != tag.url:
            # The downloads cache keeps one file per name (Hugging Face names every file
            # model.safetensors): two tags must not share one.
            raise ValueError(
                f"weights tags {other.name!r} and {tag.name!r} share the file name "
                f"{tag.file_name!r}"
            )
    if not tag.name.startswith(tag.arch + "."):
        raise ValueError(f"weights tag {tag.name!r} must start with its arch {tag.arch!r}")
    _TAGS[tag.name] = tag
    if default:
        _DEFAULTS[tag.arch] = tag.name
    return tag


def list_tags(pattern: str = "*") -> list[str]:
    """The registered tags matching a shell-style ``pattern`` (``"resnet*"``), sorted. A
    name without a wildcard is an architecture (``list_tags("resnet50")``: its tags) or a
    tag (itself)."""
    if not any(c in pattern for c in "*?["):
        return [pattern] if pattern in _TAGS else tags_for(pattern)
    return sorted(n for n in _TAGS if fnmatch.fnmatch(n, pattern))


def get_tag(name: str) -> WeightTag:
    try:
        return _TAGS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_TAGS), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see python -m weights list"
        raise UnknownTagError(f"unknown weights tag {name!r}{hint}") from None


def default_tag(arch: str) -> str | None:
    """The tag that ``weights="imagenet"`` means for ``arch`` (None if there is none)."""
    return _DEFAULTS.get(arch)


def tags_for(arch: str) -> list[str]:
    return sorted(n for n, t in _TAGS.items() if t.arch == arch)
