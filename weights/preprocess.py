"""The torchvision transform that matches a checkpoint's evaluation preprocessing."""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from .registry import Preprocessing, get_tag

INTERPOLATION = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


def channel_stats(p: Preprocessing, in_chans: int) -> tuple[list[float], list[float]]:
    """``p``'s mean and std for ``in_chans`` input channels: one (grey) takes the average
    of the RGB statistics; more than three cycle them."""
    mean, std = list(p.mean), list(p.std)
    if in_chans == len(mean):
        return mean, std
    if in_chans == 1:
        return [sum(mean) / len(mean)], [sum(std) / len(std)]
    return [mean[i % 3] for i in range(in_chans)], [std[i % 3] for i in range(in_chans)]


def transforms(
    model_or_tag: str | Preprocessing | object, in_chans: int | None = None
) -> v2.Compose:
    """Resize the short side, centre-crop, scale to [0, 1] and normalise, as the weights of
    ``model_or_tag`` were evaluated: a model built by ``nets.create_model`` (its
    ``pretrained_cfg.preprocessing``, always set, with or without weights), a weights tag,
    or a ``Preprocessing``. ``in_chans`` (default: the model's, else 3): a one-channel
    network gets grey images and the averaged statistics. Takes a PIL image or a uint8
    tensor; returns a float32 CxHxW tensor."""
    if isinstance(model_or_tag, str):
        p = get_tag(model_or_tag).preprocessing
    elif isinstance(model_or_tag, Preprocessing):
        p = model_or_tag
    else:  # duck-typed: weights never imports nets
        cfg = getattr(model_or_tag, "pretrained_cfg", None)
        p = getattr(cfg, "preprocessing", None)
        if p is None:
            raise TypeError(
                "transforms() takes a model built by nets.create_model, a weights tag or a "
                f"Preprocessing, got {type(model_or_tag).__name__}"
            )
        in_chans = in_chans or getattr(model_or_tag, "in_chans", None)
    in_chans = in_chans or 3
    if p.interpolation not in INTERPOLATION:
        raise ValueError(
            f"interpolation {p.interpolation!r} is not one of {', '.join(INTERPOLATION)}"
        )
    mean, std = channel_stats(p, in_chans)
    grey = [v2.Grayscale(1)] if in_chans == 1 else []
    return v2.Compose(
        [
            v2.ToImage(),
            *grey,
            v2.Resize(p.resize_size, interpolation=INTERPOLATION[p.interpolation], antialias=True),
            v2.CenterCrop(p.input_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=mean, std=std),
        ]
    )
