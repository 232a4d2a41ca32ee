"""``optimize_for_inference``: a faster eval-only copy of a model with the same outputs.

What it does, each step kept because it measured faster on the CPU (see
``benchmarks/results/``) and leaves the outputs equal within float32 tolerance:

- BatchNorm folded into the convolution that feeds it. Which BatchNorm follows which conv
  is read from the data flow of one small forward pass, not from per-family tables: a pair
  is folded only when the conv's output goes to that BatchNorm and nowhere else, and each
  is called once. This covers ``ConvNormAct`` everywhere, DenseNet's ``conv1 -> norm2`` and
  any block written later; pre-activation BatchNorms (DenseNet's ``norm1``) that read a
  concatenation are left as they are, since no conv output feeds them.
- Dropout and stochastic depth, identities in eval mode, are removed from the module tree.
- On the CPU (float32), frozen TorchScript graphs optimised for oneDNN
  (``torch.jit.optimize_for_inference``: fused conv+activation, prepacked weights, blocked
  layouts), one per input shape, each checked against the eager model on first use;
  channels_last alone gained less (ResNet-50 batch 8: about 1.15x against about 1.6x).
- On CUDA, channels_last weights (NHWC convolutions for tensor cores).

The result is a new module (the user's model is deep-copied, never changed) in eval mode,
with the same ``forward`` semantics: input checks, ``transform_input`` and
``forward_features``/``forward_head`` all still work, since only leaf modules are replaced.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode
from torchvision.ops import StochasticDepth

__all__ = [
    "InferenceModel",
    "find_conv_bn_pairs",
    "fold_batchnorm",
    "optimize_for_inference",
]


class _FlowRecorder(TorchFunctionMode):
    """Counts, for every tensor, how many torch functions computing tensors read it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # keeps tensors alive so that ids stay unique

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        results = [o for o in _flatten(out) if isinstance(o, torch.Tensor)]
        if not results:
            return out  # metadata (x.dim(), x.shape): not a use of the values
        self.keep += results
        for a in _flatten((args, kwargs)):
            if isinstance(a, torch.Tensor) and not isinstance(a, nn.Parameter):
                self.reads[id(a)] = self.reads.get(id(a), 0) + 1
        return out


def _flatten(obj: object) -> list:
    if isinstance(obj, (list, tuple)):
        return [y for x in obj for y in _flatten(x)]
    if isinstance(obj, dict):
        return [y for x in obj.values() for y in _flatten(x)]
    return [obj]


def find_conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv_name, bn_name)`` for each BatchNorm2d whose only input is the output of one
    Conv2d that nothing else reads, found by running ``model`` once on ``example``."""
    names = {m: n for n, m in model.named_modules()}
    calls: dict[nn.Module, int] = {}
    produced: dict[int, nn.Module] = {}  # id(conv output) -> conv
    fed: list[tuple[nn.Module, nn.Module]] = []  # (conv, bn) where bn read a conv output
    handles = []

    def count(module: nn.Module, *_: object) -> None:
        calls[module] = calls.get(module, 0) + 1

    def conv_out(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        produced[id(output)] = module

    def bn_in(module: nn.Module, inputs: tuple) -> None:
        conv = produced.get(id(inputs[0]))
        if conv is not None:
            fed.append((conv, module))
            bn_in.ids[module] = id(inputs[0])

    bn_in.ids = {}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            handles.append(m.register_forward_pre_hook(count))
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_out))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_pre_hook(bn_in))
    recorder = _FlowRecorder()
    try:
        with torch.no_grad(), recorder:
            model(example)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for conv, bn in fed:
        sole_reader = recorder.reads.get(bn_in.ids[bn], 0) == 1
        if sole_reader and calls.get(conv) == 1 and calls.get(bn) == 1:
            pairs.append((names[conv], names[bn]))
    return pairs


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def fold_batchnorm(model: nn.Module, pairs: Sequence[tuple[str, str]]) -> nn.Module:
    """Fold each ``(conv, bn)`` of ``pairs`` in ``model`` (eval mode, in place): the conv gets
    the BatchNorm's scale and shift in its weight and bias, the BatchNorm becomes Identity."""
    for conv_name, bn_name in pairs:
        conv = model.get_submodule(conv_name)
        bn = model.get_submodule(bn_name)
        if not bn.track_running_stats or bn.running_mean is None:
            continue  # batch statistics at eval time: nothing fixed to fold
        _set(model, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
        _set(model, bn_name, nn.Identity())
    return model


def _strip_identities(model: nn.Module) -> None:
    """Dropout and stochastic depth do nothing in eval mode; drop the module calls."""
    for name, m in list(model.named_modules()):
        if name and isinstance(m, (nn.Dropout, StochasticDepth)):
            _set(model, name, nn.Identity())


def _example(model: nn.Module, example: torch.Tensor | None) -> torch.Tensor:
    if example is not None:
        return example
    size = max(getattr(model, "min_input_size", 32), 32)
    try:
        p = next(model.parameters())
        device, dtype = p.device, p.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    return torch.randn(1, getattr(model, "in_chans", 3), size, size, device=device, dtype=dtype)


class InferenceModel(nn.Module):
    """The fast path's result: a folded eager ``model`` plus, on the CPU, frozen TorchScript
    graphs run through oneDNN (``torch.jit.optimize_for_inference``), one per input shape.

    ``forward`` checks the input as the network does, then runs the graph traced for that
    shape (traced on first use: shape-dependent Python, TF "same" padding for instance,
    becomes constants in a trace, so a graph is reused only for the exact shape it was
    traced with). Anything else (CUDA, another dtype, autograd wanted, a model that cannot be
    traced) runs the folded eager model. Attributes it does not have (``forward_features``,
    ``pretrained_cfg``, ``feature_info``...) come from the eager model.
    """

    max_graphs = 8  # distinct input shapes kept; the oldest is dropped beyond that

    def __init__(self, model: nn.Module, *, script: bool) -> None:
        super().__init__()
        self.model = model
        self.script = script
        self._graphs: OrderedDict[tuple, torch.jit.ScriptModule | None] = OrderedDict()

    def __getattr__(self, name: str):  # noqa: ANN204
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)

    def train(self, mode: bool = True) -> InferenceModel:
        if mode:
            raise RuntimeError("optimize_for_inference returns an eval-only model")
        return super().train(False)

    def _graph(self, x: torch.Tensor) -> torch.jit.ScriptModule | None:
        key = (tuple(x.shape), x.dtype, x.device, x.is_contiguous())
        if key not in self._graphs:
            self._graphs[key] = _script(self.model, x)
            if len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        return self._graphs[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check = getattr(self.model, "check_input", None)
        if check is not None:
            check(x)  # before tracing: a bad input must raise the network's own error
        usable = (
            self.script
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and x.requires_grad)
        )
        graph = self._graph(x) if usable else None
        if graph is None:
            return self.model(x)
        with torch.no_grad():
            return graph(x)


def _script(model: nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule | None:
    """Trace, freeze and oneDNN-optimise ``model`` for inputs shaped like ``x``; ``None``
    where TorchScript cannot (then the eager model runs)."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # TorchScript is deprecated in favour of torch.compile, but on the CPU its
            # oneDNN pass is what measured fastest, and compiles in about a second.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(_Unchecked(model), x, check_trace=False)
            graph = torch.jit.optimize_for_inference(traced.eval())
            # Some oneDNN kernels fail only when run (adaptive pooling to a size that does
            # not divide the input, AlexNet below 224): run it once and compare.
            expected, got = model(x), graph(x)
    except Exception:  # noqa: BLE001 - any TorchScript failure: fall back to eager
        return None
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return None
    scale = expected.abs().max().item()
    if (got - expected).abs().max().item() > 1e-3 * scale + 1e-6:
        return None
    return graph


class _Unchecked(nn.Module):
    """``model`` without its input check: the wrapper checks before tracing, and the
    check's Python comparisons would only become trace warnings."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check = getattr(self.model, "check_input", None)
        if check is None:
            return self.model(x)
        self.model.check_input = lambda _x: None  # instance attribute shadows the method
        try:
            return self.model(x)
        finally:
            del self.model.check_input


def optimize_for_inference(
    model: nn.Module,
    example: torch.Tensor | None = None,
    *,
    channels_last: bool | None = None,
    script: bool = True,
) -> nn.Module:
    """A new eval-mode copy of ``model`` that gives the same outputs, faster.

    BatchNorm is folded into the convs that feed it and eval-time identities are removed.
    ``script=True`` (default) runs CPU float32 inputs through frozen, oneDNN-optimised
    TorchScript graphs (one per input shape, traced on first use). ``channels_last``:
    weights in channels_last (``None``: on CUDA only, where it measured faster; the CPU
    graphs choose their own layout). ``example`` is an input used to read the data flow
    (default: one random image at the model's minimum input size).
    """
    fast = copy.deepcopy(model).eval()
    x = _example(fast, example)
    fold_batchnorm(fast, find_conv_bn_pairs(fast, x))
    _strip_identities(fast)
    if channels_last is None:
        channels_last = x.device.type == "cuda"
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    fast.requires_grad_(False)
    return InferenceModel(fast, script=script).eval()
