"""``optimize_for_inference``: a faster eval-only copy of a model with the same outputs.

What it does, each step kept because it measured faster on the CPU (see
``benchmarks/results/``) and leaves the outputs equal within float32 tolerance:

- BatchNorm folded into the convolution that feeds it, found from the data flow of one
  small forward pass (``nets.folding``, pure graph surgery, tested on its own).
- Dropout and stochastic depth, identities in eval mode, are removed from the module tree.
- Weights in channels_last (NHWC convolutions: oneDNN's fast kernels on the CPU, tensor
  cores on CUDA).
- Per input shape, a graph where one is faster (``backend``): on the CPU (float32) a
  frozen TorchScript graph optimised for oneDNN (``torch.jit.optimize_for_inference``:
  fused conv+activation, prepacked weights, blocked layouts), on CUDA the folded model
  captured in a CUDA graph, or on request ``torch.compile`` (inductor with freezing). Each
  is checked against the eager model on first use, and with ``backend="auto"`` *timed*
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn

import common

from .folding import find_conv_bn_pairs, fold_batchnorm, strip_identities

__all__ = [
    "BACKENDS",
    "COMPILE_OPTIONS",
    "CompileFellBack",
    "CompileWatch",
    "InferenceModel",
    "Plan",
    "choose_runner",
    "compile_watch",
    "cpu_native_kernels",
    "float32_conv_precision",
    "graph_tolerance",
    "optimize_for_inference",
]


BACKENDS = ("auto", "torchscript", "compile", "cudagraph", "eager")
# Storage precisions of the fast path: None keeps the model's own (float32).
DTYPES = (None, torch.float32, torch.bfloat16, torch.float16)
# How far a graph's output may be from the eager model's, relative to its largest logit,
# before the graph is refused: float32 graphs only reorder sums; in half precision each
# reordered sum rounds to 8 (bfloat16) or 11 (float16) bits, so a wrong graph, not the
# rounding, is what the wider bound still catches. float32 convolutions that the backend
# runs in TF32 (cuDNN's default on CUDA) or bfloat16 (oneDNN, when asked) round their
# inputs to 11 or 8 bits too, so they get the bound of that precision (graph_tolerance).
_GRAPH_TOLERANCE = {torch.float32: 1e-3, torch.float16: 3e-2, torch.bfloat16: 3e-2}
_REDUCED_FLOAT32 = {"tf32": torch.float16, "bf16": torch.bfloat16}  # same mantissa width

# How the compile backend builds each shape's graph; tests swap in a counting backend, which
# meets dynamo's caches and limits exactly as inductor does, in a fraction of the time.
# fullgraph: a graph break or dynamo's recompile limit raises instead of quietly running
# (part of) the network eagerly under a plan that says "compile".
COMPILE_OPTIONS: dict = {"backend": "inductor", "options": {"freezing": True}}


def cpu_native_kernels(dtype: torch.dtype) -> bool | None:
    """Whether oneDNN has native kernels for ``dtype`` on this CPU (None: this torch cannot
    tell). Without them half precision falls back to slower generic kernels: measured
    with EfficientNet-Lite0 at batch 8, float16 20x slower on an AVX-512 host without
    float16 instructions, bfloat16 3.9x slower on an AVX2 host and 2.2x *faster* on one with
    bfloat16 instructions."""
    if dtype == torch.float32:
        return True
    probe = {
        torch.bfloat16: "_is_mkldnn_bf16_supported",
        torch.float16: "_is_mkldnn_fp16_supported",
    }
    name = probe.get(dtype)
    if name is None or not hasattr(torch.ops.mkldnn, name):  # private ops, as inductor uses
        return None
    return bool(getattr(torch.ops.mkldnn, name)())


@dataclass(frozen=True)
class Plan:
    """What runs inputs of one shape, and why.

    ``runner``: ``"torchscript"`` (frozen oneDNN graph, CPU), ``"compile"`` (torch.compile,
    inductor), ``"cudagraph"`` (the folded eager model captured in a CUDA graph),
    ``"compile+cudagraph"`` (the compiled model captured in a CUDA graph) or ``"eager"``
    (the folded eager model). ``build_s``: seconds spent making, checking and (``"auto"``)
    timing it, once for the shape.
    """

    runner: str
    why: str
    build_s: float = 0.0
    # How the runner's output was checked against the eager model's (empty for eager).
    check: str = ""

    def __str__(self) -> str:
        return f"{self.runner} ({self.why})"


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
    """The fast path's result: a folded eager ``model`` plus, per input shape, the runner
    chosen for it on first sight (``plans`` says which, ``plan_details`` why).

    Runners: on the CPU in float32, a frozen TorchScript graph run through oneDNN
    (``torch.jit.optimize_for_inference``); on CUDA, the folded model captured in a CUDA
    graph; anywhere, ``torch.compile`` (inductor, with freezing), on CUDA also captured in
    a CUDA graph. Each is built for one shape (shape-dependent Python, TF "same" padding
    for instance, becomes constants), its output checked against the eager model's on that
    first input, and with ``backend="auto"`` timed against the eager model and kept only if
    faster. Whatever cannot be built, differs, is slower or wants autograd runs the folded
    eager model, and so does every tracer and exporter: ``torch.export``, ``torch.onnx``
    (both exporters), ``torch.jit.trace`` and dynamo record the folded channels_last
    network, not the per-shape graphs. Attributes it does not have (``forward_features``,
    ``pretrained_cfg``, ``feature_info``...) come from the eager model.
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
        # input key -> its runner (None: eager), and the plan that says what and why
        self._graphs: OrderedDict[tuple, Callable | None] = OrderedDict()
        self._plans: dict[tuple, Plan] = {}
        # torch.compile's module is made once and kept out of the module tree (its
        # parameters are the model's own: no second copy in state_dict).
        self.__dict__["_compiled"] = None

    def __getattr__(self, name: str):  # noqa: ANN204
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)

    def train(self, mode: bool = True) -> InferenceModel:
        if mode:
            raise RuntimeError("optimize_for_inference returns an eval-only model")
        return super().train(False)

    @property
    def plans(self) -> dict[tuple[int, ...], str]:
        """What runs each input shape seen so far: ``"torchscript"``, ``"compile"``,
        ``"cudagraph"``, ``"compile+cudagraph"`` or ``"eager"``, followed by the precision
        for a half-precision model (``"eager float16"``)."""
        suffix = "" if self.dtype is None else f" {str(self.dtype).split('.')[-1]}"
        return {key[0]: self._plans[key].runner + suffix for key in self._graphs}

    @property
    def plan_details(self) -> dict[tuple[int, ...], Plan]:
        """Each shape's ``Plan``: the runner, why it was chosen, and its build time."""
        return {key[0]: self._plans[key] for key in self._graphs}

    def _runner(self, x: torch.Tensor) -> Callable | None:
        """The runner chosen for inputs like ``x`` (None: eager), made on first sight."""
        key = (tuple(x.shape), x.dtype, x.device, x.is_contiguous())
        if key not in self._graphs:
            start = time.perf_counter()
            fn, plan = self._plan(x)
            self._graphs[key] = fn
            self._plans[key] = replace(plan, build_s=time.perf_counter() - start)
            if len(self._graphs) > self.max_graphs:
                old, _ = self._graphs.popitem(last=False)
                del self._plans[old]
        self._graphs.move_to_end(key)
        return self._graphs[key]

    def _plan(self, x: torch.Tensor) -> tuple[Callable | None, Plan]:
        """Build, check and (``auto``) time the runner for ``x``; eager where none fits."""
        runner, why = choose_runner(self.backend, x.device, x.dtype)
        if runner == "eager":
            return None, Plan("eager", why)
        try:
            fn, runner, note = self._build(runner, x)
            with torch.no_grad():
                expected, got = self.model(x), fn(x)
        except CompileFellBack as exc:  # dynamo ran the network eagerly: say so, and why
            return None, Plan("eager", f"{runner} fell back to eager: {exc}")
        except Exception as exc:  # noqa: BLE001 - any failure to build: run eager
            return None, Plan("eager", f"{runner} failed: {_reason(exc)}")
        rel, precision = graph_tolerance(expected.dtype, x.device)
        check = f"max difference within {rel:g} of the largest logit ({precision})"
        differs = _difference(got, expected, rel)
        if differs is not None:
            why = f"{runner} differs from eager: {differs} ({rel:g} of the largest logit, "
            return None, Plan("eager", why + f"{precision})")
        if self.backend != "auto":
            return fn, Plan(runner, f"backend={self.backend!r}{note}", check=check)
        speedup = self._speedup(fn, x)
        if speedup <= 1:
            return None, Plan("eager", f"{runner} took {1 / speedup:.2f}x eager's time here")
        return fn, Plan(runner, f"{speedup:.2f}x faster than eager here", check=check)

    def _build(self, runner: str, x: torch.Tensor) -> tuple[Callable, str, str]:
        """``(runner fn, runner name, note)``; a failed CUDA-graph capture of the compiled
        model leaves the compiled model alone, with a note."""
        if runner == "torchscript":
            return _script(self.model, x), runner, ""
        if runner == "cudagraph":
            return _CudaGraph(_Unchecked(self.model), x), runner, ""
        if self._compiled is None:
            # freezing: weights become constants, so inductor folds and prepacks them
            # (oneDNN layouts on the CPU); safe here since the model is eval-only.
            compiled = torch.compile(self.model, dynamic=False, fullgraph=True, **COMPILE_OPTIONS)
            self.__dict__["_compiled"] = compiled
        try:
            with torch.no_grad(), compile_watch() as watch:
                self._compiled(x)  # compiles for this shape (fullgraph: or raises)
        except Exception as exc:
            if "recompile" in type(exc).__name__.lower() or "recompile limit" in str(exc):
                raise CompileFellBack(_RECOMPILE_LIMIT) from exc
            if "no compiled frames" in str(exc):  # newer torch, once the limit was hit
                why = f"dynamo ran no compiled frame; the usual cause: {_RECOMPILE_LIMIT}"
                raise CompileFellBack(why) from exc
            raise
        if watch.graph_breaks:  # fullgraph raises on a break: a torch that did not cannot hide one
            raise CompileFellBack(watch.fell_back)
        if x.device.type != "cuda":
            return self._compiled, "compile", ""
        try:  # launch overhead dominates small batches: replay the compiled kernels
            return _CudaGraph(self._compiled, x), "compile+cudagraph", ""
        except Exception as exc:  # noqa: BLE001
            return self._compiled, "compile", f"; CUDA graph capture failed: {_reason(exc)}"

    def _speedup(self, fn: Callable, x: torch.Tensor) -> float:
        """Eager time over ``fn``'s time on ``x``: both were run once (warm), then
        alternate; the best call of each counts, since noise from other processes only
        ever adds time."""
        best = {"graph": float("inf"), "eager": float("inf")}
        # the input's GPU, which need not be the current one
        cuda = x.device.type == "cuda"
        sync = (lambda: torch.cuda.synchronize(x.device)) if cuda else (lambda: None)
        with torch.no_grad():
            for _ in range(self.timing_rounds):
                for which, f in (("graph", fn), ("eager", self.model)):
                    sync()
                    start = time.perf_counter()
                    f(x)
                    sync()
                    best[which] = min(best[which], time.perf_counter() - start)
        return best["eager"] / best["graph"]

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
            check(x)  # before any graph: a bad input must raise the network's own error
        if self.dtype is not None:
            x = x.to(self.dtype)
        # Graphs are inference-only; an input that wants gradients runs the eager model.
        wants_grad = torch.is_grad_enabled() and x.requires_grad
        # Under a tracer or exporter (torch.jit.trace, the legacy ONNX exporter, dynamo,
        # torch.export) the folded eager model is what gets recorded: calling a frozen
        # oneDNN TorchScript graph inside torch.jit.trace crashed the process (SIGSEGV),
        # and building one inside torch.export left its modules in the exported program.
        fn = None if wants_grad or _tracing() else self._runner(x)
        if fn is None:
            out = self.model(x)
        else:
            with torch.no_grad():
                out = fn(x)
        # float32 logits from a half-precision model: softmax and losses downstream keep
        # their precision.
        return out if self.dtype is None else out.float()


def _tracing() -> bool:
    """True inside torch.jit.trace (and so the legacy ONNX exporter), dynamo and
    torch.export (and so the default ONNX exporter)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _reason(exc: BaseException) -> str:
    """An exception as one short line (compiler errors can run to pages)."""
    return f"{type(exc).__name__}: {common.one_line(exc, 200) or type(exc).__name__}"


def _difference(got: object, expected: torch.Tensor, rel: float) -> str | None:
    """Why ``got`` is not ``expected`` within ``rel`` of its largest magnitude; None if it is."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return f"output {type(got).__name__} {getattr(got, 'shape', '')} is not {expected.shape}"
    scale = expected.float().abs().max().item()
    diff = (got.float() - expected.float()).abs().max().item()
    bound = rel * scale + 1e-6
    return None if diff <= bound else f"max difference {diff:.3g} > {bound:.3g}"


def float32_conv_precision(device: torch.device) -> str:
    """What float32 convolutions and matmuls on ``device`` actually compute in: ``"ieee"``
    (float32), ``"tf32"`` (cuDNN's default for convolutions on CUDA, 10-bit mantissa) or
    ``"bf16"`` (oneDNN on the CPU when asked to, 7 bits)."""
    if device.type == "cuda":
        matmul = torch.backends.cuda.matmul.allow_tf32
        matmul = matmul or torch.get_float32_matmul_precision() != "highest"
        return "tf32" if torch.backends.cudnn.allow_tf32 or matmul else "ieee"
    if device.type == "cpu":  # torch >= 2.9 can let oneDNN round float32 (default: it doesn't)
        mkldnn = torch.backends.mkldnn
        for scope in (getattr(mkldnn, "conv", None), getattr(mkldnn, "matmul", None), mkldnn):
            setting = getattr(scope, "fp32_precision", "ieee")
            if setting in _REDUCED_FLOAT32:
                return setting
    return "ieee"


def graph_tolerance(dtype: torch.dtype, device: torch.device) -> tuple[float, str]:
    """``(bound, precision)``: how far a graph's output may be from the eager model's,
    relative to the largest logit, for outputs in ``dtype`` on ``device``, and the precision
    in effect that the bound is derived from."""
    name = str(dtype).replace("torch.", "")
    if dtype != torch.float32:
        return _GRAPH_TOLERANCE.get(dtype, 1e-3), name
    reduced = float32_conv_precision(device)
    if reduced in _REDUCED_FLOAT32:
        return _GRAPH_TOLERANCE[_REDUCED_FLOAT32[reduced]], f"float32 with {reduced.upper()} math"
    return _GRAPH_TOLERANCE[torch.float32], name


def choose_runner(backend: str, device: torch.device, dtype: torch.dtype) -> tuple[str, str]:
    """``(runner, why)``: the runner that ``backend`` builds for an input on ``device`` in
    ``dtype``, or ``("eager", why)`` where none fits. Logic alone decides this (no GPU
    needed to test the CUDA choices)."""
    cuda = device.type == "cuda"
    if backend == "eager":
        return "eager", "backend='eager'"
    if backend == "auto":
        if cuda:
            return "cudagraph", ""
        if dtype == torch.float32:
            return "torchscript", ""
        why = f"no graph for {dtype} on the CPU; backend='compile' would compile one"
        if cpu_native_kernels(dtype) is False:
            why += f"; no native {str(dtype).split('.')[-1]} kernels on this CPU,"
            why += " so float32 runs faster here"
        return "eager", why
    if backend == "torchscript" and (cuda or dtype != torch.float32):
        return "eager", "TorchScript's oneDNN graph takes CPU float32 only"
    if backend == "cudagraph" and not cuda:
        return "eager", "CUDA graphs need a CUDA input"
    return backend, ""


class CompileFellBack(Exception):
    """torch.compile ran (part of) a network eagerly instead of compiling it."""


_RECOMPILE_LIMIT = (
    "dynamo's recompile limit (torch._dynamo.config.recompile_limit) was reached: every "
    "network shares one forward, and its compiled graphs count against one limit per "
    "process; torch._dynamo.reset() between networks clears them"
)


@dataclass
class CompileWatch:
    """What torch.compile built during a ``compile_watch()`` block, from dynamo's counters."""

    graphs: int = 0
    graph_breaks: int = 0

    @property
    def fell_back(self) -> str | None:
        """Why the block, a first call after ``torch._dynamo.reset()`` or at a new input
        shape, did not run as one compiled graph (None: it did). Such a call that compiles
        no graph ran eagerly: dynamo's recompile limit is the usual cause. (Any other call
        may reuse a graph already compiled, for another model of the same architecture too,
        so compiling nothing says nothing there.)"""
        if self.graph_breaks:
            return f"{self.graph_breaks} graph break(s): parts of the network ran eagerly"
        if not self.graphs:
            return f"no graph was compiled; {_RECOMPILE_LIMIT}"
        return None


@contextmanager
def compile_watch() -> Iterator[CompileWatch]:
    """Count the graphs dynamo compiles and the graph breaks it meets inside the block (the
    counters are process-wide; ``torch._dynamo.reset()`` leaves them alone)."""
    from torch._dynamo.utils import counters

    def now() -> tuple[int, int]:
        return counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())

    watch = CompileWatch()
    graphs, breaks = now()
    try:
        yield watch
    finally:
        after = now()
        watch.graphs, watch.graph_breaks = after[0] - graphs, after[1] - breaks


class _CudaGraph:
    """``fn`` captured in one CUDA graph for inputs shaped like ``x``, replayed per call:
    the input is copied into the graph's own buffer and the output cloned out of it (the
    next replay overwrites it). Kernel launches, not arithmetic, bound small batches on a
    large GPU; a replay launches them all at once.

    Capture, warm-up and replay run with the input's GPU current (a model on a second GPU
    must not capture on the first). ``capture_error_mode="thread_local"``: the default
    ("global") makes a CUDA call from any other thread during the capture an error, and a
    user's DataLoader thread pinning memory is such a call."""

    def __init__(self, fn: Callable, x: torch.Tensor) -> None:
        self.device = x.device
        with torch.cuda.device(self.device):
            self.static_in = x.clone()
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            # Warm-up outside the capture, on a side stream as capture requires: cuDNN picks
            # its algorithms and lazily made buffers exist before the graph records addresses.
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(3):
                    fn(self.static_in)
            torch.cuda.current_stream(x.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.static_out = fn(self.static_in)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.cuda.device(self.device):
            self.static_in.copy_(x)
            self.graph.replay()
            return self.static_out.clone()


def _script(model: nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    """Trace, freeze and oneDNN-optimise ``model`` for inputs shaped like ``x``."""
    with warnings.catch_warnings(), torch.no_grad():
        # TorchScript is deprecated in favour of torch.compile, but on the CPU its oneDNN
        # pass is what measured fastest, and it compiles in about a second. Some oneDNN
        # kernels fail only when run (adaptive pooling to a size that does not divide the
        # input, AlexNet below 224): the caller runs it once and compares.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_Unchecked(model), x, check_trace=False)
        return torch.jit.optimize_for_inference(traced.eval())


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
    ``backend`` decides what runs each input shape (the first input of a shape builds it;
    ``plans`` and ``plan_details`` say what runs and why):

    - ``"auto"`` (default): on the CPU in float32 a frozen oneDNN TorchScript graph, on
      CUDA the folded model captured in a CUDA graph; either is timed against the folded
      eager model on that first input and kept only if faster (a few extra calls).
    - ``"torchscript"``: the oneDNN graph wherever it works (CPU float32).
    - ``"cudagraph"``: the CUDA graph wherever it works (CUDA inputs).
    - ``"compile"``: ``torch.compile`` (inductor, with freezing, static shapes, one whole
      graph) per shape, on CUDA also captured in a CUDA graph; compiling takes seconds to
      minutes per shape, reported as ``build_s``. Where dynamo would run the network
      eagerly instead (a graph break, or its recompile limit: every network shares one
      ``forward``, so past eight compiled graphs in one process, ``torch._dynamo.reset()``
      clears them), the plan says eager and why.
    - ``"eager"``: the folded eager model only.

    Every graph's output is compared with the eager model's on its first input, within a
    bound set by the precision in effect (``graph_tolerance``: 1e-3 of the largest logit in
    float32, 3e-2 in half precision and where float32 convolutions run in TF32, as cuDNN's
    do by default; each plan's ``check`` states it), and the eager model runs where a graph
    cannot be built, differs, or autograd is wanted.
    ``channels_last``: weights in channels_last memory format, which measured faster for
    eager convolutions on the CPU and on CUDA. ``example`` is an input used to read the
    data flow (default: one random image at the model's minimum input size).

    ``dtype``: ``torch.bfloat16`` or ``torch.float16`` stores the folded weights in half
    precision (folding itself is done in float32 first), casts each input to it and
    returns float32 outputs; the TorchScript graph is float32 only, so on the CPU it runs
    eager unless ``backend="compile"``. ``None`` or ``torch.float32`` keeps
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
    strip_identities(fast)
    if dtype is not None and dtype != torch.float32:
        fast = fast.to(dtype)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    fast.requires_grad_(False)
    return InferenceModel(fast, backend=backend, dtype=dtype).eval()
