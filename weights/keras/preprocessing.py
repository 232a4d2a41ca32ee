"""The keras.applications workflow: ``preprocess_input`` and ``decode_predictions``.

For users who arrive from the Keras tutorials. The modes are keras.applications':

- ``"caffe"`` (VGG16/19, ResNet50): subtract the ImageNet means (123.68, 116.779, 103.939) from
  0..255 input. Keras also reverses RGB to BGR, because those weights were trained on BGR
  images; our converter reverses the first conv's input channels instead, so every converted
  model takes RGB, and ``preprocess_input`` keeps RGB (``bgr=True`` gives Keras' exact output,
  for a Keras model).
- ``"tf"`` (Inception v3, Xception, MobileNet v1/v2, Inception-ResNet-v2): ``x / 127.5 - 1``.
- ``"torch"`` (DenseNet): ``x / 255``, then ImageNet mean/std.
- ``"efficientnet"`` (EfficientNetB0-B7): Keras' ``preprocess_input`` returns the 0..255
  images unchanged, because its model normalises them itself (Rescaling, then the
  Normalization constants stored in the weight file, ``weights.keras.conversion``). Ours hold no
  preprocessing, so this mode is what Keras' model does inside, for the published files:
  ``x / 255``, then ImageNet mean/std (the torch mode's numbers). A file of your own may carry
  other constants: ``weights.transforms`` and the loaded model's preprocessing use the file's.

Each mode is also a mean/std on [0, 1] input (``weights.keras.conversion.MODES``), which is how the
Keras tags record it: ``weights.transforms(tag)`` and ``python -m nets classify`` use the tag's
mode without being told. ``mode_of(tag)`` names it.

``decode_predictions`` returns, per image, ``(wnid, name, score)`` best first, as Keras does.
The WordNet ids (``weights/data/imagenet_wnids.txt``) are the 1000 ImageNet-1k synsets in
class-index order, copied from timm's ``imagenet_synsets.txt`` (Apache-2.0); the names are our
torchvision category names (``tiger cat``; Keras' class index file says ``tiger_cat``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import torch

from ..registry import IMAGENET_MEAN, IMAGENET_STD, get_tag
from .conversion import CAFFE_MEAN_RGB, MODES, TAG_MODES

__all__ = ["MODES", "decode_predictions", "mode_of", "preprocess_input", "wnids"]


def mode_of(tag: str) -> str:
    """The keras.applications preprocessing mode of a Keras weights tag."""
    get_tag(tag)  # raises with suggestions for an unknown tag
    if tag not in TAG_MODES:
        raise ValueError(f"{tag!r} is not a Keras weights tag (those end in .keras_in1k)")
    return TAG_MODES[tag]


def preprocess_input(x, mode: str = "caffe", *, data_format: str = "channels_last", bgr=False):
    """keras.applications' ``preprocess_input`` on 0..255 RGB images.

    ``x``: a numpy array or torch tensor, ``(..., H, W, 3)`` for ``channels_last`` (Keras'
    default) or ``(..., 3, H, W)`` for ``channels_first``; returns the same kind, float32.
    ``bgr=True`` (caffe only) also reverses the channels as Keras does; our converted models
    take RGB, so leave it False for them.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be channels_last or channels_first, not {data_format}")
    if bgr and mode != "caffe":
        raise ValueError("bgr=True is for the caffe mode only")
    is_tensor = isinstance(x, torch.Tensor)
    t = x.float() if is_tensor else torch.from_numpy(np.asarray(x, dtype=np.float32))
    axis = -1 if data_format == "channels_last" else -3
    if t.dim() < 3 or t.shape[axis] != 3:
        raise ValueError(f"expected 3-channel {data_format} images, got shape {tuple(t.shape)}")
    shape = [1] * t.dim()
    shape[axis] = 3
    if mode == "tf":
        out = t / 127.5 - 1.0
    elif mode == "torch":
        mean = torch.tensor(IMAGENET_MEAN).view(shape)
        std = torch.tensor(IMAGENET_STD).view(shape)
        out = (t / 255.0 - mean) / std
    elif mode == "efficientnet":
        mean, std = (torch.tensor(v).view(shape) for v in MODES[mode])
        out = (t / 255.0 - mean) / std
    else:
        out = t - torch.tensor(CAFFE_MEAN_RGB).view(shape)
        if bgr:
            out = out.flip(axis)
    return out if is_tensor else out.numpy()


@cache
def wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (n01440764 = tench first)."""
    text = resources.files("weights").joinpath("data", "imagenet_wnids.txt").read_text("utf-8")
    return tuple(line for line in text.splitlines() if line)


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Per image, the ``top`` classes as ``(wnid, name, score)``, best first (Keras' API).

    ``preds``: ``(N, 1000)`` scores, numpy or torch. As in Keras the score is the value given:
    Keras models end in a softmax, ours return logits, so pass ``model(x).softmax(1)`` for
    probabilities.
    """
    from ..imagenet import categories

    p = preds.detach().float().cpu() if isinstance(preds, torch.Tensor) else torch.tensor(preds)
    if p.dim() != 2 or p.shape[1] != 1000:
        raise ValueError(
            "decode_predictions expects a batch of ImageNet predictions of shape (N, 1000), "
            f"got {tuple(p.shape)}"
        )
    names, ids = categories(), wnids()
    top = max(1, min(int(top), 1000))
    values, indices = p.topk(top, dim=1)
    return [
        [(ids[int(i)], names[int(i)], float(v)) for v, i in zip(rv, ri, strict=True)]
        for rv, ri in zip(values, indices, strict=True)
    ]
