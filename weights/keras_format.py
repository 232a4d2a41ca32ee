"""Keras HDF5 ImageNet weights (the ``.h5`` files keras.applications downloads) -> our keys.

``weights.io.read_keras_h5`` reads the legacy layout into ``{"<layer>/<weight>": tensor}``
with Keras' tensor layouts; here each supported Keras application gets an explicit table from
its layer names to our modules, and every layout change is a named, shape-checked function:

- ``conv_kernel``: Conv2D kernel (kh, kw, in, out) "HWIO" -> PyTorch (out, in, kh, kw) "OIHW",
  ``permute(3, 2, 0, 1)``;
- ``depthwise_kernel``: DepthwiseConv2D kernel (kh, kw, C, m) -> (C * m, 1, kh, kw): TF's
  output channel c * m + j reads input channel c, as PyTorch's ``groups=C`` does;
- ``dense_kernel``: Dense kernel (in, out) -> Linear weight (out, in), transposed;
- ``flatten_dense_kernel``: VGG's fc1 reads Keras' channels-last Flatten, input index
  (h * W + w) * C + c; ours flattens channels first, c * H * W + h * W + w, so its input
  features are permuted from (h, w, c) to (c, h, w) order;
- ``SeparableConv2D`` (Xception): its ``depthwise_kernel`` as a DepthwiseConv2D kernel and its
  ``pointwise_kernel`` (1, 1, in, out) as a Conv2D kernel, into our ``SeparableConv2d``'s
  ``depthwise`` and ``pointwise``;
- ``conv_as_dense``: Keras MobileNet's ``conv_preds``, a 1x1 conv on the pooled 1x1 map, is
  the Linear ``head.fc``;
- ``bgr_to_rgb``: the caffe-mode models (VGG16/19, ResNet50) were trained on BGR input. Their
  first kernel's input channels are reversed here, so every converted model takes RGB and the
  caffe preprocessing becomes a per-channel mean/std in RGB order (``weights.keras``).

BatchNorm: gamma/beta/moving_mean/moving_variance -> weight/bias/running_mean/running_var.

The file's model is recognised from its layer names (``identify``); a Keras file of another
model, or of one we do not convert, is refused with a one-line error. Files saved with
``include_top=False`` ("notop") lack the classifier layer; ``has_top`` says which kind a file is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from .errors import CheckpointFormatError
from .io import KERAS_H5
from .layouts import register_layout
from .registry import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, WeightTag, register
from .renames import StateDict

KERAS = "keras"
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# keras.applications' preprocessing modes as mean/std on [0, 1] RGB input (see weights.keras).
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # Keras subtracts (103.939, 116.779, 123.68) in BGR
MODES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # caffe: x * 255 - mean (RGB order: the BGR swap is folded into the first conv).
    "caffe": (tuple(m / 255 for m in CAFFE_MEAN_RGB), (1 / 255,) * 3),
    # tf: x * 255 / 127.5 - 1 = (x - 0.5) / 0.5.
    "tf": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # torch: x / 255 then ImageNet mean/std.
    "torch": (IMAGENET_MEAN, IMAGENET_STD),
}


# -- tensor layouts ---------------------------------------------------------------------------
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


# -- reading a file's tensors by layer ---------------------------------------------------------
def normalise(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """``conv1/conv/kernel`` (Keras 2 layer names with a slash, as in DenseNet's files) ->
    ``conv1_conv/kernel`` (Keras 3's names); the Keras 2 ``depthwise_kernel`` -> ``kernel``
    is kept apart, the tables ask for either."""
    out: StateDict = {}
    for key, value in state_dict.items():
        layer, _, leaf = key.rpartition("/")
        out[f"{layer.replace('/', '_')}/{leaf}"] = value
    return out


class _Reader:
    """Takes tensors by layer name and remembers which were used; the unused ones are kept
    under their Keras names, so that the strict check reports them as unexpected."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.sd = normalise(state_dict)
        self.used: set[str] = set()
        self.out: StateDict = {}

    def has(self, layer: str) -> bool:
        return any(k.startswith(layer + "/") for k in self.sd)

    def take(self, layer: str, *leaves: str) -> torch.Tensor | None:
        for leaf in leaves:
            key = f"{layer}/{leaf}"
            if key in self.sd:
                self.used.add(key)
                return self.sd[key]
        return None

    def conv(self, layer: str, ours: str, fn: Callable = conv_kernel, depthwise=False) -> None:
        """A Conv2D (or DepthwiseConv2D) and its optional bias -> ``ours.weight``/``.bias``."""
        kernel = self.take(layer, "depthwise_kernel", "kernel") if depthwise else None
        if kernel is None:
            kernel = self.take(layer, "kernel")
        if kernel is None:
            return  # missing: the strict check reports our missing key
        self.out[f"{ours}.weight"] = (depthwise_kernel if depthwise else fn)(kernel, layer)
        bias = self.take(layer, "bias")
        if bias is not None:
            self.out[f"{ours}.bias"] = bias

    def separable(self, layer: str, ours: str) -> None:
        """A SeparableConv2D (no bias in Xception) -> ``ours.depthwise`` and ``ours.pointwise``."""
        depthwise = self.take(layer, "depthwise_kernel")
        if depthwise is not None:
            self.out[f"{ours}.depthwise.weight"] = depthwise_kernel(depthwise, layer)
        pointwise = self.take(layer, "pointwise_kernel")
        if pointwise is not None:
            self.out[f"{ours}.pointwise.weight"] = conv_kernel(pointwise, layer)

    def dense(self, layer: str, ours: str, fn: Callable = dense_kernel) -> None:
        kernel = self.take(layer, "kernel")
        if kernel is None:
            return
        self.out[f"{ours}.weight"] = fn(kernel, layer)
        bias = self.take(layer, "bias")
        if bias is not None:
            self.out[f"{ours}.bias"] = bias

    def bn(self, layer: str, ours: str) -> None:
        for leaf, name in (
            ("gamma", "weight"),  # absent with scale=False (Inception v3)
            ("beta", "bias"),
            ("moving_mean", "running_mean"),
            ("moving_variance", "running_var"),
        ):
            t = self.take(layer, leaf)
            if t is not None:
                self.out[f"{ours}.{name}"] = t

    def first_conv_bgr(self, ours: str) -> None:
        key = f"{ours}.weight"
        if key in self.out:
            self.out[key] = bgr_to_rgb(self.out[key], key)

    def result(self) -> StateDict:
        for key, value in self.sd.items():
            if key not in self.used:
                self.out[key] = value
        return self.out


# -- one table per Keras application -----------------------------------------------------------
def _vgg(r: _Reader, depths: tuple[int, ...]) -> None:
    for s, depth in enumerate(depths):
        for j in range(depth):
            r.conv(f"block{s + 1}_conv{j + 1}", f"stages.{s}.{j}.conv")
    r.first_conv_bgr("stages.0.0.conv")  # caffe mode: trained on BGR
    r.dense("fc1", "head.fc1", lambda t, key: flatten_dense_kernel(t, 512, key))
    r.dense("fc2", "head.fc2")
    r.dense("predictions", "head.fc")


def _resnet50(r: _Reader) -> None:
    r.conv("conv1_conv", "stem.conv1.conv")
    r.first_conv_bgr("stem.conv1.conv")  # caffe mode: trained on BGR
    r.bn("conv1_bn", "stem.conv1.bn")
    for s, depth in enumerate((3, 4, 6, 3)):
        for b in range(depth):
            keras, ours = f"conv{s + 2}_block{b + 1}", f"stages.{s}.{b}"
            for n in (1, 2, 3):
                r.conv(f"{keras}_{n}_conv", f"{ours}.conv{n}.conv")
                r.bn(f"{keras}_{n}_bn", f"{ours}.conv{n}.bn")
            # Keras' "_0" is the projection shortcut of a stage's first block.
            r.conv(f"{keras}_0_conv", f"{ours}.downsample.conv")
            r.bn(f"{keras}_0_bn", f"{ours}.downsample.bn")
    r.dense("predictions", "head.fc")


# MobileNet v1's depthwise strides, conv_dw_1 .. conv_dw_13; ours groups them by resolution.
MOBILENET_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
# MobileNetV2's block strides: expanded_conv, then block_1 .. block_16.
MOBILENET_V2_STRIDES = (1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1)


def _by_resolution(strides: tuple[int, ...]) -> list[tuple[int, int]]:
    """(stage, index in stage) of each block: a new stage at every stride-2 block, as
    ``nets.mobilenet_v1.group_by_resolution`` builds our stages."""
    out, stage, index = [], 0, -1
    for i, stride in enumerate(strides):
        if stride > 1 and i > 0:
            stage, index = stage + 1, 0
        else:
            index += 1
        out.append((stage, index))
    return out


def _mobilenet(r: _Reader) -> None:
    r.conv("conv1", "stem.conv")
    r.bn("conv1_bn", "stem.bn")
    for i, (s, j) in enumerate(_by_resolution(MOBILENET_STRIDES), start=1):
        r.conv(f"conv_dw_{i}", f"stages.{s}.{j}.depthwise.conv", depthwise=True)
        r.bn(f"conv_dw_{i}_bn", f"stages.{s}.{j}.depthwise.bn")
        r.conv(f"conv_pw_{i}", f"stages.{s}.{j}.pointwise.conv")
        r.bn(f"conv_pw_{i}_bn", f"stages.{s}.{j}.pointwise.bn")
    r.dense("conv_preds", "head.fc", conv_as_dense)


def _mobilenet_v2(r: _Reader) -> None:
    r.conv("Conv1", "stem.conv")
    r.bn("bn_Conv1", "stem.bn")
    for i, (s, j) in enumerate(_by_resolution(MOBILENET_V2_STRIDES)):
        keras, ours = ("expanded_conv" if i == 0 else f"block_{i}"), f"stages.{s}.{j}"
        r.conv(f"{keras}_expand", f"{ours}.expand.conv")
        r.bn(f"{keras}_expand_BN", f"{ours}.expand.bn")
        r.conv(f"{keras}_depthwise", f"{ours}.depthwise.conv", depthwise=True)
        r.bn(f"{keras}_depthwise_BN", f"{ours}.depthwise.bn")
        r.conv(f"{keras}_project", f"{ours}.project.conv")
        r.bn(f"{keras}_project_BN", f"{ours}.project.bn")
    r.conv("Conv_1", "stages.4.conv_head.conv")
    r.bn("Conv_1_bn", "stages.4.conv_head.bn")
    r.dense("predictions", "head.fc")


def _densenet(r: _Reader, blocks: tuple[int, ...]) -> None:
    r.conv("conv1_conv", "stem.conv1.conv")
    r.bn("conv1_bn", "stem.conv1.bn")
    for s, n_layers in enumerate(blocks):
        if s > 0:
            # Keras' transition before block s + 2 is pool{s + 1}: bn, 1x1 conv, 2x2 avg pool.
            r.bn(f"pool{s + 1}_bn", f"stages.{s}.transition.norm")
            r.conv(f"pool{s + 1}_conv", f"stages.{s}.transition.conv")
        for i in range(n_layers):
            keras, ours = f"conv{s + 2}_block{i + 1}", f"stages.{s}.block.{i}"
            r.bn(f"{keras}_0_bn", f"{ours}.norm1")
            r.conv(f"{keras}_1_conv", f"{ours}.conv1")
            r.bn(f"{keras}_1_bn", f"{ours}.norm2")
            r.conv(f"{keras}_2_conv", f"{ours}.conv2")
    r.bn("bn", f"stages.{len(blocks) - 1}.norm")
    r.dense("predictions", "head.fc")


# Inception v3: Keras names its convs and BatchNorms by creation order only (``conv2d``,
# ``conv2d_1``, ... in Keras 3, ``conv2d_1`` ... ``conv2d_94`` in the Keras 2 files; a session
# that built other models first starts at a higher number). Sorted by that number they come in
# the order keras.applications.inception_v3 creates them, which is the order of our modules:
INCEPTION_V3_BRANCHES = {
    "A": ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3", "branch_pool"),
    "B": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "C": ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1",
          "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"),
    "D": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3",
          "branch7x7x3_4"),
    "E": ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1",
          "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"),
}  # fmt: skip
INCEPTION_V3_MODULES = (  # (our module, block type), mixed0 .. mixed10 in Keras
    ("stages.0.mixed5b", "A"), ("stages.0.mixed5c", "A"), ("stages.0.mixed5d", "A"),
    ("stages.1.mixed6a", "B"), ("stages.1.mixed6b", "C"), ("stages.1.mixed6c", "C"),
    ("stages.1.mixed6d", "C"), ("stages.1.mixed6e", "C"),
    ("stages.2.mixed7a", "D"), ("stages.2.mixed7b", "E"), ("stages.2.mixed7c", "E"),
)  # fmt: skip


def inception_v3_order() -> list[str]:
    """Our ConvNormAct prefixes in Keras' creation order (94)."""
    out = [f"stem.{n}" for n in ("conv1a", "conv2a", "conv2b", "conv3b", "conv4a")]
    for module, kind in INCEPTION_V3_MODULES:
        out += [f"{module}.{b}" for b in INCEPTION_V3_BRANCHES[kind]]
    return out


def _numbered(layers: set[str], base: str) -> list[str]:
    """``base``, ``base_1``, ``base_2`` ... sorted by number (no suffix = 0)."""
    found = [(int(m[1] or 0), n) for n in layers if (m := re.fullmatch(rf"{base}(?:_(\d+))?", n))]
    return [n for _, n in sorted(found)]


def _inception_v3(r: _Reader) -> None:
    layers = {k.rpartition("/")[0] for k in r.sd}
    convs = _numbered(layers, "conv2d")
    norms = _numbered(layers, "batch_normalization")
    ours = inception_v3_order()
    if not len(convs) == len(norms) == len(ours):
        raise CheckpointFormatError(
            f"a Keras InceptionV3 file has {len(ours)} conv2d and batch_normalization layers, "
            f"this one {len(convs)} and {len(norms)}"
        )
    for conv, norm, prefix in zip(convs, norms, ours, strict=True):
        r.conv(conv, f"{prefix}.conv")
        r.bn(norm, f"{prefix}.bn")  # no gamma: scale=False
    r.dense("predictions", "head.fc")


# Xception: Keras blocks 2 .. 13 are our XceptionBlocks (nets.xception.BLOCKS) in their
# stages; the four strided blocks' 1x1 shortcut convs and their BatchNorms have no names of
# their own (``conv2d``, ``batch_normalization``, numbered in creation order, as in
# Inception v3), one per strided block, in block order.
XCEPTION_BLOCKS = (
    "stages.0.0", "stages.1.0", *(f"stages.2.{j}" for j in range(9)), "stages.3.0",
)  # fmt: skip
XCEPTION_SKIPS = ("stages.0.0", "stages.1.0", "stages.2.0", "stages.3.0")


def _xception(r: _Reader) -> None:
    r.conv("block1_conv1", "stem.conv1.conv")
    r.bn("block1_conv1_bn", "stem.conv1.bn")
    r.conv("block1_conv2", "stem.conv2.conv")
    r.bn("block1_conv2_bn", "stem.conv2.bn")
    for k, ours in enumerate(XCEPTION_BLOCKS, start=2):
        reps = 3 if 5 <= k <= 12 else 2  # the middle flow's blocks have three
        for j in range(reps):
            r.separable(f"block{k}_sepconv{j + 1}", f"{ours}.convs.{j}.conv")
            r.bn(f"block{k}_sepconv{j + 1}_bn", f"{ours}.convs.{j}.bn")
    layers = {k.rpartition("/")[0] for k in r.sd}
    convs, norms = _numbered(layers, "conv2d"), _numbered(layers, "batch_normalization")
    if not len(convs) == len(norms) == len(XCEPTION_SKIPS):
        raise CheckpointFormatError(
            f"a Keras Xception file has {len(XCEPTION_SKIPS)} unnamed conv2d and "
            f"batch_normalization layers (the shortcuts), this one {len(convs)} and {len(norms)}"
        )
    for conv, norm, ours in zip(convs, norms, XCEPTION_SKIPS, strict=True):
        r.conv(conv, f"{ours}.skip.conv")
        r.bn(norm, f"{ours}.skip.bn")
    for j in (1, 2):
        r.separable(f"block14_sepconv{j}", f"stages.3.conv{j + 2}.conv")
        r.bn(f"block14_sepconv{j}_bn", f"stages.3.conv{j + 2}.bn")
    r.dense("predictions", "head.fc")


# InceptionResNetV2: Keras' conv2d_bn units are unnamed (conv2d_N / batch_normalization_N, in
# creation order, which is the order of our ConvNormActs below); named are only the residual
# blocks' 1x1 projections with a bias and no BatchNorm (``block35_1_conv`` .. ``block35_10``,
# ``block17_1`` .. ``block17_20``, ``block8_1`` .. ``block8_10``) and ``conv_7b``/``conv_7b_bn``.
IRV2_BRANCHES = {
    "block35": ("branch0", "branch1.0", "branch1.1", "branch2.0", "branch2.1", "branch2.2"),
    "block17": ("branch0", "branch1.0", "branch1.1", "branch1.2"),
    "block8": ("branch0", "branch1.0", "branch1.1", "branch1.2"),
}
IRV2_BLOCKS = (("block35", 2, 10), ("block17", 3, 20), ("block8", 4, 10))  # Keras name, stage, n


def inception_resnet_v2_order() -> list[str]:
    """Our ConvNormAct prefixes in Keras' creation order of its unnamed conv2d_bn (203)."""
    out = ["stem", "stages.0.conv2a", "stages.0.conv2b", "stages.1.conv3b", "stages.1.conv4a"]
    mixed = {
        "stages.2.mixed_5b": ("branch0", "branch1.0", "branch1.1", "branch2.0", "branch2.1",
                              "branch2.2", "branch3.1"),
        "stages.3.mixed_6a": ("branch0", "branch1.0", "branch1.1", "branch1.2"),
        "stages.4.mixed_7a": ("branch0.0", "branch0.1", "branch1.0", "branch1.1", "branch2.0",
                              "branch2.1", "branch2.2"),
    }  # fmt: skip
    for (module, branches), (kind, stage, n) in zip(mixed.items(), IRV2_BLOCKS, strict=True):
        out += [f"{module}.{b}" for b in branches]
        for i in range(n):
            out += [f"stages.{stage}.{i}.{b}" for b in IRV2_BRANCHES[kind]]
    return out


def _inception_resnet_v2(r: _Reader) -> None:
    layers = {k.rpartition("/")[0] for k in r.sd}
    convs = _numbered(layers, "conv2d")
    norms = _numbered(layers, "batch_normalization")
    ours = inception_resnet_v2_order()
    if not len(convs) == len(norms) == len(ours):
        raise CheckpointFormatError(
            f"a Keras InceptionResNetV2 file has {len(ours)} unnamed conv2d and "
            f"batch_normalization layers, this one {len(convs)} and {len(norms)}"
        )
    for conv, norm, prefix in zip(convs, norms, ours, strict=True):
        r.conv(conv, f"{prefix}.conv")
        r.bn(norm, f"{prefix}.bn")  # no gamma: scale=False
    for kind, stage, n in IRV2_BLOCKS:
        for i in range(n):
            r.conv(f"{kind}_{i + 1}_conv", f"stages.{stage}.{i}.project")  # with its bias
    r.conv("conv_7b", "stages.4.conv7b.conv")
    r.bn("conv_7b_bn", "stages.4.conv7b.bn")
    r.dense("predictions", "head.fc")


@dataclass(frozen=True)
class KerasModel:
    keras_name: str  # keras.applications.<name>
    arch: str  # ours
    mode: str  # preprocessing mode
    input_size: int
    convert: Callable[[_Reader], None]
    weights_dir: str  # under KERAS_BASE_URL
    file: str  # with the top
    notop_file: str
    md5: tuple[str, str]  # keras.applications' file_hash (MD5) of the two files, "" if none
    top1: float  # keras.io/api/applications (top-1, ImageNet val)
    top5: float


def _std(name: str) -> tuple[str, str]:
    return (
        f"{name}_weights_tf_dim_ordering_tf_kernels.h5",
        f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5",
    )


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
        KerasModel(
            "VGG16",
            "vgg16",
            "caffe",
            224,
            lambda r: _vgg(r, (2, 2, 3, 3, 3)),
            "vgg16/",
            *_std("vgg16"),
            ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
            71.3,
            90.1,
        ),
        KerasModel(
            "VGG19",
            "vgg19",
            "caffe",
            224,
            lambda r: _vgg(r, (2, 2, 4, 4, 4)),
            "vgg19/",
            *_std("vgg19"),
            ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
            71.3,
            90.0,
        ),
        KerasModel(
            "ResNet50",
            "keras_resnet50",
            "caffe",
            224,
            _resnet50,
            "resnet/",
            *_std("resnet50"),
            ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
            74.9,
            92.1,
        ),
        KerasModel(
            "MobileNet",
            "keras_mobilenet",
            "tf",
            224,
            _mobilenet,
            "mobilenet/",
            "mobilenet_1_0_224_tf.h5",
            "mobilenet_1_0_224_tf_no_top.h5",
            ("", ""),  # keras.applications gives no file_hash for MobileNet
            70.4,
            89.5,
        ),
        KerasModel(
            "MobileNetV2",
            "keras_mobilenet_v2",
            "tf",
            224,
            _mobilenet_v2,
            "mobilenet_v2/",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            ("", ""),  # none given either
            71.3,
            90.1,
        ),
        KerasModel(
            "DenseNet121",
            "keras_densenet121",
            "torch",
            224,
            lambda r: _densenet(r, (6, 12, 24, 16)),
            "densenet/",
            *_std("densenet121"),
            ("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
            75.0,
            92.3,
        ),
        KerasModel(
            "DenseNet169",
            "keras_densenet169",
            "torch",
            224,
            lambda r: _densenet(r, (6, 12, 32, 32)),
            "densenet/",
            *_std("densenet169"),
            ("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
            76.2,
            93.2,
        ),
        KerasModel(
            "DenseNet201",
            "keras_densenet201",
            "torch",
            224,
            lambda r: _densenet(r, (6, 12, 48, 32)),
            "densenet/",
            *_std("densenet201"),
            ("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
            77.3,
            93.6,
        ),
        KerasModel(
            "InceptionV3",
            "keras_inception_v3",
            "tf",
            299,
            _inception_v3,
            "inception_v3/",
            *_std("inception_v3"),
            ("9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63"),
            77.9,
            93.7,
        ),
        KerasModel(
            "Xception",
            "keras_xception",
            "tf",
            299,
            _xception,
            "xception/",
            *_std("xception"),
            ("0a58e3b7378bc2990ea3b43d5981f1f6", "b0042744bf5b25fce3cb969f33bebb97"),
            79.0,
            94.5,
        ),
        KerasModel(
            "InceptionResNetV2",
            "keras_inception_resnet_v2",
            "tf",
            299,
            _inception_resnet_v2,
            "inception_resnet_v2/",
            *_std("inception_resnet_v2"),
            ("e693bd0210a403b3192acc6073ad2e96", "d19885ff4a710c122648d3b5c3b684e4"),
            80.3,
            95.3,
        ),
    )
}
ARCHS = {m.arch: m for m in MODELS.values()}

# Our parameter counts (= Keras' trainable parameters) with and without the top; Keras' totals
# add BatchNorm's moving statistics (REFERENCE.md; tests/test_keras.py checks both).
PARAMS: dict[str, tuple[int, int]] = {
    "VGG16": (138_357_544, 14_714_688),
    "VGG19": (143_667_240, 20_024_384),
    "ResNet50": (25_583_592, 23_534_592),
    "MobileNet": (4_231_976, 3_206_976),
    "MobileNetV2": (3_504_872, 2_223_872),
    "DenseNet121": (7_978_856, 6_953_856),
    "DenseNet169": (14_149_480, 12_484_480),
    "DenseNet201": (20_013_928, 18_092_928),
    "InceptionV3": (23_817_352, 21_768_352),
    "Xception": (22_855_952, 20_806_952),
    "InceptionResNetV2": (55_813_192, 54_276_192),
}


def _max_index(names: set[str], pattern: str) -> int:
    found = [int(m[1]) for n in names if (m := re.fullmatch(pattern, n))]
    return max(found, default=0)


def identify(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The keras.applications model a Keras state dict holds, from its layer names (None if it
    is none of those we convert)."""
    layers = {k.rpartition("/")[0] for k in normalise(state_dict)}
    if "block1_conv1" in layers and "block14_sepconv2" in layers:
        return "Xception"
    if "conv_7b" in layers and "block8_10_conv" in layers:
        return "InceptionResNetV2"
    if "block1_conv1" in layers and "block5_conv3" in layers:
        return "VGG19" if "block5_conv4" in layers else "VGG16"
    if "conv1_conv" in layers and "conv5_block3_3_conv" in layers:
        # ResNet101/152 have more blocks in conv4; ResNet50 has six.
        return "ResNet50" if _max_index(layers, r"conv4_block(\d+)_3_conv") == 6 else None
    if "conv_dw_13" in layers and "conv_pw_13" in layers:
        kernel = state_dict.get("conv1/kernel")
        return "MobileNet" if kernel is not None and kernel.shape[-1] == 32 else None
    if "block_16_project" in layers and "Conv1" in layers:
        kernel = state_dict.get("Conv_1/kernel")
        return "MobileNetV2" if kernel is not None and kernel.shape[-1] == 1280 else None
    if "conv1_conv" in layers and "conv2_block1_0_bn" in layers:
        blocks = (
            _max_index(layers, r"conv4_block(\d+)_1_conv"),
            _max_index(layers, r"conv5_block(\d+)_1_conv"),
        )
        return {(24, 16): "DenseNet121", (32, 32): "DenseNet169", (48, 32): "DenseNet201"}.get(
            blocks
        )
    if (
        len(_numbered(layers, "conv2d")) == 94
        and len(_numbered(layers, "batch_normalization")) == 94
    ):
        return "InceptionV3"
    return None


def has_top(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether a Keras file carries the classifier (include_top=True)."""
    return any(k.startswith(("predictions/", "conv_preds/")) for k in state_dict)


def _what(state_dict: Mapping[str, torch.Tensor]) -> str:
    layers = sorted({k.rpartition("/")[0] for k in state_dict})
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


def convert(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    name = identify(state_dict)
    if name is None or MODELS[name].arch != arch:
        reject(arch, state_dict)
    reader = _Reader(state_dict)
    MODELS[name].convert(reader)
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
    meta.update(preprocessing(m.mode, m.input_size).as_metadata())
    return meta


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
    KERAS, list(ARCHS), looks_like, convert, container=KERAS_H5, reject=reject, describe=describe
)


# -- tags --------------------------------------------------------------------------------------
# <arch>.keras_in1k (with the top) and <arch>.keras_notop_in1k; the default for the *_keras
# archs (VGG16/19 keep torchvision's as default). keras.applications verifies these files
# with MD5 (its file_hash), which WeightTag has no field for: sha256 is left empty (the store
# records the digest it sees) and the MD5 is in the notes.
TAG_MODES: dict[str, str] = {}


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
                    url=KERAS_BASE_URL + m.weights_dir + file_name,
                    preprocessing=preprocessing(m.mode, m.input_size),
                    top1=m.top1,
                    top5=m.top5,
                    num_params=PARAMS[m.keras_name][int(notop)],
                    notes=(
                        f"keras.applications.{m.keras_name} ImageNet weights"
                        + (" without the top (include_top=False)" if notop else "")
                        + f", preprocessing mode {m.mode!r}"
                        + ("" if md5 else "; keras.applications publishes no checksum for it")
                        + "; top-1/top-5 from https://keras.io/api/applications/"
                    ),
                ),
                default=not notop and m.arch.startswith("keras_"),
            )


_register_tags()
