"""The decoder of U-Net (Ronneberger, Fischer and Brox, 2015, "U-Net: Convolutional Networks
for Biomedical Image Segmentation"): upsample, concatenate the encoder's map of the same
resolution (the skip connection), two 3x3 convs; repeated up to the input's resolution.

Numeric conventions are arguments: ``padding="valid"`` is the paper's unpadded convs (the
skip is centre-cropped to the upsampled map), ``"same"`` keeps sizes (the upsampled map is
centre-padded or cropped to the skip when an odd size was halved on the way down);
``upsample="transpose"`` is the paper's 2x2 up-convolution to ``out_chs`` channels,
``"bilinear"`` a parameter-free resize that keeps the channels; ``norm`` puts BatchNorm
after each conv (the paper has none, and its convs have biases).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .core import ActLayer, ConvNormAct, NormLayer, ReLU

__all__ = ["DoubleConv", "UNetDecoder", "UNetDecoderBlock"]

PADDINGS = ("same", "valid")
UPSAMPLES = ("transpose", "bilinear")


class DoubleConv(nn.Sequential):
    """Two 3x3 conv(-BN)-ReLU, ``conv1`` and ``conv2``: each level of U-Net's both paths."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        padding: str = "same",
        norm: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        if padding not in PADDINGS:
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        pad = 1 if padding == "same" else 0
        # Without BatchNorm the convs carry biases, as in the paper; with it, none.
        kw = dict(
            norm=norm, bias=not norm, eps=eps, momentum=momentum, norm_layer=norm_layer, act=act
        )
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, out_chs, 3, 1, pad, **kw)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, 1, pad, **kw)
        self.out_chs = out_chs


def _centre_fit(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` centre-cropped or zero-padded to ``like``'s height and width (negative padding
    crops): one traceable expression, whatever the sizes."""
    dh = like.shape[-2] - x.shape[-2]
    dw = like.shape[-1] - x.shape[-1]
    return F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])


class UNetDecoderBlock(nn.Module):
    """Upsample ``x`` by ``scale``, concatenate ``skip`` (skip first, as in the paper's
    figure), two 3x3 convs to ``out_chs``. ``skip_chs=0``: no skip (the levels below an
    encoder's first stage)."""

    def __init__(
        self,
        in_chs: int,
        skip_chs: int,
        out_chs: int,
        *,
        scale: int = 2,
        upsample: str = "transpose",
        padding: str = "same",
        norm: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be 'transpose' or 'bilinear', got {upsample!r}")
        if upsample == "transpose":
            # The paper's "up-convolution": a 2x2 stride-2 transposed conv that also halves
            # the channels (to out_chs, the width of this level).
            self.up = nn.ConvTranspose2d(in_chs, out_chs, scale, scale)
            up_chs = out_chs
        else:
            self.up = nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False)
            up_chs = in_chs
        self.padding = padding
        self.skip_chs = skip_chs
        self.convs = DoubleConv(
            up_chs + skip_chs,
            out_chs,
            padding=padding,
            norm=norm,
            eps=eps,
            momentum=momentum,
            norm_layer=norm_layer,
            act=act,
        )
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)  # (N, C_in, H, W) -> (N, C_up, sH, sW)
        if skip is not None:
            if self.padding == "valid":
                skip = _centre_fit(skip, x)  # the paper crops the larger encoder map
            else:
                x = _centre_fit(x, skip)  # an odd size halved on the way down
            x = torch.cat([skip, x], 1)  # (N, C_skip + C_up, H', W')
        return self.convs(x)


class UNetDecoder(nn.Module):
    """The expanding path: one ``UNetDecoderBlock`` per skip, deepest first, then blocks
    without skips until ``final_scale`` more doublings are done.

    ``encoder_channels`` and ``encoder_reductions`` describe the encoder's maps, shallowest
    first (``feature_info``); the deepest is the decoder's input, the shallower ones are the
    skips. Where two maps share a reduction, the deeper one is the skip. ``forward`` takes
    the list of maps and returns the last block's output.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_reductions: Sequence[int],
        decoder_channels: Sequence[int] | None = None,
        *,
        upsample: str = "transpose",
        padding: str = "same",
        norm: bool = True,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        if len(encoder_channels) != len(encoder_reductions) or not encoder_channels:
            raise ValueError("encoder_channels and encoder_reductions must be equally long")
        # For each reduction, the deepest map that has it; then shallowest first.
        by_reduction: dict[int, int] = {}
        for i, r in enumerate(encoder_reductions):
            by_reduction[r] = i
        deepest = len(encoder_channels) - 1
        bottom = encoder_reductions[deepest]
        self.skip_indices = sorted(
            (i for r, i in by_reduction.items() if r < bottom), key=lambda i: -encoder_reductions[i]
        )
        # (scale, skip channels) of each block: one per skip, then doublings to stride 1.
        plan: list[tuple[int, int]] = []
        reduction = bottom
        for i in self.skip_indices:
            plan.append((reduction // encoder_reductions[i], encoder_channels[i]))
            reduction = encoder_reductions[i]
        while reduction > 1:
            plan.append((2, 0))
            reduction //= 2
        if decoder_channels is None:
            decoder_channels = default_decoder_channels(len(plan))
        if len(decoder_channels) != len(plan):
            raise ValueError(
                f"decoder_channels needs {len(plan)} widths for this encoder, "
                f"got {len(decoder_channels)}"
            )
        kw = dict(
            upsample=upsample,
            padding=padding,
            norm=norm,
            eps=eps,
            momentum=momentum,
            norm_layer=norm_layer,
        )
        blocks, in_chs = [], encoder_channels[deepest]
        for (scale, skip_chs), out_chs in zip(plan, decoder_channels, strict=True):
            blocks.append(UNetDecoderBlock(in_chs, skip_chs, out_chs, scale=scale, act=act, **kw))
            in_chs = out_chs
        self.blocks = nn.ModuleList(blocks)
        self.out_chs = in_chs

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = [features[i] for i in self.skip_indices]
        for k, block in enumerate(self.blocks):
            x = block(x, skips[k] if k < len(skips) else None)
        return x


def default_decoder_channels(n: int) -> tuple[int, ...]:
    """256, 128, 64, 32, 16 (segmentation_models' widths), the last ``n`` of them; more
    blocks than five start wider."""
    widths = (256, 128, 64, 32, 16)
    if n <= len(widths):
        return widths[len(widths) - n :]
    return tuple(16 * 2 ** (n - 1 - k) for k in range(n))
