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
- Weights in channels_last (NHWC convolutions: oneDNN's fast kernels on the CPU, tensor
  cores on CUDA).
- On the CPU (float32), a frozen TorchScript graph optimised for oneDNN
  (``torch.jit.optimize_for_inference``: fused conv+activation, prepacked weights, blocked
  layouts) per input shape, checked against the eager model on first use, and then *timed*
  against the folded channels_last eager model on that input: the faster one is kept for
  that shape. Neither wins everywhere: on a 2-core CPU at batch 8 the graph ran
  MobileNet-v2 about 15% faster than eager channels_last, and eager channels_last ran
  GoogLeNet, Inception v3 and EfficientNet-B0 1.4 to 2.5 times faster than the graph.

The result is a new module (the user's model is deep-copied, never changed) in eval mode,
with the same ``forward`` semantics: input checks, ``transform_input`` and
``forward_features``/``forward_head`` all still work, since only leaf modules are replaced.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode
from torchvision.ops import StochasticDepth

__all__ = [
    "BACKENDS",
    "InferenceModel",
    "find_conv_bn_pairs",
    "fold_batchnorm",
    "optimize_for_inference",
]


BACKENDS = ("auto", "torchscript", "eager")
# Storage precisions of the fast path: None keeps the model's own (float32).
DTYPES = (None, torch.float32, torch.bfloat16, torch.float16)


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

    ``forward`` checks the input as the network does, then runs what was chosen for that
    input's shape on first use (``plans`` records it: ``"torchscript"`` or ``"eager"``).
    A graph is traced per shape because shape-dependent Python (TF "same" padding, for
    instance) becomes constants in a trace. With ``backend="auto"`` the graph is timed
    against the eager model on that first input and kept only if it is faster. Anything
    the graphs cannot take (CUDA, another dtype, autograd wanted, a model that cannot be
    traced) runs the folded eager model. Attributes it does not have
    (``forward_features``, ``pretrained_cfg``, ``feature_info``...) come from the eager
    model.
    """

    max_graphs = 8  # distinct input shapes kept; the oldest is dropped beyond that
    timing_rounds = 3  # calls of each candidate when ``backend="auto"`` chooses

    def __init__(
        self, model: nn.Module, *, backend: str = "auto", dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.model = model
        self.backend = backend
        # Half precision: weights stored in it, inputs cast at the door, outputs float32.
        self.dtype = None if dtype == torch.float32 else dtype
        # input key -> its graph, or None where the eager model runs that input
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

    def _graph(self, x: torch.Tensor, trace: bool = True) -> torch.jit.ScriptModule | None:
        """The graph chosen for inputs like ``x`` (None: eager), made on first sight;
        ``trace=False`` only records that eager runs them."""
        key = (tuple(x.shape), x.dtype, x.device, x.is_contiguous())
        if key not in self._graphs:
            graph = _script(self.model, x) if trace else None
            if graph is not None and self.backend == "auto" and not self._faster(graph, x):
                graph = None
            self._graphs[key] = graph
            if len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        return self._graphs[key]

    @property
    def plans(self) -> dict[tuple[int, ...], str]:
        """What runs each input shape seen so far: ``"torchscript"``, ``"eager"``, or
        ``"eager bfloat16"`` / ``"eager float16"`` for a half-precision model."""
        eager = "eager" if self.dtype is None else f"eager {str(self.dtype).split('.')[-1]}"
        return {key[0]: eager if g is None else "torchscript" for key, g in self._graphs.items()}

    def _faster(self, graph: torch.jit.ScriptModule, x: torch.Tensor) -> bool:
        """Whether ``graph`` runs ``x`` faster than the eager model: both were run once by
        ``_script`` (warm), then alternate; the best call of each counts, since noise from
        other processes only ever adds time."""
        best = {"graph": float("inf"), "eager": float("inf")}
        with torch.no_grad():
            for _ in range(self.timing_rounds):
                for which, fn in (("graph", graph), ("eager", self.model)):
                    start = time.perf_counter()
                    fn(x)
                    best[which] = min(best[which], time.perf_counter() - start)
        return best["graph"] < best["eager"]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The eager model's features; in half precision, of the input cast to it."""
        return self.model.forward_features(x if self.dtype is None else x.to(self.dtype))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.dtype is None:
            return self.model.forward_head(x, pre_logits=pre_logits)
        return self.model.forward_head(x.to(self.dtype), pre_logits=pre_logits).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check = getattr(self.model, "check_input", None)
        if check is not None:
            check(x)  # before tracing: a bad input must raise the network's own error
        if self.dtype is not None:
            # Eager in the storage precision (TorchScript's oneDNN pass is float32 only);
            # float32 logits, so softmax and losses downstream keep their precision.
            self._graph(x, trace=False)
            return self.model(x.to(self.dtype)).float()
        usable = (
            self.backend != "eager"
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
    dtype: torch.dtype | None = None,
    backend: str = "auto",
    channels_last: bool = True,
) -> InferenceModel:
    """A new eval-mode copy of ``model`` that gives the same outputs, faster.

    BatchNorm is folded into the convs that feed it and eval-time identities are removed.
    ``backend`` decides how CPU float32 inputs run: ``"auto"`` (default) times a frozen
    oneDNN TorchScript graph against the folded eager model on the first input of each
    shape and keeps the faster (a few extra calls, once per shape); ``"torchscript"``
    always uses the graph where tracing works; ``"eager"`` never traces. Other devices and
    dtypes always run eager. ``channels_last``: weights in channels_last memory format,
    which measured faster for eager convolutions on the CPU and on CUDA. ``example`` is an
    input used to read the data flow (default: one random image at the model's minimum
    input size).

    ``dtype``: ``torch.bfloat16`` or ``torch.float16`` stores the folded weights in half
    precision (folding itself is done in float32 first), casts each input to it and
    returns float32 outputs; it always runs eager. ``None`` or ``torch.float32`` keeps
    float32. Half precision changes the logits slightly; the contract is the float32 top-1
    on at least 99% of real images and the top-5 set on 97%. Measured with the real
    EfficientNet-Lite0 weights on 300 crops of the sample photos: float16 99.7% and 98.3%,
    bfloat16 only 97.3% and 85.3% (3 fewer mantissa bits), so prefer float16 unless a
    network's activations overflow it. Half precision pays on GPUs with tensor cores; on a
    CPU without native half-precision kernels it runs slower than float32.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(
            f"dtype must be None, torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}"
        )
    fast = copy.deepcopy(model).eval()
    x = _example(fast, example)
    fold_batchnorm(fast, find_conv_bn_pairs(fast, x))
    _strip_identities(fast)
    if dtype is not None and dtype != torch.float32:
        fast = fast.to(dtype)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    fast.requires_grad_(False)
    return InferenceModel(fast, backend=backend, dtype=dtype).eval()
