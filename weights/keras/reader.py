"""Reading a Keras file's tensors by layer: the moves from Keras layers to our modules.

``weights.io.read_keras_h5`` reads the legacy HDF5 layout into ``{"<layer>/<weight>": tensor}``
in Keras' tensor layouts. An application's table (``weights.keras.<family>``) is a sequence of
``Move`` rows, one per Keras layer: which of our modules it becomes and how (a ``kind``, whose
tensor layout change is in ``weights.keras.tensors``). ``Reader`` applies them and keeps every
tensor no row took under its Keras name, so that the strict check reports it as unexpected.

BatchNorm: gamma/beta/moving_mean/moving_variance -> weight/bias/running_mean/running_var.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from ..errors import CheckpointFormatError
from ..types import StateDict
from .tensors import conv_kernel, dense_kernel, depthwise_kernel

# The tensor layout change of each kind of layer that has a kernel (and maybe a bias).
KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "conv": conv_kernel,
    "depthwise": depthwise_kernel,
    "dense": dense_kernel,
}
# Keras' BatchNormalization weights -> ours; gamma is absent with scale=False (Inception v3).
BN_LEAVES = (
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)


@dataclass(frozen=True)
class Move:
    """Keras layer ``keras`` -> our module ``ours``.

    ``kind``: ``conv``, ``depthwise``, ``dense`` (a kernel and an optional bias), ``bn`` or
    ``separable`` (a SeparableConv2D, no bias: ``ours.depthwise`` and ``ours.pointwise``).
    ``kernel``: a layout change in place of the kind's own, called as ``kernel(t, key=...)``.
    """

    keras: str
    ours: str
    kind: str = "conv"
    kernel: Callable[..., torch.Tensor] | None = None


def conv_bn(conv: str, bn: str, ours: str, kind: str = "conv") -> tuple[Move, Move]:
    """A Keras conv and its BatchNorm -> our ConvNormAct ``ours`` (``.conv``, ``.bn``)."""
    return Move(conv, f"{ours}.conv", kind), Move(bn, f"{ours}.bn", "bn")


def normalise(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """``conv1/conv/kernel`` (Keras 2 layer names with a slash, as in DenseNet's files) ->
    ``conv1_conv/kernel`` (Keras 3's names); the Keras 2 ``depthwise_kernel`` -> ``kernel``
    is kept apart, the tables ask for either."""
    out: StateDict = {}
    for key, value in state_dict.items():
        layer, _, leaf = key.rpartition("/")
        out[f"{layer.replace('/', '_')}/{leaf}"] = value
    return out


def layer_names(state_dict: Mapping[str, torch.Tensor]) -> set[str]:
    return {k.rpartition("/")[0] for k in state_dict}


def creation_order(layers: Iterable[str], base: str) -> list[str]:
    """Layers Keras named by creation order only: ``base``, ``base_1``, ``base_2`` ... sorted by
    number (no suffix = 0). Keras 3 starts at ``base``, the Keras 2 files at ``base_1``, and a
    session that built other models first at a higher number; the order is what counts."""
    found = [(int(m[1] or 0), n) for n in layers if (m := re.fullmatch(rf"{base}(?:_(\d+))?", n))]
    return [n for _, n in sorted(found)]


def unnamed_conv_bn(layers: Iterable[str], ours: Sequence[str], app: str) -> list[Move]:
    """The unnamed ``conv2d``/``batch_normalization`` pairs, in creation order, onto our
    ConvNormActs ``ours`` (in the order the application creates them)."""
    layers = set(layers)
    convs = creation_order(layers, "conv2d")
    norms = creation_order(layers, "batch_normalization")
    if not len(convs) == len(norms) == len(ours):
        raise CheckpointFormatError(
            f"a Keras {app} file has {len(ours)} unnamed conv2d and batch_normalization "
            f"layers, this one {len(convs)} and {len(norms)}"
        )
    return [m for c, n, o in zip(convs, norms, ours, strict=True) for m in conv_bn(c, n, o)]


class Reader:
    """Takes tensors by layer name and remembers which were used; the unused ones are kept
    under their Keras names, so that the strict check reports them as unexpected."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.sd = normalise(state_dict)
        self.used: set[str] = set()
        self.out: StateDict = {}

    def take(self, layer: str, *leaves: str) -> torch.Tensor | None:
        for leaf in leaves:
            key = f"{layer}/{leaf}"
            if key in self.sd:
                self.used.add(key)
                return self.sd[key]
        return None

    def skip(self, layer: str) -> None:
        """A layer whose tensors are read elsewhere (a Normalization layer's constants): not
        weights of ours, and not reported as unexpected."""
        self.used.update(k for k in self.sd if k.rpartition("/")[0] == layer)

    def move(self, m: Move) -> None:
        """One row; a layer the file lacks is skipped: the strict check reports our key."""
        if m.kind == "bn":
            for leaf, name in BN_LEAVES:
                if (t := self.take(m.keras, leaf)) is not None:
                    self.out[f"{m.ours}.{name}"] = t
        elif m.kind == "separable":
            if (t := self.take(m.keras, "depthwise_kernel")) is not None:
                self.out[f"{m.ours}.depthwise.weight"] = depthwise_kernel(t, m.keras)
            if (t := self.take(m.keras, "pointwise_kernel")) is not None:
                self.out[f"{m.ours}.pointwise.weight"] = conv_kernel(t, m.keras)
        else:
            # Keras 2's DepthwiseConv2D names its kernel depthwise_kernel, Keras 3's kernel.
            leaves = ("depthwise_kernel", "kernel") if m.kind == "depthwise" else ("kernel",)
            if (kernel := self.take(m.keras, *leaves)) is None:
                return
            self.out[f"{m.ours}.weight"] = (m.kernel or KERNELS[m.kind])(kernel, key=m.keras)
            if (bias := self.take(m.keras, "bias")) is not None:
                self.out[f"{m.ours}.bias"] = bias

    def result(self) -> StateDict:
        for key, value in self.sd.items():
            if key not in self.used:
                self.out[key] = value
        return self.out
