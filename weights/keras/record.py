"""What we know of one keras.applications model: ``KerasModel``, its file's ``Signature``, and
the helpers the family files share.

A new application is a new ``KerasModel`` in its family's file (``weights.keras.<family>``,
as keras.applications lays out its modules), added to ``weights.keras.models``: its
``signature`` (the layer names that tell its file from every other's) and its ``moves``
(``weights.keras.reader.Move`` rows), plus, where Keras leaves layers unnamed, our modules
in Keras' creation order (``unnamed``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .reader import Move, creation_order


@dataclass(frozen=True)
class Signature:
    """What a file's layer names (after ``reader.normalise``) must show."""

    layers: tuple[str, ...] = ()  # present
    absent: tuple[str, ...] = ()
    # A pattern with one group, a block number -> the highest number in the file.
    last_block: Mapping[str, int] = field(default_factory=dict)
    # A creation-order base name (``conv2d``) -> how many layers carry it.
    unnamed: Mapping[str, int] = field(default_factory=dict)
    # A kernel -> its output channels (telling width multiplier 1.0 from the others).
    widths: Mapping[str, int] = field(default_factory=dict)

    def matches(self, state_dict: Mapping[str, torch.Tensor], layers: set[str]) -> bool:
        return (
            all(n in layers for n in self.layers)
            and not any(n in layers for n in self.absent)
            and all(_last_block(layers, p) == n for p, n in self.last_block.items())
            and all(len(creation_order(layers, b)) == n for b, n in self.unnamed.items())
            and all(
                (t := state_dict.get(k)) is not None and t.shape[-1] == n
                for k, n in self.widths.items()
            )
        )


def _last_block(layers: set[str], pattern: str) -> int:
    return max((int(m[1]) for n in layers if (m := re.fullmatch(pattern, n))), default=0)


@dataclass(frozen=True)
class KerasModel:
    keras_name: str  # keras.applications.<name>
    arch: str  # ours
    mode: str  # preprocessing mode (weights.keras.conversion.MODES)
    input_size: int
    signature: Signature
    moves: tuple[Move, ...]
    weights_dir: str  # under KERAS_BASE_URL
    file: str  # with the top
    notop_file: str
    md5: tuple[str, str]  # keras.applications' file_hash (MD5) of the two files, "" if none
    top1: float  # keras.io/api/applications (top-1, ImageNet val), or ``figures``
    top5: float | None  # None where none is published
    # Our parameter counts (= Keras' trainable parameters) with and without the top; Keras'
    # totals add BatchNorm's moving statistics (tests/weights/test_keras.py checks both).
    params: tuple[int, int]
    # Our ConvNormActs for Keras' unnamed conv2d/batch_normalization layers, in creation order.
    unnamed: tuple[str, ...] = ()
    # The caffe-mode models were trained on BGR: this first conv's input channels reverse.
    bgr_conv: str = ""
    # Where our stages group Keras' blocks by resolution (MobileNets): the moves for our
    # block prefixes, read from the model's keys when the loading path hands them over
    # (``moves`` is this for the prefixes of a table, for a conversion without a model).
    moves_for_blocks: Callable[[Sequence[str]], tuple[Move, ...]] | None = None
    # Where top1/top5 come from, for the tags' notes, and what else the tags should say.
    figures: str = "top-1/top-5 from https://keras.io/api/applications/"
    notes: str = ""
    # The base name of a Keras Normalization layer in the model (EfficientNet): its mean and
    # variance are the file's preprocessing (weights.keras.conversion.file_metadata), not weights.
    normalization: str = ""
    # Where the files are when not under conversion.KERAS_BASE_URL (EfficientNet's are not).
    base_url: str = ""


def standard_files(name: str) -> dict[str, str]:
    """The file names most keras.applications models use, with and without the top."""
    return {
        "file": f"{name}_weights_tf_dim_ordering_tf_kernels.h5",
        "notop_file": f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5",
    }


# Our blocks hold a depthwise ConvNormAct each: ``<block>.depthwise.conv.weight``.
DEPTHWISE = "depthwise.conv.weight"


def by_resolution(strides: tuple[int, ...]) -> list[str]:
    """Our ``stages.<s>.<j>`` of each block: a new stage at every stride-2 block, as
    ``nets.models.mobilenet_v1.group_by_resolution`` builds our stages."""
    out, stage, index = [], 0, -1
    for i, stride in enumerate(strides):
        if stride > 1 and i > 0:
            stage, index = stage + 1, 0
        else:
            index += 1
        out.append(f"stages.{stage}.{index}")
    return out
