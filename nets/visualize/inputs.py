"""The input side of the pictures: the error they raise, and an image turned into what the
network sees plus the same pixels as a picture to draw over."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

import weights as wts

from ..errors import NetsError
from ..images import load_image, to_rgb
from ..pretrained import PretrainedCfg, default_preprocessing
from ..registry import get_spec

ImageLike = str | os.PathLike | Image.Image | torch.Tensor


class VisualizeError(NetsError, ValueError):
    """A request the pictures cannot honour: an unknown stage or class, a model without a
    convolution to show or without a classifier, a bad count."""


@dataclass
class PreparedImage:
    """What the network sees (``x``, 1xCxHxW, normalised) and the same pixels as an RGB
    picture in [0, 1] (``rgb``, HxWx3) to draw maps over."""

    x: torch.Tensor
    rgb: np.ndarray


def preprocessing(model: nn.Module) -> wts.Preprocessing:
    """The model's evaluation preprocessing (``pretrained_cfg.preprocessing``: its weights'
    own, else its family's default); for a module built outside ``create_model``, what
    ``create_model`` would give its architecture, else the generic default at 224."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("preprocessing") is not None:
        return cfg["preprocessing"]
    arch = cfg.get("arch") or getattr(model, "arch", None)
    try:
        return PretrainedCfg.unweighted(arch, get_spec(arch).input_size).preprocessing
    except (NetsError, KeyError, TypeError):
        size = getattr(cfg, "input_size", None) or cfg.get("input_size") or 224
        # timm's configurations (and ours read by key) give (C, H, W)
        return default_preprocessing(size[-1] if isinstance(size, tuple | list) else size)


def prepare_image(model: nn.Module, image: ImageLike, *, crop: bool = True) -> PreparedImage:
    """Turn a path, a PIL image or a tensor into the network's input and its picture.

    A path or PIL image goes through the model's evaluation preprocessing: the short side
    resized, then the centre crop (``crop=False`` keeps the whole image, short side at the
    input size, for photos whose object is not in the centre). A tensor (CxHxW or 1xCxHxW)
    is taken as already preprocessed.
    """
    pre = preprocessing(model)
    in_chans = getattr(model, "in_chans", 3)
    if isinstance(image, torch.Tensor):
        x = image.detach().float()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[0] != 1:
            raise VisualizeError(
                f"image tensor must be CxHxW or 1xCxHxW, got shape {list(image.shape)}"
            )
    else:
        pil = to_rgb(image) if isinstance(image, Image.Image) else load_image(image)
        if in_chans == 1:
            pil = pil.convert("L")  # as the trainer feeds a grey network
        steps = wts.transforms(pre, in_chans=in_chans).transforms
        if not crop:  # same resize, no centre crop: the whole image at the input scale
            steps = [s for s in steps if not isinstance(s, v2.CenterCrop)]
            steps = [
                v2.Resize(pre.input_size, interpolation=s.interpolation, antialias=True)
                if isinstance(s, v2.Resize)
                else s
                for s in steps
            ]
        x = v2.Compose(steps)(pil).unsqueeze(0)
    c = x.shape[1]
    mean, std = (torch.tensor(v).view(1, c, 1, 1) for v in wts.channel_stats(pre, c))
    pixels = (x * std + mean).clamp(0, 1)[0]
    pixels = pixels[:3] if c >= 3 else pixels[:1].expand(3, -1, -1)
    return PreparedImage(x, pixels.permute(1, 2, 0).numpy().copy())
