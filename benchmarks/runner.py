"""Measuring one network in every mode, ours and torchvision's twin interleaved."""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

import nets
from nets.cost import count_macs
from nets.inference import COMPILE_OPTIONS, compile_watch, optimize_for_inference

from . import memory, roofline
from .models import build_pair, input_size
from .timing import interleaved, ratio_stats, sync

# eager, channels_last: as they say. bf16: bf16 autocast (NCHW). amp: bf16 autocast with
# channels_last, the recommended way to train and infer on a GPU. compile: torch.compile.
# fast: our fast path at its best precision for the device (float16 on CUDA, where it
# keeps the float32 top-1 on real images; float32 on the CPU); fast-fp32: the fast path in
# float32. torchvision's twin runs every mode the same way, except the fast ones, where it
# stays plain eager float32 (and on CUDA is also compiled at the fast path's precision).
MODES = ("eager", "channels_last", "bf16", "amp", "compile", "fast", "fast-fp32")
FAST_MODES = ("fast", "fast-fp32")
DEFAULT_MODES = {"cpu": ("eager", "channels_last", "fast"), "cuda": MODES}
# The compile mode is torch.compile as a user calls it, for ours and the twin alike (torch's
# defaults: it trains too, so no freezing); tests swap in a counting backend.
COMPILE_MODE_OPTIONS: dict = {}


def fast_backend(device: torch.device, chosen: str | None = None) -> str:
    """The fast path's backend in the fast modes: ``chosen``, or by default inductor on
    CUDA (compiled, then replayed from a CUDA graph: the fastest measured there) and the
    automatic choice on the CPU (TorchScript's oneDNN graph or eager, whichever is faster;
    inductor measured slower than the oneDNN graph there)."""
    return chosen or ("compile" if device.type == "cuda" else "auto")


def fast_dtype(mode: str, device: torch.device) -> torch.dtype:
    """The precision the fast path runs ``mode`` in on ``device``."""
    if mode == "fast" and device.type == "cuda":
        return torch.float16  # bfloat16 loses the top-1 on real images (tests/nets/test_inference)
    return torch.float32


def mode_dtype(mode: str, device: torch.device) -> torch.dtype:
    """The precision ``mode``'s convolutions run in on ``device`` (the roofline's peak is
    measured in it): bf16 under autocast, the fast path's own in the fast modes, else float32."""
    if mode in ("bf16", "amp"):
        return torch.bfloat16
    return fast_dtype(mode, device) if mode in FAST_MODES else torch.float32


@dataclass
class Settings:
    device: torch.device
    batch_size: int = 8
    input_size: int | None = None  # None: each network's own
    repeats: int = 7
    modes: tuple[str, ...] = ("eager", "fast")
    memory: bool = True
    timeout: float | None = None  # seconds per network; None: no limit
    fast_backend: str | None = None  # optimize_for_inference's backend; None: fast_backend()

    def __post_init__(self) -> None:
        # As the command line's checks: counts are positive, and 0 is never "not given" (an
        # input size of 0 would measure each model's own; 0 repeats has no median).
        for name, value, optional in (("batch_size", self.batch_size, False),
                                      ("input_size", self.input_size, True),
                                      ("repeats", self.repeats, False)):  # fmt: skip
            if value is None and optional:
                continue
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"Settings.{name} must be a positive integer, got {value!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"Settings.timeout must be a positive number, got {self.timeout!r}")


class NetworkTimeout(Exception):
    """A network's measurement ran past ``Settings.timeout``."""


class deadline:  # noqa: N801 - used as a context manager, like contextlib's
    """Raise ``NetworkTimeout`` in this (main) thread once ``seconds`` have passed.

    A hung ``torch.compile`` is Python code and a CUDA wait returns to Python between
    kernels, so the alarm stops either at the next bytecode instead of hanging the run.
    torch.compile wraps or swallows what its backend raises (BackendCompilerFailed, or a
    logged fall-back to eager), so the alarm fires again every second until the block is
    left, and whatever exception leaves it once expired is reported as the timeout.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.expired = False

    def _expire(self, *_: object) -> None:
        self.expired = True
        raise NetworkTimeout(f"ran past --timeout {self.seconds:g} s")

    def __enter__(self) -> deadline:
        if not self.seconds:
            return self
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("a per-network timeout works in the main thread only")
        self._previous = signal.signal(signal.SIGALRM, self._expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds, 1.0)
        return self

    def __exit__(self, kind, exc, tb) -> None:  # noqa: ANN001
        if not self.seconds:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)
        if self.expired and isinstance(exc, Exception) and not isinstance(exc, NetworkTimeout):
            raise NetworkTimeout(f"ran past --timeout {self.seconds:g} s") from exc


@dataclass
class Subjects:
    """What one network is measured with, every tensor on the target device: ours and
    torchvision's twin (or None) in eval mode, a batch-1 input and a batch-N input."""

    ours: nn.Module
    theirs: nn.Module | None
    x1: torch.Tensor
    xb: torch.Tensor


def subjects(name: str, settings: Settings) -> Subjects:
    """The one place where models and inputs are put on the device: built on the CPU (the
    twin's weights travel through a file), moved once, inputs created there."""
    device = settings.device
    size = input_size(name, settings.input_size)
    ours, theirs = build_pair(name)
    ours = ours.to(device).eval()
    theirs = None if theirs is None else theirs.to(device).eval()
    g = torch.Generator().manual_seed(0)
    shape = (ours.in_chans, size, size)
    x1 = torch.randn(1, *shape, generator=g).to(device)
    xb = torch.randn(settings.batch_size, *shape, generator=g).to(device)
    return Subjects(ours, theirs, x1, xb)


def max_abs_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float | None:
    """Largest difference of two models' outputs on ``x`` (None on the meta device, which
    has shapes but no values)."""
    with torch.no_grad():
        diff = (a(x) - b(x)).abs().max()
    return None if diff.device.type == "meta" else diff.item()


def mode_supported(mode: str, device: torch.device) -> str | None:
    """Why ``mode`` cannot run on ``device`` (None: it can)."""
    if mode == "bf16" and device.type != "cuda":
        return "bf16 autocast is measured on CUDA only"
    return None


def prepare(
    model: nn.Module, mode: str, example: torch.Tensor, *, ours: bool, backend: str | None = None
) -> nn.Module:
    """``model`` as ``mode`` runs it. torchvision's twin in the fast modes stays eager: the
    fast path is compared with torchvision's plain eager model, the issue's target."""
    if mode in ("channels_last", "amp"):
        return model.to(memory_format=torch.channels_last)
    if mode == "compile":
        return torch.compile(model, **COMPILE_MODE_OPTIONS)
    if mode in FAST_MODES and ours:
        dtype = fast_dtype(mode, example.device)
        backend = fast_backend(example.device, backend)
        return optimize_for_inference(model, example, dtype=dtype, backend=backend)
    return model


def references(mode: str, device: torch.device, twin: bool) -> list[str]:
    """The models timed side by side in ``mode``, by their figures' prefix: ours (""),
    torchvision's twin prepared the same way ("tv_"), and in the fast modes our own plain
    eager model ("eager_") and, on CUDA, the twin compiled at the fast path's precision
    ("tvc_"). Logic alone decides this, so CPU tests cover the CUDA choice."""
    prefixes = ["", "tv_"] if twin else [""]
    if mode in FAST_MODES:
        prefixes.append("eager_")
        if twin and device.type == "cuda":
            prefixes.append("tvc_")
    return prefixes


def _convert(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode in ("channels_last", "amp"):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    if mode in ("bf16", "amp"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled_twin(theirs: nn.Module, dtype: torch.dtype) -> nn.Module:
    """torchvision's model as a user would speed it up alone: in ``dtype``, channels_last,
    under torch.compile (what the fast path must beat to add anything), compiled as the fast
    path compiles ours: static shapes (one graph per input shape, never a dynamic-shape
    recompile at the second) and inductor's freezing, which is safe in eval mode."""
    twin = copy.deepcopy(theirs).to(dtype).to(memory_format=torch.channels_last).eval()
    twin.requires_grad_(False)
    return torch.compile(twin, dynamic=False, **COMPILE_OPTIONS)


def reset_compiler() -> None:
    """Forget every compiled graph. Every network of ours shares one ``forward``, and dynamo
    allows one code object ``torch._dynamo.config.recompile_limit`` (8) graphs per process:
    past it, a compiled model quietly runs eagerly. A compiling mode starts from empty
    caches, so that its figures are compiled figures; its models are thrown away after it."""
    torch._dynamo.reset()


def _infer_fn(model: nn.Module, x: torch.Tensor, mode: str, device: torch.device) -> Callable:
    def run() -> None:
        with torch.no_grad(), _autocast(mode, device):
            model(x)

    return run


def _train_fn(model: nn.Module, x: torch.Tensor, mode: str, device: torch.device) -> Callable:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def run() -> None:
        # The forward pass and the loss under autocast, backward outside it, as the
        # autocast documentation asks (and as the trainer does).
        memory.train_step(model, opt, x, autocast=lambda: _autocast(mode, device))

    return run


def _pair_figures(
    fns: list[Callable],
    prefixes: list[str],
    batch: int,
    settings: Settings,
    key: str,
    row: dict,
    also: Callable | None = None,
) -> list[float] | None:
    """Time ``fns`` interleaved, the first being ours; store the medians in ``row`` under
    ``prefix + key`` and, for each of the others, the ratio ours/it as ``ratio_`` + prefix.
    ``also`` (the roofline's peak layer) is timed in the same interleaving, so that it
    meets the same load; its seconds per call are returned."""
    timed = interleaved([*fns, *([also] if also else [])], settings.device,
                        repeats=settings.repeats)  # fmt: skip
    samples, extra = timed[: len(fns)], timed[len(fns) :]
    scale = (lambda s: s.median * 1000) if key == "latency_ms" else (lambda s: batch / s.median)
    for prefix, s in zip(prefixes, samples, strict=True):
        row[f"{prefix}{key}"] = scale(s)
        row[f"{prefix}{key}_samples"] = s.seconds
        if prefix:
            row[f"ratio_{prefix.replace('tv_', '')}{key}"] = ratio_stats(samples[0], s)
    return extra[0].seconds if extra else None


def _first_calls(
    fns: list[Callable],
    prefixes: list[str],
    key: str,
    device: torch.device,
    row: dict,
    only: tuple[str, ...],
    watched: dict[str, str] | None = None,
) -> None:
    """Time the first call of the functions whose prefix is in ``only`` on their own
    (compilation or tracing happens there), added up over the shapes as ``prefix + key`` in
    seconds, before the interleaved timing warms them up.

    ``watched``: prefix -> the plan key (input shape) of the torch.compile'd models among
    them. What each first call really ran is recorded under ``prefix + "plans"`` (and why,
    when it fell back to eager, under ``prefix + "plan_why"``): after ``reset_compiler``,
    a first call at a new shape that compiles no graph ran eagerly."""
    watched = watched or {}
    for fn, prefix in zip(fns, prefixes, strict=True):
        if prefix not in only:
            continue
        sync(device)
        t = time.perf_counter()
        with compile_watch() as watch:
            fn()
        sync(device)
        row[f"{prefix}{key}"] = row.get(f"{prefix}{key}", 0.0) + time.perf_counter() - t
        if prefix in watched:
            _record_plan(row, prefix, watched[prefix], watch.fell_back)


def _record_plan(row: dict, prefix: str, shape: str, fell_back: str | None) -> None:
    row.setdefault(f"{prefix}plans", {})[shape] = "eager" if fell_back else "compile"
    if fell_back:
        row.setdefault(f"{prefix}plan_why", {})[shape] = f"torch.compile fell back: {fell_back}"


def _shape(x: torch.Tensor) -> str:
    return "x".join(map(str, x.shape))


def _watched(mode: str, prefixes: list[str], x: torch.Tensor, train: bool = False) -> dict:
    """The torch.compile'd models of ``mode`` and the plan key of their first call on ``x``:
    ours and the twin in ``compile`` (the training step's key starts with "train"), the
    compiled twin in the fast modes (ours plans itself: ``InferenceModel.plans``)."""
    shape = ("train " if train else "") + _shape(x)
    compiled = ("", "tv_") if mode == "compile" else ("tvc_",)
    return {p: shape for p in prefixes if p in compiled}


# Modes whose first call at a new shape builds something (a compiled graph, a traced plan):
# its time is reported as compile_s, apart from the steady-state figures.
COMPILING = ("compile", *FAST_MODES)


def measure_model(name: str, settings: Settings, log: Callable[[str], None] = print) -> list[dict]:
    """One row per mode for ``name``: cost, latency, throughputs, peak memory, ratios."""
    return list(iter_measure(name, settings, log))


def iter_measure(
    name: str, settings: Settings, log: Callable[[str], None] = print
) -> Iterator[dict]:
    """``measure_model`` one mode at a time: each row is yielded as soon as it is measured,
    so a caller can save it before the next mode starts."""
    device, batch = settings.device, settings.batch_size
    subj = subjects(name, settings)
    base_ours, base_theirs, x1 = subj.ours, subj.theirs, subj.x1
    in_chans, size = base_ours.in_chans, x1.shape[-1]
    params = sum(p.numel() for p in base_ours.parameters())
    macs = count_macs(base_ours, (1, in_chans, size, size))
    common = {
        "model": name,
        "family": nets.get_spec(name).family,
        "device": str(device),
        "input_size": size,
        "batch_size": batch,
        "params": params,
        "macs": macs,
        "torchvision": base_theirs is not None,
    }
    if base_theirs is not None:
        common["max_abs_diff_vs_tv"] = max_abs_diff(base_ours, base_theirs, x1)
    roofs: dict[torch.dtype, roofline.PeakLayer | None] = {}  # chosen once per precision

    for mode in settings.modes:
        row = dict(common, mode=mode)
        why = mode_supported(mode, device)
        if why:
            row["skipped"] = why
            yield row
            continue
        log(f"{name} [{mode}] {size}x{size} batch {batch}")
        dtype = mode_dtype(mode, device)
        if dtype not in roofs:
            roofs[dtype] = roofline.peak_layer(device, dtype)
        roof = roofs[dtype]
        roof_seconds = _measure_mode(subj, mode, settings, row, roof)
        yield roofline.annotate(row, roof, roof_seconds)


def _measure_mode(
    subj: Subjects, mode: str, settings: Settings, row: dict, roof: roofline.PeakLayer | None
) -> float | None:
    """Fill ``row`` with one mode's figures: ours and torchvision's twin prepared for the
    mode, then latency, throughput, compile time, the training step (not for the fast path)
    and peak memory. Returns the seconds of the throughput pass, which the roofline reads."""
    device, batch = settings.device, settings.batch_size
    base_ours, base_theirs, x1, xb = subj.ours, subj.theirs, subj.x1, subj.xb
    roof_seconds = None
    if mode in COMPILING:
        reset_compiler()
    ours = copy.deepcopy(base_ours)
    theirs = None if base_theirs is None else copy.deepcopy(base_theirs)
    ours = prepare(ours, mode, _convert(xb, mode), ours=True, backend=settings.fast_backend)
    if theirs is not None:
        theirs = prepare(theirs, mode, _convert(xb, mode), ours=False)
    prefixes = references(mode, device, twin=theirs is not None)
    models = [ours] if theirs is None else [ours, theirs]  # then the fast modes' references
    if "eager_" in prefixes:
        models.append(copy.deepcopy(base_ours))
    if "tvc_" in prefixes:
        models.append(compiled_twin(base_theirs, fast_dtype(mode, device)))
    # Inputs of each model: the compiled twin takes the fast path's precision itself.
    cast = {"tvc_": fast_dtype(mode, device)} if "tvc_" in prefixes else {}
    if mode in FAST_MODES:
        row["dtype"] = str(fast_dtype(mode, device)).replace("torch.", "")
    for key, x, n in (("latency_ms", x1, 1), ("throughput", xb, batch)):
        fns = [
            _infer_fn(m, _convert(x.to(cast.get(p, x.dtype)), mode), mode, device)
            for m, p in zip(models, prefixes, strict=True)
        ]
        if mode in COMPILING:  # each new shape compiles (or is traced and timed)
            # torchvision's twin is compiled in "compile", and stays eager in the fast
            # modes, where its compiled copy is timed as tvc_.
            only = ("", "tv_") if mode == "compile" else ("", "tvc_")
            watched = _watched(mode, prefixes, x)
            _first_calls(fns, prefixes, "compile_s", device, row, only, watched)
        also = roof.make() if roof is not None and key == "throughput" else None
        seconds = _pair_figures(fns, prefixes, n, settings, key, row, also)
        roof_seconds = roof_seconds if seconds is None else seconds
        also = None  # the peak layer's tensors: not held during the memory figures
    if mode in FAST_MODES:
        row["plans"] = {"x".join(map(str, k)): v for k, v in ours.plans.items()}
        row["plan_why"] = {"x".join(map(str, k)): p.why for k, p in ours.plan_details.items()}
        # How each graph was checked against eager: the tolerance and the precision in effect.
        row["plan_check"] = {
            "x".join(map(str, k)): p.check for k, p in ours.plan_details.items() if p.check
        }
    else:  # the fast path is inference-only
        trained = (
            [copy.deepcopy(m).train() for m in models]
            if mode != "compile"
            else [m.train() for m in models]
        )
        fns = [_train_fn(m, _convert(xb, mode), mode, device) for m in trained]
        if mode == "compile":
            watched = _watched(mode, prefixes, xb, train=True)
            _first_calls(fns, prefixes, "train_compile_s", device, row, ("", "tv_"), watched)
        _pair_figures(fns, prefixes, batch, settings, "train_throughput", row)
        if settings.memory and memory.tracks(device):
            row["peak_train_mb"] = memory.cuda_peak(fns[0], device)
        for m in trained:  # in "compile" these are the inference models: back to eval, so
            m.eval()  # that the inference peak below is measured as inference, no recompile
        del trained, fns
    if settings.memory and memory.tracks(device):
        row["peak_infer_mb"] = memory.cuda_peak(
            _infer_fn(ours, _convert(xb, mode), mode, device), device
        )
    if settings.memory and device.type == "cpu" and mode == "eager":
        _cpu_memory_figures(subj, row, batch)
    del ours, theirs, models
    return roof_seconds


def _cpu_memory_figures(subj: Subjects, row: dict, batch: int) -> None:
    """Peak memory of inference and a training step on the CPU, measured in a fresh
    process each (the peak of this one says nothing)."""
    name, size = row["model"], row["input_size"]
    for impl in ("ours", "tv") if subj.theirs is not None else ("ours",):
        peak = memory.cpu_peak(name, impl, batch, size)
        if peak:
            prefix = "" if impl == "ours" else "tv_"
            row[f"{prefix}peak_infer_mb"] = peak["infer_mb"]
            row[f"{prefix}peak_train_mb"] = peak["train_mb"]
