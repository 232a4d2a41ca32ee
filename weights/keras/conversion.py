"""Keras HDF5 ImageNet weights (the ``.h5`` files keras.applications downloads) -> our keys.

``weights.io.read_keras_h5`` reads the legacy layout into ``{"<layer>/<weight>": tensor}``
with Keras' tensor layouts. The pieces:

- ``weights.keras.tensors``: every tensor layout change, a named, shape-checked function;
- ``weights.keras.reader``: the ``Move`` rows (a Keras layer -> our module) and the ``Reader``
  that applies them, with Keras' creation-order numbering of unnamed layers;
- ``weights.keras.<family>``: one record per keras.applications model (files, figures, counts,
  the layer names that identify its file and its table of moves), gathered in
  ``weights.keras.models``;
- here: recognising a file, converting it, its preprocessing mode, the layout and the tags.

The file's model is recognised from its layer names (``identify``); a Keras file of another
model, or of one we do not convert, is refused with a one-line error. Files saved with
``include_top=False`` ("notop") lack the classifier layer; ``has_top`` says which kind a file is.
EfficientNet's files also hold its Normalization layer: not weights of ours but the file's
preprocessing (``keras_normalization``, ``file_metadata``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import replace

import numpy as np
import torch

from ..errors import CheckpointFormatError
from ..io import KERAS_H5
from ..layouts import block_prefixes, register_layout
from ..registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    WeightTag,
    default_tag,
    register,
)
from ..types import StateDict
from .models import MODELS
from .reader import Reader, creation_order, layer_names, normalise, unnamed_conv_bn
from .record import DEPTHWISE, KerasModel
from .tensors import bgr_to_rgb

KERAS = "keras"
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# keras.applications' preprocessing modes as mean/std on [0, 1] RGB input (see weights.keras).
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # Keras subtracts (103.939, 116.779, 123.68) in BGR

# EfficientNet: Keras' model holds its preprocessing: Rescaling(1 / 255), a Normalization
# layer, (x - mean) / sqrt(variance), whose mean and variance are stored in the weight file,
# and, only when built with weights="imagenet", Rescaling(1 / sqrt(IMAGENET_STDDEV_RGB)). The
# published files store ImageNet's std where the variance belongs (tensorflow/tensorflow#49930:
# mean [0.485, 0.456, 0.406], variance [0.229, 0.224, 0.225]); the extra Rescaling makes it
# (x - mean) / std again. Our networks hold no preprocessing: the file's constants become
# the mean/std on [0, 1] input of the tag and of the file's metadata (``keras_normalization``).
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)  # keras/src/applications/efficientnet.py
EFFICIENTNET_MEAN_RGB = (0.485, 0.456, 0.406)  # the published files' Normalization mean


def _float32(value: float) -> float:
    """The shortest decimal of ``value`` as float32 (the file's precision): 0.229, not
    0.22900000605773926."""
    return float(np.format_float_positional(np.float32(value)))


def keras_normalization(
    mean: Collection[float], variance: Collection[float]
) -> tuple[tuple[float, ...], tuple[float, ...], bool]:
    """A Keras EfficientNet file's Normalization constants -> (mean, std, published).

    The rule: a file whose variance is IMAGENET_STDDEV_RGB (to float32 precision) carries the
    published constants; Keras builds such a file's model with weights="imagenet" (the
    published files, and a user's fine-tuned copy of them, whose non-trainable Normalization
    keeps them), so it divides once more by sqrt(IMAGENET_STDDEV_RGB): std = sqrt(variance)
    * sqrt(IMAGENET_STDDEV_RGB). Any other variance (a model built with weights=None, adapted
    or not) is Keras' plain Normalization: std = sqrt(variance).
    """
    variance = tuple(float(v) for v in variance)
    published = len(variance) == len(IMAGENET_STDDEV_RGB) and all(
        math.isclose(v, s, rel_tol=1e-6) for v, s in zip(variance, IMAGENET_STDDEV_RGB, strict=True)
    )
    extra = IMAGENET_STDDEV_RGB if published else (1.0,) * len(variance)
    std = tuple(_float32(math.sqrt(v) * math.sqrt(e)) for v, e in zip(variance, extra, strict=True))
    return tuple(_float32(m) for m in mean), std, published


MODES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # caffe: x * 255 - mean (RGB order: the BGR swap is folded into the first conv).
    "caffe": (tuple(m / 255 for m in CAFFE_MEAN_RGB), (1 / 255,) * 3),
    # tf: x * 255 / 127.5 - 1 = (x - 0.5) / 0.5.
    "tf": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # torch: x / 255 then ImageNet mean/std.
    "torch": (IMAGENET_MEAN, IMAGENET_STD),
    # efficientnet: Keras' preprocess_input is a pass-through (its model normalises 0..255
    # input itself); ours: x / 255, then the published files' Normalization and extra
    # Rescaling as one mean/std (numerically the torch mode).
    "efficientnet": keras_normalization(EFFICIENTNET_MEAN_RGB, IMAGENET_STDDEV_RGB)[:2],
}

ARCHS = {m.arch: m for m in MODELS.values()}
PARAMS: dict[str, tuple[int, int]] = {name: m.params for name, m in MODELS.items()}


def identify(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The keras.applications model a Keras state dict holds, from its layer names (None if it
    is none of those we convert). The signatures exclude each other, so order is free."""
    sd = normalise(state_dict)
    layers = layer_names(sd)
    return next((n for n, m in MODELS.items() if m.signature.matches(sd, layers)), None)


def has_top(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether a Keras file carries the classifier (include_top=True)."""
    # MobileNet's classifier is the 1x1 conv conv_preds, MobileNetV3's logits (tf.keras 2:
    # Logits).
    return any(
        k.startswith(("predictions/", "conv_preds/", "logits/", "Logits/")) for k in state_dict
    )


def _what(state_dict: Mapping[str, torch.Tensor]) -> str:
    layers = sorted(layer_names(state_dict))
    shown = ", ".join(layers[:3]) + (", ..." if len(layers) > 3 else "")
    return f"{len(layers)} layers: {shown}"


def reject(arch: str, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise the one-line error for a Keras file that does not convert to ``arch``."""
    name = identify(state_dict)
    if name is None:
        raise CheckpointFormatError(
            f"this Keras .h5 file holds a model we have no conversion for ({_what(state_dict)});"
            f" Keras files convert for {', '.join(MODELS)}"
        )
    raise CheckpointFormatError(
        f"this Keras .h5 file holds keras.applications.{name}, which loads into "
        f"{MODELS[name].arch!r}, not {arch!r}"
    )


def convert(
    arch: str, state_dict: Mapping[str, torch.Tensor], expected: Collection[str] | None = None
) -> StateDict:
    """``expected``: our model's key names, where the loading path has a model (see
    ``KerasModel.moves_for_blocks``)."""
    name = identify(state_dict)
    if name is None or MODELS[name].arch != arch:
        reject(arch, state_dict)
    m: KerasModel = MODELS[name]
    moves = m.moves
    if expected is not None and m.moves_for_blocks is not None:
        moves = m.moves_for_blocks(block_prefixes(expected, DEPTHWISE))
    reader = Reader(state_dict)
    if m.normalization:  # preprocessing constants (file_metadata), no module of ours
        for layer in creation_order(layer_names(reader.sd), m.normalization):
            reader.skip(layer)
    unnamed = unnamed_conv_bn(layer_names(reader.sd), m.unnamed, name) if m.unnamed else []
    for move in (*unnamed, *moves):
        reader.move(move)
    if m.bgr_conv:  # caffe mode: trained on BGR
        key = f"{m.bgr_conv}.weight"
        if key in reader.out:
            reader.out[key] = bgr_to_rgb(reader.out[key], key)
    return reader.result()


def looks_like(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return identify(state_dict) is not None


def preprocessing(mode: str, input_size: int) -> Preprocessing:
    """A keras.applications preprocessing mode as our Preprocessing (mean/std on [0, 1])."""
    mean, std = MODES[mode]
    return Preprocessing(
        input_size=input_size,
        resize_size=round(input_size / 0.875),
        interpolation="bilinear",
        mean=mean,
        std=std,
    )


def file_metadata(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """What a Keras file says about itself: the model, its mode and whether it has the top."""
    name = identify(state_dict)
    if name is None:
        return {}
    m = MODELS[name]
    meta = {"keras_model": name, "keras_mode": m.mode, "keras_top": str(has_top(state_dict))}
    p = preprocessing(m.mode, m.input_size)
    if m.normalization and (norm := normalization_of(state_dict, m.normalization)):
        mean, std, published = keras_normalization(*norm)
        p = replace(p, mean=mean, std=std)
        # "published": Keras' ImageNet constants, with its extra Rescaling (see
        # keras_normalization); "file": a plain Normalization, (x - mean) / sqrt(variance).
        meta["keras_normalization"] = "published" if published else "file"
    meta.update(p.as_metadata())
    return meta


def normalization_of(
    state_dict: Mapping[str, torch.Tensor], base: str
) -> tuple[list[float], list[float]] | None:
    """The mean and variance of a file's Keras Normalization layer (the first by creation
    order: ``normalization``, or ``normalization_<n>`` in a session that made others)."""
    sd = normalise(state_dict)
    for layer in creation_order(layer_names(sd), base):
        mean, var = sd.get(f"{layer}/mean"), sd.get(f"{layer}/variance")
        if mean is not None and var is not None and mean.numel() == var.numel() == 3:
            return mean.flatten().tolist(), var.flatten().tolist()
    return None


def keras_only_non_trainable(keras_name: str) -> int:
    """Keras' non-trainable weights of a model that are not ours (``summary --keras``): the
    Normalization layer's mean and variance (3 each) and its sample count (1)."""
    m = MODELS.get(keras_name)
    return 3 + 3 + 1 if m is not None and m.normalization else 0


def describe(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, str], str]:
    """The layout's ``describe`` hook: the file's metadata, and a remark on a notop file."""
    meta = file_metadata(state_dict)
    remark = ""
    if meta.get("keras_top") == "False":
        remark = (
            "a Keras include_top=False 'notop' file: it has no classifier; build the model "
            "with include_top=False"
        )
    return meta, remark


# Any Keras .h5 file is ours to convert or to refuse: its model is told from its layer names.
register_layout(
    KERAS,
    list(ARCHS),
    looks_like,
    convert,
    container=KERAS_H5,
    reject=reject,
    describe=describe,
    takes_expected=True,
)


# -- tags --------------------------------------------------------------------------------------
# <arch>.keras_in1k (with the top) and <arch>.keras_notop_in1k; the default for the *_keras
# archs (VGG16/19 keep torchvision's as default). keras.applications verifies these files
# with MD5 (its file_hash): the tag's md5 field carries it and the store checks it. Keras
# publishes no SHA-256, so sha256 is left empty (the store records the digest it sees).
TAG_MODES: dict[str, str] = {}
NORMALIZATION_NOTE = (
    ": Keras' model holds its preprocessing (Rescaling(1/255); Normalization with the file's"
    " mean and variance, which are ImageNet's mean and std, tensorflow/tensorflow#49930; then"
    " Rescaling(1/sqrt(IMAGENET_STDDEV_RGB))) and takes 0..255 images; ours is a plain"
    " network and the same arithmetic is this mean/std on [0, 1] input,"
    " (x - mean) / (sqrt(variance) * sqrt(std)) = (x - mean) / std"
)


def _register_tags() -> None:
    for m in MODELS.values():
        for notop, file_name, md5 in ((False, m.file, m.md5[0]), (True, m.notop_file, m.md5[1])):
            name = f"{m.arch}.keras{'_notop' if notop else ''}_in1k"
            TAG_MODES[name] = m.mode
            register(
                WeightTag(
                    name=name,
                    arch=m.arch,
                    source=KERAS,
                    file_name=file_name,
                    sha256="",
                    md5=md5,
                    url=(m.base_url or KERAS_BASE_URL) + m.weights_dir + file_name,
                    preprocessing=preprocessing(m.mode, m.input_size),
                    top1=m.top1,
                    top5=m.top5,
                    num_params=m.params[int(notop)],
                    notes=(
                        f"keras.applications.{m.keras_name} ImageNet weights"
                        + (" without the top (include_top=False)" if notop else "")
                        + f", preprocessing mode {m.mode!r}"
                        + (NORMALIZATION_NOTE if m.normalization else "")
                        + ("" if md5 else "; keras.applications publishes no checksum for it")
                        + f"; {m.figures}"
                        + (f". {m.notes}" if m.notes else "")
                    ),
                ),
                # An arch with no other source's tag (keras_*, resnet50_v2) defaults to Keras'.
                default=not notop and default_tag(m.arch) is None,
            )


_register_tags()
