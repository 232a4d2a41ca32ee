"""How a torchvision weights file becomes a tag: ``<arch>.<origin>_in1k``, the file's URL under
torchvision's download folder and the sha256 prefix its name carries."""

from __future__ import annotations

from ..registry import Preprocessing, WeightTag, register

TV_BASE_URL = "https://download.pytorch.org/models/"


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
