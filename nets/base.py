"""The anatomy every network shares: ``stem``, ``stages``, ``head``.

``forward_features`` runs stem and stages; ``forward_head`` runs the head. Each stage
ends where the spatial size halves, so ``feature_info[i]`` gives stage i's channels and
stride (reduction), and freezing, feature pyramids and layer-wise learning rates need no
per-family code.
"""

# No ``from __future__ import annotations``: torch.fx records the traced forward's annotations
# in its graph, and TorchScript cannot read them back as strings (scripting the graph of
# torchvision's create_feature_extractor failed with "Unknown type name '_torch_Tensor_'").
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .errors import InputSizeError, NetsError, OptionValueError

POOLINGS = ("avg", "max", None)

# torch>=2.5 names symbolic tracing apart from dynamo's use of FX; older torch only has
# is_fx_tracing (which dynamo does not set either when compiling a check like ours).
_fx_tracing = getattr(
    torch.fx._symbolic_trace, "is_fx_symbolic_tracing", torch.fx._symbolic_trace.is_fx_tracing
)


@dataclass(frozen=True)
class FeatureInfo(Mapping):
    """One stage's output: ``info.channels``, ``info.reduction``, ``info.module``. Also reads
    as the dict timm's feature code expects (``info["num_chs"]``, ``"module" in info``), which
    may add keys of its own (``info.setdefault("index", i)``); our four stay fixed."""

    stage: int
    channels: int
    reduction: int  # the stage output's stride relative to the input
    module: str  # e.g. "stages.2"
    extra: dict = field(default_factory=dict, compare=False, repr=False)  # timm's additions

    # timm's key -> our field
    _TIMM_KEYS: ClassVar[dict[str, str]] = {
        "num_chs": "channels", "reduction": "reduction", "module": "module", "stage": "stage"
    }  # fmt: skip

    def __getitem__(self, key: str) -> object:
        if key in self._TIMM_KEYS:
            return getattr(self, self._TIMM_KEYS[key])
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._TIMM_KEYS
        yield from self.extra

    def __len__(self) -> int:
        return len(self._TIMM_KEYS) + len(self.extra)

    def __setitem__(self, key: str, value: object) -> None:
        if key in self._TIMM_KEYS:
            raise TypeError(f"FeatureInfo[{key!r}] is fixed: it describes the network")
        self.extra[key] = value

    def setdefault(self, key: str, default: object = None) -> object:
        if key not in self:
            self[key] = default
        return self[key]


class FeatureInfoList(list):
    """``feature_info``: a list of ``FeatureInfo``, with timm's ``FeatureInfo`` accessors
    (``channels()``, ``reduction()``, ``module_name()``, ``get_dicts()``) on top."""

    def _pick(self, field: str, idx: int | Sequence[int] | None) -> list | int | str:
        if idx is None:
            return [getattr(info, field) for info in self]
        if isinstance(idx, int):
            return getattr(self[idx], field)
        return [getattr(self[i], field) for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> list[int] | int:
        return self._pick("channels", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> list[int] | int:
        return self._pick("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> list[str] | str:
        return self._pick("module", idx)

    def get_dicts(self, keys: Sequence[str] | None = None, idx=None) -> list[dict] | dict:
        def one(info: FeatureInfo) -> dict:
            return {k: info[k] for k in (keys or info)}

        if isinstance(idx, int):
            return one(self[idx])
        return [one(self[i]) for i in (range(len(self)) if idx is None else idx)]


class AuxOutputs(tuple):
    """What a network with auxiliary classifiers returns in training mode (aux enabled): the
    flat tuple ``(logits, aux_1, ..., aux_k)`` of tensors of one shape, so that code written
    for any tuple of outputs (``torch.cat(outputs)``, ``outputs[0]``) works on it.

    ``out.logits`` is the main classifier's output; ``out.aux`` the auxiliary classifiers'
    outputs, from the shallowest to the deepest. A trainer weights the losses, e.g.
    ``loss = ce(out.logits, y) + 0.3 * sum(ce(a, y) for a in out.aux)``. In eval mode these
    networks return the main logits alone, like every other network.
    """

    def __new__(cls, logits: torch.Tensor, aux: Sequence[torch.Tensor]) -> "AuxOutputs":
        return super().__new__(cls, (logits, *aux))

    def __getnewargs__(self) -> tuple:  # copy and pickle rebuild it through __new__
        return (self[0], tuple(self[1:]))

    @property
    def logits(self) -> torch.Tensor:
        return self[0]

    @property
    def aux(self) -> tuple[torch.Tensor, ...]:
        return tuple(self[1:])


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

    def set_pooling(self, pooling: str | None, num_classes: int) -> None:
        """``"avg"``, ``"max"``, or None for the feature map (with no classifier)."""
        timm_pooling(pooling if pooling is not None else "", num_classes)
        if pooling is None and type(self).forward is not ClassifierHead.forward:
            raise NetsError("this head has layers after its pooling: global_pool must pool")
        self.pooling = pooling
        self.pool = _global_pool(pooling)
        self.flatten = nn.Flatten(1) if pooling else nn.Identity()


class MLPHead(nn.ModuleDict):
    """The fully connected stack of LeNet, AlexNet and VGG: pool to a fixed grid, flatten,
    hidden Linear layers ``fc1``, ``fc2``, ... and the classifier ``fc``.

    ``dropout_first`` puts dropout before each hidden Linear (AlexNet as torchvision has it)
    instead of after its activation (VGG). The children are held in the order they run, a
    ``ModuleDict`` that ``forward`` iterates: TorchScript compiles no ``getattr`` of a
    computed name, and the keys stay ``fc1``, ``fc2``, ..., ``fc``.
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
        self.flatten = nn.Flatten(1)  # (N, C, h, w) -> (N, C*h*w)
        grid = pool_size if isinstance(pool_size, tuple) else (pool_size, pool_size)
        width = in_channels * grid[0] * grid[1]
        self.dropout_first = dropout_first
        for i, out in enumerate(hidden, start=1):
            fc, activation = nn.Linear(width, out), act()
            drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
            if dropout_first:
                run = [("drop", drop), ("fc", fc), ("act", activation)]
            else:
                run = [("fc", fc), ("act", activation), ("drop", drop)]
            self.update({f"{kind}{i}": layer for kind, layer in run})
            width = out
        self.fc = nn.Linear(width, num_classes) if num_classes else nn.Identity()
        self.num_features = width
        self.pooling = "avg"

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        for name, layer in self.items():
            if not (pre_logits and name == "fc"):
                x = layer(x)
        return x

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
        self.feature_info: list[FeatureInfo] = FeatureInfoList()
        self.grad_checkpointing = False
        # create_model sets a PretrainedCfg; a network built from its class has none yet.
        self.pretrained_cfg: Mapping = {}
        self.arch = type(self).__name__.lower()

    # -- construction helpers --------------------------------------------------------------
    def _set_stages(
        self, stages: Sequence[nn.Module], channels: Sequence[int], reductions: Sequence[int]
    ) -> None:
        self.stages = nn.Sequential(*stages)
        self.feature_info = FeatureInfoList(
            FeatureInfo(i, c, r, f"stages.{i}")
            for i, (c, r) in enumerate(zip(channels, reductions, strict=True))
        )

    @property
    @torch.jit.unused  # feature_info holds dataclasses, which TorchScript cannot type
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
        # Nested: TorchScript compiles both operands of an "and", and _fx_tracing() does not.
        if not torch.jit.is_scripting():
            if _fx_tracing():
                return
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise InputSizeError(
                f"{self.arch} expects input of shape (N, {self.in_chans}, H, W), "
                f"got {list(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h < self.min_input_size or w < self.min_input_size:
            raise InputSizeError(
                f"{self.arch} needs inputs of at least {self.min_input_size}x"
                f"{self.min_input_size} pixels, got {h}x{w}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stem(x)
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            # Each stage's activations are recomputed in backward instead of kept.
            for stage in self.stages:
                x = checkpoint(stage, x, use_reentrant=False)
            return x
        return self.stages(x)

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

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a new one of ``num_classes`` outputs (0: none).

        ``global_pool`` (timm's argument): ``"avg"`` or ``"max"`` changes the pooling, ``""``
        removes it (with ``num_classes=0``, ``forward`` then returns the feature map); None
        keeps the pooling the model has."""
        if global_pool is not None:
            set_pooling = getattr(self.head, "set_pooling", None)
            if set_pooling is None:
                raise NetsError(f"{self.arch}'s head has a fixed pooling; global_pool must be None")
            set_pooling(global_pool or None, num_classes)
        self.head.reset(num_classes)
        if isinstance(self.head.fc, nn.Linear):
            self.init_classifier(self.head.fc)

    def init_classifier(self, fc: nn.Linear) -> None:
        """The family's initialisation of a fresh classifier (PyTorch's default here)."""

    # -- timm's model contract: the same things under timm's names --------------------------
    @property
    @torch.jit.unused
    def num_classes(self) -> int:
        """Outputs of the classifier (0 without one)."""
        fc = getattr(self.head, "fc", None)
        if isinstance(fc, nn.Linear):
            return fc.out_features
        return fc.out_channels if isinstance(fc, nn.Conv2d) else 0  # a per-pixel classifier

    @property
    @torch.jit.unused
    def head_hidden_size(self) -> int:
        """Features the classifier reads (``forward_head(x, pre_logits=True)``'s width): the
        last hidden layer's for LeNet/AlexNet/VGG, else ``num_features``."""
        return getattr(self.head, "num_features", self.num_features)

    @property
    @torch.jit.unused
    def default_cfg(self) -> Mapping:
        """timm's older name of ``pretrained_cfg``."""
        return self.pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations in the backward pass instead of keeping them
        (training mode only): less memory for more compute."""
        if type(self).forward_features is not Network.forward_features:
            raise NetsError(f"{self.arch} runs its stages its own way: no gradient checkpointing")
        self.grad_checkpointing = bool(enable)

    def group_matcher(self, coarse: bool = False) -> dict[str, object]:
        """Parameter groups for timm's layer-wise learning-rate decay: the stem, then the
        stages (``coarse``) or their blocks in order; the head comes last."""
        if coarse:
            return {"stem": r"^stem", "blocks": r"^stages\.(\d+)"}
        return {"stem": r"^stem", "blocks": [(r"^stages\.(\d+)\.(\d+)", None),
                                              (r"^stages\.(\d+)", (99999,))]}  # fmt: skip

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the maps of the stages ``indices`` (an int n:
        the last n; None: every stage), and the final feature map unless
        ``intermediates_only``. ``stop_early`` runs no stage after the last one asked for.
        ``norm`` changes nothing: our last stage ends with its own normalisation, if any."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise NetsError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        take = stage_indices(len(self.stages), indices)
        self.check_input(x)
        intermediates, last = [], None
        for i, last in enumerate(self.stage_outputs(x)):
            if i in take:
                intermediates.append(last if output_fmt == "NCHW" else last.permute(0, 2, 3, 1))
            if (stop_early or intermediates_only) and i == take[-1]:
                break
        if intermediates_only:
            return intermediates
        return last, intermediates

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (and the classifier, with
        ``prune_head``), for a backbone that only serves ``forward_intermediates``."""
        if not isinstance(self.head, (ClassifierHead, MLPHead)):
            raise NetsError(f"{self.arch}'s head reads every stage: its stages cannot be pruned")
        take = stage_indices(len(self.stages), indices)
        self.stages = self.stages[: take[-1] + 1]
        self.feature_info = FeatureInfoList(self.feature_info[: take[-1] + 1])
        if prune_head:  # the feature map of the last stage kept, unpooled
            self.head = ClassifierHead(self.num_features, 0, None, include_top=False)
        return take


class AuxClassifierNetwork(Network):
    """A network with optional auxiliary classifiers in ``self.aux`` (GoogLeNet, Inception
    v3): each reads the output of one stage module, ``self.aux_taps[k]`` = ``(stage index,
    module name)``. In training mode with aux heads, ``forward`` returns
    ``AuxOutputs(logits, aux)``, shallowest head first; otherwise the logits alone."""

    # ``aux`` (an nn.ModuleList) is set by the subclass. No class annotations here: TorchScript
    # types a module's attributes from them and can type neither a ModuleList nor this tuple.
    aux_taps = ()  # tuple[tuple[int, str], ...]
    # The smallest input the auxiliary heads take in training mode, where it is larger than
    # min_input_size (which holds for the logits alone, in eval mode).
    aux_min_input_size = 0

    @property
    @torch.jit.unused
    def aux_classifiers(self) -> tuple[str, ...]:
        """Key prefixes of the aux heads' classifiers, replaced with the main one's."""
        return tuple(f"aux.{i}.fc" for i in range(len(self.aux)))

    def init_aux_classifier(self, fc: nn.Linear) -> None:
        self.init_classifier(fc)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new main classifier, and new auxiliary classifiers with the same classes."""
        super().reset_classifier(num_classes, global_pool)
        for aux in self.aux:
            aux.reset(num_classes)
            self.init_aux_classifier(aux.fc)

    # No return annotation: TorchScript would have to type AuxOutputs, whose variable-length
    # tuple it cannot; it compiles the logits path only.
    def forward(self, x: torch.Tensor):  # -> torch.Tensor | AuxOutputs
        if self.training and len(self.aux):
            if torch.jit.is_scripting():
                raise NetsError("the auxiliary classifiers' outputs need eager mode: call eval()")
            return self._forward_with_aux(x)
        return self.forward_head(self.forward_features(x))

    def _forward_with_aux(self, x: torch.Tensor) -> AuxOutputs:
        self.check_input(x)
        h, w = x.shape[-2:]
        if min(h, w) < self.aux_min_input_size:
            raise InputSizeError(
                f"{self.arch}'s auxiliary classifiers need inputs of at least "
                f"{self.aux_min_input_size}x{self.aux_min_input_size} pixels in training mode, "
                f"got {h}x{w} (eval mode, or aux_logits=False, takes {self.min_input_size})"
            )
        taps = dict(zip(self.aux_taps, self.aux, strict=True))
        x = self.stem(x)
        aux = []
        for i, stage in enumerate(self.stages):
            for name, module in stage.named_children():
                x = module(x)
                if (i, name) in taps:
                    aux.append(taps[(i, name)](x))
        return AuxOutputs(self.forward_head(x), tuple(aux))


def timm_pooling(global_pool: str, num_classes: int | None) -> str | None:
    """timm's ``global_pool`` as our ``pooling``: ``"avg"``, ``"max"``, or ``""`` (None: the
    feature map, which has no classifier to feed, so ``num_classes`` must be 0)."""
    if global_pool not in ("avg", "max", ""):
        raise OptionValueError(f"global_pool must be 'avg', 'max' or '', got {global_pool!r}")
    if global_pool == "" and num_classes != 0:
        raise OptionValueError("global_pool='' returns feature maps and needs num_classes=0")
    return global_pool or None


def stage_indices(n: int, indices: int | Sequence[int] | None) -> list[int]:
    """timm's ``indices`` for a network of ``n`` stages as sorted stage numbers: None for
    all, an int k for the last k, else the indices themselves (negative from the end)."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise NetsError(f"indices: the last 1 to {n} stages, got {indices}")
        return list(range(n - indices, n))
    chosen = sorted({i % n for i in indices if -n <= i < n})
    if not indices or len(chosen) != len(set(indices)):
        raise NetsError(f"indices must be distinct stage numbers below {n}, got {list(indices)}")
    return chosen


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
    """Normalisation without the scale gamma (Keras' ``scale=False``): each norm keeps its
    shift (``bias``) and running statistics, and its ``weight`` goes: None for BatchNorm and
    GroupNorm (their functions read None as 1), ones that are not saved for a norm whose
    weight is a buffer (torchvision's FrozenBatchNorm2d, a ``norm_layer``). No ``weight``
    key in either case, so Keras' checkpoints, which have none, load strictly."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            del m.weight
            m.register_parameter("weight", None)
        elif "weight" in m._buffers and "running_mean" in m._buffers and m.weight is not None:
            ones = torch.ones_like(m.weight)
            del m.weight
            m.register_buffer("weight", ones, persistent=False)


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
