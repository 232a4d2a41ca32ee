"""Keras' tensor layouts -> PyTorch's: every change a named function that checks the shape first.

- ``conv_kernel``: Conv2D kernel (kh, kw, in, out) "HWIO" -> PyTorch (out, in, kh, kw) "OIHW",
  ``permute(3, 2, 0, 1)``;
- ``depthwise_kernel``: DepthwiseConv2D kernel (kh, kw, C, m) -> (C * m, 1, kh, kw): TF's
  output channel c * m + j reads input channel c, as PyTorch's ``groups=C`` does;
- ``dense_kernel``: Dense kernel (in, out) -> Linear weight (out, in), transposed;
- ``flatten_dense_kernel``: VGG's fc1 reads Keras' channels-last Flatten, input index
  (h * W + w) * C + c; ours flattens channels first, c * H * W + h * W + w, so its input
  features are permuted from (h, w, c) to (c, h, w) order;
- ``SeparableConv2D`` (Xception): its ``depthwise_kernel`` as a DepthwiseConv2D kernel and its
  ``pointwise_kernel`` (1, 1, in, out) as a Conv2D kernel (``weights.keras.reader``);
- ``conv_as_dense``: Keras MobileNet's ``conv_preds``, a 1x1 conv on the pooled 1x1 map, is
  the Linear ``head.fc``;
- ``bgr_to_rgb``: the caffe-mode models (VGG16/19, ResNet50) were trained on BGR input. Their
  first kernel's input channels are reversed, so every converted model takes RGB and the
  caffe preprocessing becomes a per-channel mean/std in RGB order (``weights.keras.preprocessing``).

Each takes the tensor and, for its error message, the Keras key it came from.
"""

from __future__ import annotations

import torch

from ..errors import CheckpointFormatError


def _check(t: torch.Tensor, dims: int, what: str, key: str) -> None:
    if t.dim() != dims:
        raise CheckpointFormatError(
            f"Keras {what} {key!r} has shape {list(t.shape)}, expected {dims} dimensions"
        )


def conv_kernel(t: torch.Tensor, key: str = "") -> torch.Tensor:
    """Conv2D kernel HWIO (kh, kw, in, out) -> OIHW (out, in, kh, kw)."""
    _check(t, 4, "conv kernel", key)
    return t.permute(3, 2, 0, 1).contiguous()


def depthwise_kernel(t: torch.Tensor, key: str = "") -> torch.Tensor:
    """DepthwiseConv2D kernel (kh, kw, C, m) -> (C * m, 1, kh, kw) for ``groups=C``."""
    _check(t, 4, "depthwise kernel", key)
    kh, kw, c, m = t.shape
    return t.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw).contiguous()


def dense_kernel(t: torch.Tensor, key: str = "") -> torch.Tensor:
    """Dense kernel (in, out) -> Linear weight (out, in)."""
    _check(t, 2, "Dense kernel", key)
    return t.t().contiguous()


def flatten_dense_kernel(t: torch.Tensor, channels: int, key: str = "") -> torch.Tensor:
    """The first Dense after Keras' channels-last Flatten -> a Linear after our channels-first
    flatten: input features reordered from (h, w, c) to (c, h, w)."""
    _check(t, 2, "Dense kernel", key)
    n_in, n_out = t.shape
    side = round((n_in / channels) ** 0.5)
    if side * side * channels != n_in:
        raise CheckpointFormatError(
            f"Keras Dense kernel {key!r} has {n_in} inputs, not a square grid of {channels} "
            "channels"
        )
    w = t.t().reshape(n_out, side, side, channels)  # (out, h, w, c): Keras' input order
    return w.permute(0, 3, 1, 2).reshape(n_out, n_in).contiguous()  # (out, c, h, w)


def conv_as_dense(t: torch.Tensor, key: str = "") -> torch.Tensor:
    """A 1x1 Conv2D kernel (1, 1, in, out) applied to a 1x1 map -> Linear weight (out, in)."""
    _check(t, 4, "conv kernel", key)
    if tuple(t.shape[:2]) != (1, 1):
        raise CheckpointFormatError(f"Keras kernel {key!r} {list(t.shape)} is not 1x1")
    return t.reshape(t.shape[2], t.shape[3]).t().contiguous()


def bgr_to_rgb(weight: torch.Tensor, key: str = "") -> torch.Tensor:
    """Reverse the input channels of an OIHW first-conv kernel trained on BGR input."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise CheckpointFormatError(
            f"first conv {key!r} {list(weight.shape)} does not read 3 (BGR) channels"
        )
    return weight.flip(1).contiguous()
