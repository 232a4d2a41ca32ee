"""DenseNet's pieces (Huang et al., 2017): the dense layer, the dense block and the
transition between blocks.

Every layer is pre-activation (BatchNorm, ReLU, then the conv), and a dense block hands each
layer the concatenation of the block input and all earlier layers' outputs. Children keep
torchvision's names (``norm1``, ``conv1``, ``norm2``, ``conv2``; ``norm``, ``conv``) so that
converting its checkpoints is a renaming of the parents only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .core import ActLayer, NormLayer, ReLU, make_norm

__all__ = ["DenseBlock", "DenseLayer", "Transition"]


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv to ``bn_size * growth_rate`` channels (the bottleneck), then
    BN-ReLU-3x3 conv to ``growth_rate`` new channels (DenseNet-BC's composite function).

    ``forward`` takes the block's feature list (or one tensor) and returns only the new
    features; the block concatenates. ``memory_efficient=True`` recomputes the bottleneck
    (concatenation, norm1, act1, conv1) during backward instead of storing it (Pleiss et al.,
    2017, "Memory-Efficient Implementation of DenseNets"): the concatenated input is the
    large activation, and it is rebuilt on demand. Outputs, gradients and BatchNorm buffers
    are the same as without it. ``drop_rate`` is dropout on the new features.
    """

    def __init__(
        self,
        in_chs: int,
        growth_rate: int,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        *,
        memory_efficient: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bias: bool = False,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        mid = bn_size * growth_rate
        self.norm1 = make_norm(in_chs, norm_layer, eps, momentum)
        self.act1 = act()
        self.conv1 = nn.Conv2d(in_chs, mid, 1, bias=bias)
        self.norm2 = make_norm(mid, norm_layer, eps, momentum)
        self.act2 = act()
        self.conv2 = nn.Conv2d(mid, growth_rate, 3, padding=1, bias=bias)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient
        self.in_chs, self.out_chs = in_chs, growth_rate

    def bottleneck(self, features: list[torch.Tensor], update_stats: bool = True) -> torch.Tensor:
        x = torch.cat(features, 1)
        x = self.norm1(x) if update_stats else self._norm1_without_update(x)
        return self.conv1(self.act1(x))

    def _norm1_without_update(self, x: torch.Tensor) -> torch.Tensor:
        """``norm1(x)`` without changing its running statistics or step counter.

        Gradient checkpointing runs the bottleneck twice in training, once forward and once
        again during backward; a plain BatchNorm would fold the batch into its running mean
        and variance twice. The recomputation therefore runs the same operation with momentum
        0 (running = 1 * running + 0 * batch, exactly the old values), so it saves the same
        tensors for backward, as checkpointing requires, and gives the same numbers. Another
        ``norm_layer`` (GroupNorm, FrozenBatchNorm2d) keeps no statistics to protect.
        """
        norm = self.norm1
        # Only a BatchNorm keeps statistics. hasattr, not isinstance: TorchScript decides it
        # when compiling, and compiles both sides of an "and" (hence the nested ifs).
        if hasattr(norm, "track_running_stats"):
            if norm.training and norm.track_running_stats:
                mean, var = norm.running_mean, norm.running_var
                return F.batch_norm(x, mean, var, norm.weight, norm.bias, True, 0.0, norm.eps)
        return norm(x)

    def _checkpointed_bottleneck(self, features: list[torch.Tensor]) -> torch.Tensor:
        calls = []

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            # The first call is the forward pass, any later one the recomputation.
            calls.append(None)
            return self.bottleneck(list(inputs), update_stats=len(calls) == 1)

        return checkpoint(run, *features, use_reentrant=False)

    def forward(self, features: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        inputs = [features] if isinstance(features, torch.Tensor) else features
        # TorchScript compiles no checkpoint: a scripted layer keeps its bottleneck in memory.
        if self.memory_efficient and torch.is_grad_enabled() and not torch.jit.is_scripting():
            x = self._checkpointed_bottleneck(inputs)
        else:
            x = self.bottleneck(inputs)
        x = self.conv2(self.act2(self.norm2(x)))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class DenseBlock(nn.ModuleList):
    """``num_layers`` dense layers; layer i reads ``in_chs + i * growth_rate`` channels and
    the block returns all of them concatenated: ``in_chs + num_layers * growth_rate``.

    Keyword arguments (``bn_size``, ``drop_rate``, ``memory_efficient``, ``eps``, ...) go to
    every ``DenseLayer``.
    """

    def __init__(self, num_layers: int, in_chs: int, growth_rate: int, **layer_kwargs) -> None:
        super().__init__(
            DenseLayer(in_chs + i * growth_rate, growth_rate, **layer_kwargs)
            for i in range(num_layers)
        )
        self.in_chs = in_chs
        self.out_chs = in_chs + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A list, not a running concatenation: each layer concatenates once (inside the
        # checkpoint when memory-efficient), so no intermediate concatenation is kept.
        features = [x]
        for layer in self:
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """Between dense blocks: BN-ReLU-1x1 conv (compression, DenseNet-BC halves the channels)
    then a 2x2 average pool that halves the spatial size."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        norm_layer: NormLayer | None = None,
        bias: bool = False,
        act: ActLayer = ReLU,
    ) -> None:
        super().__init__()
        self.norm = make_norm(in_chs, norm_layer, eps, momentum)
        self.act = act()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=bias)
        self.pool = nn.AvgPool2d(2, 2)
        self.in_chs, self.out_chs = in_chs, out_chs
