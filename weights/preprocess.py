"""The torchvision transform that matches a checkpoint's evaluation preprocessing."""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from .registry import Preprocessing, get_tag

_INTERPOLATION = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


def transforms(tag_or_preprocessing: str | Preprocessing) -> v2.Compose:
    """Resize the short side, centre-crop, scale to [0, 1] and normalise, as the tag was
    evaluated. Takes a PIL image or a uint8 tensor; returns a float32 CxHxW tensor."""
    p = (
        get_tag(tag_or_preprocessing).preprocessing
        if isinstance(tag_or_preprocessing, str)
        else tag_or_preprocessing
    )
    if p.interpolation not in _INTERPOLATION:
        raise ValueError(
            f"interpolation {p.interpolation!r} is not one of {', '.join(_INTERPOLATION)}"
        )
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(p.resize_size, interpolation=_INTERPOLATION[p.interpolation], antialias=True),
            v2.CenterCrop(p.input_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(p.mean), std=list(p.std)),
        ]
    )
