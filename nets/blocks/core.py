"""The basic pieces: convolutions, residual blocks, depthwise-separable and inverted
residual blocks; each usable on its own.

Numeric conventions that pretrained weights depend on are explicit arguments:
BatchNorm ``eps`` and ``momentum``, conv ``bias``, TF-style ``padding="same"``,
the activation. Children have stable names (``conv``, ``bn``, ``act``; ``conv1``...
``downsample``; ``expand``, ``depthwise``, ``project``) that the weight converters map onto.
``norm_layer`` replaces every BatchNorm (``torchvision.ops.FrozenBatchNorm2d`` for a
detection backbone, ``lambda c: nn.GroupNorm(32, c)``) under the same child name.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

__all__ = [
    "ActLayer",
    "BasicBlock",
    "Bottleneck",
    "Conv2dSame",
    "ConvNormAct",
    "DepthwiseSeparable",
    "InvertedResidual",
    "MaxPool2dSame",
    "NormLayer",
    "ReLU",
    "ReLU6",
    "make_conv",
    "make_divisible",
    "make_norm",
]

ActLayer = Callable[[], nn.Module]
# A normalisation of num_channels channels, as torchvision's builders take it.
NormLayer = Callable[[int], nn.Module]
ReLU: ActLayer = partial(nn.ReLU, inplace=True)
ReLU6: ActLayer = partial(nn.ReLU6, inplace=True)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding, worked out for each input size.

    TF pads so that the output is ceil(input / stride); when the total padding is odd the
    extra pixel goes at the bottom and right, which a symmetric PyTorch padding cannot express.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        # Not super().forward: TorchScript compiles no super() call.
        return self._conv_forward(x, self.weight, self.bias)


class MaxPool2dSame(nn.MaxPool2d):
    """MaxPool2d with TensorFlow's "SAME" padding (Keras' ``padding="same"``), worked out for
    each input size: the output is ceil(input / stride), the padded pixels never win the max
    (they are -inf), and an odd total padding puts the extra pixel at the bottom and right.
    For a 3x3/2 pool that matches ``nn.MaxPool2d(3, 2, 1)`` on odd sizes only: on an even
    size TF pads (0, 1) where the symmetric pool pads (1, 1), and the windows differ.
    """

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        kernel = (k, k) if isinstance(k, int) else tuple(k)
        stride = (s, s) if isinstance(s, int) else tuple(s)
        x = pad_same(x, kernel, stride, (1, 1), float("-inf"))
        # Not super().forward: TorchScript compiles no super() call.
        return F.max_pool2d(x, self.kernel_size, self.stride, 0, self.dilation, self.ceil_mode)


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> int:
    out = math.ceil(size / stride)
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def pad_same(
    x: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    value: float = 0.0,
) -> torch.Tensor:
    """Pad ``x`` as TF's "SAME" does for this kernel, stride and dilation (the extra pixel
    of an odd total at the bottom and right); unchanged when no padding is needed."""
    pad_h = _same_pad(x.shape[-2], kernel[0], stride[0], dilation[0])
    pad_w = _same_pad(x.shape[-1], kernel[1], stride[1], dilation[1])
    if pad_h or pad_w:
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=value)
    return x


# The padding depends on the input's size, which torch.fx's symbolic trace does not know:
# recorded as one call, it is worked out from the real size each time the graph runs
# (torchvision's create_feature_extractor and every FX tool). timm does the same.
torch.fx.wrap("pad_same")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below ``min_value``
    (default ``divisor``) nor more than 10% below ``value``: the rounding of Google's
    MobileNet code, used by torchvision and timm for every scaled width."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def make_conv(
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | str | None = None,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
) -> nn.Conv2d:
    """A Conv2d; ``padding=None`` is symmetric ``(k - 1) // 2``, ``"same"`` is TF's SAME."""
    if padding == "same":
        if stride == 1 and (kernel_size - 1) * dilation % 2 == 0:
            # At stride 1 with an odd kernel TF's SAME is symmetric: a plain conv is cheaper.
            padding = (kernel_size - 1) * dilation // 2
        else:
            return Conv2dSame(
                in_chs, out_chs, kernel_size, stride, dilation=dilation, groups=groups, bias=bias
            )
    elif padding is None:
        padding = (kernel_size - 1) * dilation // 2
    elif isinstance(padding, str):
        raise ValueError(f"padding must be an int, None or 'same', got {padding!r}")
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias)


def make_norm(
    channels: int, norm_layer: NormLayer | None = None, eps: float = 1e-5, momentum: float = 0.1
) -> nn.Module:
    """``norm_layer(channels)``; without one, BatchNorm with ``eps`` and ``momentum`` (the
    numbers the family's weights were trained with). A ``norm_layer`` that takes ``eps`` or
    ``momentum`` (``FrozenBatchNorm2d``, ``nn.BatchNorm2d``) gets the family's too, unless a
    ``functools.partial`` already fixed them: a Keras network's weights were trained with
    eps 1e-3, and FrozenBatchNorm2d's own 1e-5 would change every output."""
    if norm_layer is None:
        return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    try:
        takes = set(inspect.signature(norm_layer).parameters)
    except (TypeError, ValueError):  # a callable whose signature cannot be read
        takes = set()
    fixed = set(norm_layer.keywords) if isinstance(norm_layer, functools.partial) else set()
    family = {"eps": eps, "momentum": momentum}
    return norm_layer(channels, **{k: v for k, v in family.items() if k in takes - fixed})


class ConvNormAct(nn.Sequential):
    """Conv, then BatchNorm (optional), then an activation (optional).

    ``eps``/``momentum`` are PyTorch BatchNorm's (Keras momentum m is PyTorch's 1 - m);
    ``norm_layer`` replaces the BatchNorm (``make_norm``).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | str | None = None,
        *,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer | None = ReLU,
    ) -> None:
        super().__init__()
        self.conv = make_conv(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias)
        if norm:
            self.bn = make_norm(out_chs, norm_layer, eps, momentum)
        if act is not None:
            self.act = act()
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut: ResNet-18/34.

    ``attn`` (for example squeeze-and-excitation) is applied to the residual branch
    before the addition, as in SE-ResNet. ``dilation`` dilates the 3x3 convs, and
    ``first_dilation`` (default ``dilation``) the first one: in the first block of a stage
    that dilates instead of striding, it keeps the previous stage's (as torchvision's and
    timm's ResNets do for an output stride of 16 or 8).
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        *,
        dilation: int = 1,
        first_dilation: int | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
        attn: Callable[[int], nn.Module] | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        first = dilation if first_dilation is None else first_dilation
        self.conv1 = ConvNormAct(in_chs, planes, 3, stride, dilation=first, act=act, **bn)
        self.conv2 = ConvNormAct(planes, out_chs, 3, 1, dilation=dilation, act=None, **bn)
        self.attn = attn(out_chs) if attn else nn.Identity()
        self.downsample = _shortcut(in_chs, out_chs, stride, bn)
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path else nn.Identity()
        self.act = act()
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.attn(self.conv2(self.conv1(x)))
        return self.act(self.drop_path(x) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a shortcut: ResNet-50/101/152.

    ``stride_in_1x1=False`` puts the stride on the 3x3 conv (torchvision's "v1.5", the
    layout of its weights); ``True`` puts it on the first 1x1 (the original paper, Caffe,
    Keras and the SENet authors' models). ``bias=True`` gives every conv a bias, as Keras has.
    The 3x3 conv is dilated by ``first_dilation`` (default ``dilation``): the block's one
    3x3 conv is its first, which in the first block of a dilated stage keeps the previous
    stage's dilation (torchvision's ``previous_dilation``).
    """

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        *,
        stride_in_1x1: bool = False,
        dilation: int = 1,
        first_dilation: int | None = None,
        bias: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
        attn: Callable[[int], nn.Module] | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        kw = dict(eps=eps, momentum=momentum, norm_layer=norm_layer, bias=bias)
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        d3 = dilation if first_dilation is None else first_dilation
        self.conv1 = ConvNormAct(in_chs, planes, 1, s1, act=act, **kw)
        self.conv2 = ConvNormAct(planes, planes, 3, s3, dilation=d3, act=act, **kw)
        self.conv3 = ConvNormAct(planes, out_chs, 1, 1, act=None, **kw)
        self.attn = attn(out_chs) if attn else nn.Identity()
        self.downsample = _shortcut(in_chs, out_chs, stride, kw)
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path else nn.Identity()
        self.act = act()
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.attn(self.conv3(self.conv2(self.conv1(x))))
        return self.act(self.drop_path(x) + shortcut)


def _shortcut(in_chs: int, out_chs: int, stride: int, kw: dict) -> ConvNormAct | None:
    if stride == 1 and in_chs == out_chs:
        return None
    return ConvNormAct(in_chs, out_chs, 1, stride, act=None, **kw)


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk conv then pointwise 1x1 conv (MobileNet v1; EfficientNet's first block).

    ``pw_act`` adds an activation after the pointwise conv (MobileNet v1 has one; the
    linear-bottleneck blocks of EfficientNet do not). ``residual`` adds the input when the
    shapes allow (stride 1, same channels).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        kernel_size: int = 3,
        *,
        padding: int | str | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
        pw_act: bool = True,
        residual: bool = False,
        attn: Callable[[int], nn.Module] | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        self.depthwise = ConvNormAct(
            in_chs, in_chs, kernel_size, stride, padding, groups=in_chs, act=act, **bn
        )
        self.attn = attn(in_chs) if attn else nn.Identity()
        self.pointwise = ConvNormAct(in_chs, out_chs, 1, act=act if pw_act else None, **bn)
        self.has_residual = residual and stride == 1 and in_chs == out_chs
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path else nn.Identity()
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.attn(self.depthwise(x)))
        return self.drop_path(out) + x if self.has_residual else out


class InvertedResidual(nn.Module):
    """1x1 expansion, depthwise kxk, 1x1 linear projection, residual when shapes match.

    The MobileNetV2 block and EfficientNet's MBConv (with ``attn`` set to an SE module).
    With ``expand_ratio == 1`` there is no expansion conv.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        expand_ratio: float = 6,
        kernel_size: int = 3,
        *,
        padding: int | str | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU6,
        attn: Callable[[int], nn.Module] | None = None,
        drop_path: float = 0.0,
        mid_chs: int | None = None,
    ) -> None:
        super().__init__()
        bn = dict(eps=eps, momentum=momentum, norm_layer=norm_layer)
        mid = mid_chs if mid_chs is not None else round(in_chs * expand_ratio)
        self.expand = ConvNormAct(in_chs, mid, 1, act=act, **bn) if mid != in_chs else None
        self.depthwise = ConvNormAct(
            mid, mid, kernel_size, stride, padding, groups=mid, act=act, **bn
        )
        self.attn = attn(mid) if attn else nn.Identity()
        self.project = ConvNormAct(mid, out_chs, 1, act=None, **bn)
        self.has_residual = stride == 1 and in_chs == out_chs
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path else nn.Identity()
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.attn(self.depthwise(out)))
        return self.drop_path(out) + x if self.has_residual else out
