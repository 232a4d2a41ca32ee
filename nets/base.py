"""The anatomy every network shares: ``stem``, ``stages``, ``head``.

``forward_features`` runs stem and stages; ``forward_head`` runs the head. Each stage
ends where the spatial size halves, so ``feature_info[i]`` gives stage i's channels and
stride (reduction), and freezing, feature pyramids and layer-wise learning rates need no
per-family code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .errors import InputSizeError

POOLINGS = ("avg", "max", None)

# torch>=2.5 names symbolic tracing apart from dynamo's use of FX; older torch only has
# is_fx_tracing (which dynamo does not set either when compiling a check like ours).
_fx_tracing = getattr(
    torch.fx._symbolic_trace, "is_fx_symbolic_tracing", torch.fx._symbolic_trace.is_fx_tracing
)


@dataclass(frozen=True)
class FeatureInfo:
    stage: int
    channels: int
    reduction: int  # the stage output's stride relative to the input
    module: str  # e.g. "stages.2"


class AuxOutputs(NamedTuple):
    """What a network with auxiliary classifiers returns in training mode (aux enabled).

    ``logits`` is the main classifier's output; ``aux`` the auxiliary classifiers' outputs,
    from the shallowest to the deepest. A trainer weights the losses, e.g.
    ``loss = ce(out.logits, y) + 0.3 * sum(ce(a, y) for a in out.aux)``. In eval mode these
    networks return the main logits alone, like every other network.
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


def _global_pool(pooling: str | None) -> nn.Module:
    if pooling == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if pooling == "max":
        return nn.AdaptiveMaxPool2d(1)
    return nn.Identity()


class ClassifierHead(nn.Module):
    """Global pooling, dropout and one Linear classifier (``fc``).

    ``include_top=False`` keeps only the pooling, as keras.applications does: ``"avg"`` or
    ``"max"`` give a (N, C) vector, ``None`` returns the feature map unchanged.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 1000,
        pooling: str | None = "avg",
        drop_rate: float = 0.0,
        include_top: bool = True,
    ) -> None:
        super().__init__()
        if include_top and pooling is None:
            raise ValueError("pooling=None returns feature maps and needs include_top=False")
        self.pooling = pooling
        self.pool = _global_pool(pooling)
        self.flatten = nn.Flatten(1) if pooling else nn.Identity()
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes) if include_top else nn.Identity()
        self.num_features = in_features

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.pool(x))  # (N, C, H, W) -> (N, C)
        if pre_logits:
            return x
        return self.fc(self.drop(x))

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


class MLPHead(nn.Module):
    """The fully connected stack of LeNet, AlexNet and VGG: pool to a fixed grid, flatten,
    hidden Linear layers ``fc1``, ``fc2``, ... and the classifier ``fc``.

    ``dropout_first`` puts dropout before each hidden Linear (AlexNet as torchvision has it)
    instead of after its activation (VGG).
    """

    def __init__(
        self,
        in_channels: int,
        pool_size: int | tuple[int, int],
        hidden: Sequence[int],
        num_classes: int = 1000,
        *,
        drop_rate: float = 0.5,
        dropout_first: bool = False,
        act: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        grid = pool_size if isinstance(pool_size, tuple) else (pool_size, pool_size)
        width = in_channels * grid[0] * grid[1]
        self.dropout_first = dropout_first
        self.hidden_names = []
        for i, out in enumerate(hidden, start=1):
            setattr(self, f"fc{i}", nn.Linear(width, out))
            setattr(self, f"act{i}", act())
            setattr(self, f"drop{i}", nn.Dropout(drop_rate) if drop_rate else nn.Identity())
            self.hidden_names.append(i)
            width = out
        self.fc = nn.Linear(width, num_classes) if num_classes else nn.Identity()
        self.num_features = width
        self.pooling = "avg"

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)  # (N, C, h, w) -> (N, C*h*w)
        for i in self.hidden_names:
            fc, act, drop = (
                getattr(self, f"fc{i}"),
                getattr(self, f"act{i}"),
                getattr(self, f"drop{i}"),
            )
            x = act(fc(drop(x))) if self.dropout_first else drop(act(fc(x)))
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def fully_connected_head(
    in_channels: int,
    pool_size: int | tuple[int, int],
    hidden: Sequence[int],
    num_classes: int,
    *,
    include_top: bool,
    pooling: str | None,
    **kwargs,
) -> nn.Module:
    """LeNet/AlexNet/VGG's head: an ``MLPHead`` with the top; without it only a global
    pooling (the whole fully connected stack goes, as in keras.applications)."""
    if include_top:
        return MLPHead(in_channels, pool_size, hidden, num_classes, **kwargs)
    return ClassifierHead(in_channels, 0, pooling, include_top=False)


class Network(nn.Module):
    """Base class of every family: owns the anatomy and the shared methods.

    Subclasses set ``stem``, ``stages`` (an ``nn.Sequential`` of stages), ``head`` and
    ``feature_info``, and name ``first_conv`` (the key prefix of the first convolution).
    """

    first_conv: str = "stem.conv"
    classifier: str = "head.fc"
    # Key prefixes of parts a pretrained checkpoint may hold but a model may be built
    # without (auxiliary classifiers); create_model drops them only when the model has none.
    optional_parts: tuple[str, ...] = ("aux.",)

    def __init__(self, *, in_chans: int = 3, min_input_size: int = 32) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.min_input_size = min_input_size
        self.feature_info: list[FeatureInfo] = []
        # create_model sets a PretrainedCfg; a network built from its class has none yet.
        self.pretrained_cfg: Mapping = {}
        self.arch = type(self).__name__.lower()

    # -- construction helpers --------------------------------------------------------------
    def _set_stages(
        self, stages: Sequence[nn.Module], channels: Sequence[int], reductions: Sequence[int]
    ) -> None:
        self.stages = nn.Sequential(*stages)
        self.feature_info = [
            FeatureInfo(i, c, r, f"stages.{i}")
            for i, (c, r) in enumerate(zip(channels, reductions, strict=True))
        ]

    @property
    def num_features(self) -> int:
        """Channels of the feature map that ``forward_features`` returns."""
        return self.feature_info[-1].channels

    # -- the shared methods ----------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``InputSizeError`` for a wrong channel count or too small an input.

        Skipped while ``torch.fx`` traces symbolically: there ``x`` is a Proxy whose shape
        has no value, and a Python ``if`` on it would stop the trace (torchvision's
        ``create_feature_extractor`` and every FX tool). Eager calls, ``torch.jit.trace``,
        dynamo and ``torch.export`` see real (or symbolic-integer) shapes and keep it.
        """
        if _fx_tracing():
            return
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise InputSizeError(
                f"{self.arch} expects input of shape (N, {self.in_chans}, H, W), "
                f"got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h < self.min_input_size or w < self.min_input_size:
            raise InputSizeError(
                f"{self.arch} needs inputs of at least {self.min_input_size}x"
                f"{self.min_input_size} pixels, got {h}x{w}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.stages(self.stem(x))

    def stage_outputs(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The stem, then each stage in turn, yielding each stage's output (no input check).
        Feature extraction runs the stages through this; a family whose stages pass more than
        one tensor along (NASNet's cells read the last two outputs) overrides it."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            yield x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a new one of ``num_classes`` outputs (0: none)."""
        self.head.reset(num_classes)
        if isinstance(self.head.fc, nn.Linear):
            self.init_classifier(self.head.fc)

    def init_classifier(self, fc: nn.Linear) -> None:
        """The family's initialisation of a fresh classifier (PyTorch's default here)."""


class AuxClassifierNetwork(Network):
    """A network with optional auxiliary classifiers in ``self.aux`` (GoogLeNet, Inception
    v3): each reads the output of one stage module, ``self.aux_taps[k]`` = ``(stage index,
    module name)``. In training mode with aux heads, ``forward`` returns
    ``AuxOutputs(logits, aux)``, shallowest head first; otherwise the logits alone."""

    aux: nn.ModuleList
    aux_taps: tuple[tuple[int, str], ...] = ()

    @property
    def aux_classifiers(self) -> tuple[str, ...]:
        """Key prefixes of the aux heads' classifiers, replaced with the main one's."""
        return tuple(f"aux.{i}.fc" for i in range(len(self.aux)))

    def init_aux_classifier(self, fc: nn.Linear) -> None:
        self.init_classifier(fc)

    def reset_classifier(self, num_classes: int) -> None:
        """A new main classifier, and new auxiliary classifiers with the same classes."""
        super().reset_classifier(num_classes)
        for aux in self.aux:
            aux.reset(num_classes)
            self.init_aux_classifier(aux.fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutputs:
        if not (self.training and len(self.aux)):
            return super().forward(x)
        self.check_input(x)
        taps = dict(zip(self.aux_taps, self.aux, strict=True))
        x = self.stem(x)
        aux = []
        for i, stage in enumerate(self.stages):
            for name, module in stage.named_children():
                x = module(x)
                if (i, name) in taps:
                    aux.append(taps[(i, name)](x))
        return AuxOutputs(self.forward_head(x), tuple(aux))


def init_conv_bn(model: nn.Module, linear_std: float | None = None) -> None:
    """Kaiming-normal (fan-out) convs, unit BatchNorm, and Linear N(0, linear_std) if given.

    The initialisation torchvision gives ResNet and VGG (He et al., 2015).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def drop_bn_scale(model: nn.Module) -> None:
    """BatchNorm without the scale gamma (Keras' ``scale=False``): each BatchNorm keeps its
    shift (``bias``) and running statistics, and its ``weight`` becomes None, which
    ``F.batch_norm`` treats as 1. No ``weight`` key, and no parameter to count or train."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            del m.weight
            m.register_parameter("weight", None)


def stage_outputs(model: nn.Module, x: torch.Tensor) -> Iterator[torch.Tensor]:
    """``model.stage_outputs(x)`` for a ``Network``; for any other module with a ``stem`` and
    ``stages``, the stem and then each stage in turn."""
    if isinstance(model, Network):
        yield from model.stage_outputs(x)
        return
    x = model.stem(x)
    for stage in model.stages:
        x = stage(x)
        yield x
