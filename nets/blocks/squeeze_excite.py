"""Squeeze-and-excitation (Hu et al., 2018, "Squeeze-and-Excitation Networks")."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    """Global average pool, 1x1 reduce, activation, 1x1 expand, gate, rescale the input.

    The squeeze width is given either as ``reduction`` (channels / reduction, SENet's 16)
    or directly as ``squeeze_chs`` (MobileNetV3 and EfficientNet compute it from other
    widths); ``gate`` is the gating function (``nn.Sigmoid``, ``nn.Hardsigmoid``). Children:
    ``reduce`` and ``expand`` (1x1 convs with bias).
    """

    def __init__(
        self,
        channels: int,
        reduction: float | None = 16,
        *,
        squeeze_chs: int | None = None,
        act: Callable[[], nn.Module] = nn.ReLU,
        gate: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        if squeeze_chs is None:
            if not reduction:
                raise ValueError("SqueezeExcite needs reduction or squeeze_chs")
            squeeze_chs = max(1, int(channels / reduction))
        self.reduce = nn.Conv2d(channels, squeeze_chs, 1, bias=True)
        self.act = act()
        self.expand = nn.Conv2d(squeeze_chs, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (N, C, 1, 1)
        return x * self.gate(self.expand(self.act(self.reduce(s))))
