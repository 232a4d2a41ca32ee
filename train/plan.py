"""Planning a run: the output folder, the strategy (``auto``'s quick probe, a resumed
run's checkpoint), the schedule and layout, then the network it starts from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

import weights as wts

from . import checkpoint as ckpt
from . import segmentation as seg
from .config import DEFAULTS, TrainConfig
from .context import Context, say
from .errors import TrainError
from .features import cached_features
from .report import LOG, METRICS
from .strategy import (
    Freezing,
    apply_freezing,
    build_model,
    choose_segmentation_strategy,
    choose_strategy,
    has_default_weights,
    starting_weights,
)

if TYPE_CHECKING:
    from .datasets import DataSplit
    from .segmentation import SegSplit

# Every file a run writes into --out; --overwrite deletes exactly these.
RUN_FILES = (
    ckpt.CHECKPOINT, ckpt.BEST, LOG, METRICS, "loss.png", "accuracy.png", "confusion.png",
    "miou.png", "segmentation.png",
)  # fmt: skip


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder: a non-empty ``out`` needs ``--resume`` (carry
    on with the run there) or ``--overwrite`` (replace it)."""
    if resume and overwrite:
        raise TrainError("--resume continues the run in --out and --overwrite replaces it: "
                         "pass one of them")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {str(out)!r} is a file, not a folder")
    if not (resume or overwrite) and out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            raise TrainError(
                f"--out {str(out)!r} is not empty ({shown}): pass --resume to continue that "
                "run, --overwrite to replace it, or another --out"
            )
    # Now, not at the first checkpoint an epoch (or a feature pass) later.
    wts.check_writable(out, "--out")


def prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out``; with ``overwrite`` delete the previous run's files from it first."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            for stale in out.glob(".*.part"):  # temporary files of an interrupted write
                stale.unlink(missing_ok=True)
    except OSError as exc:
        raise TrainError(
            f"cannot write to --out {str(out)!r} ({exc.strerror or type(exc).__name__})"
        ) from None


@dataclass
class RunPlan:
    """What the run does, decided once before anything depends on it."""

    strategy: str
    reason: str
    weights: str | None  # where the network starts: a weights spec, or None (random)
    epochs: int
    lr: float
    warmup_epochs: float
    out: Path
    channels_last: bool
    resumed: dict | None = None  # the checkpoint read for --resume
    model: nn.Module | None = None  # auto's probed backbone, kept for a linear probe
    segmentation: bool = False
    input_size: int | None = None  # segmentation: images and masks are size x size

    @property
    def probe(self) -> bool:
        return self.strategy == "linear-probe"

    @property
    def score_key(self) -> str:
        """What "best epoch" means: the record's validation mean IoU, or top-1."""
        return "val_miou" if self.segmentation else "val_top1"


def _resume_folder(cfg: TrainConfig) -> Path:
    """The run to resume: ``--out``, else ``runs/<model>-<strategy>``; with ``auto`` the
    one such folder that holds a checkpoint."""
    if cfg.out:
        return Path(cfg.out)
    if cfg.strategy != "auto":
        return Path(f"runs/{cfg.model}-{cfg.strategy}")
    found = sorted(p.parent for p in Path("runs").glob(f"{cfg.model}-*/{ckpt.CHECKPOINT}"))
    if len(found) != 1:
        where = ", ".join(map(str, found)) or "none in runs/"
        raise TrainError(f"--resume with --strategy auto needs --out: runs to resume: {where}")
    return found[0]


def default_channels_last(device: torch.device, segmentation: bool) -> bool:
    """Whether a run trains in channels_last (NHWC convolutions) unless told. On CUDA it made
    ResNet-50's step 1.4x faster (H200). On the CPU every classification step measured
    faster: 1.08-1.70x for LeNet-5 to EfficientNet-Lite0 on digits, small grayscale images
    and photos (benchmarks/results/train-step-layout-cpu-2026-12-02/), and the 19 networks of
    the 2026-11-22 benchmark's training step 1.02-1.73x; but U-Nets there went either way
    (the paper's U-Net 0.92x, on a ResNet-34 1.11x, on Lite0 1.28x), so segmentation on the
    CPU stays contiguous."""
    return device.type == "cuda" or not segmentation


def default_normalize_on_device(device: torch.device) -> bool:
    """Whether image batches cross to the device as uint8 and are normalised there unless
    told: on CUDA, where the copy is a quarter of float32's bytes (ResNet-50 at batch 256:
    38.5 against 154 MB a step) and the arithmetic is free beside the step, as timm's
    prefetching loader does. On the CPU there is no copy, and normalising in the loader
    workers keeps that work off the process that trains."""
    return device.type == "cuda"


def backbone_features(
    model: nn.Module, pre: wts.Preprocessing, data: DataSplit, cfg: TrainConfig,
    ctx: Context, dtype: torch.dtype | None, workers: int,
) -> tuple[dict[str, torch.Tensor], Path, bool]:  # fmt: skip
    """The backbone's cached features for ``data``: ``(tensors, cache file, hit)``."""
    return cached_features(
        model, pre, data, cache_dir=cfg.cache_dir, device=ctx.device, amp=cfg.amp,
        amp_dtype=dtype, batch_size=cfg.batch_size, num_workers=workers, strict=cfg.strict,
        progress=cfg.progress and ctx.is_main, is_main=ctx.is_main, barrier=ctx.barrier,
    )  # fmt: skip


def _quick_probe(
    model: nn.Module, pre: wts.Preprocessing, data: DataSplit, cfg: TrainConfig,
    ctx: Context, dtype: torch.dtype | None, workers: int,
) -> float:  # fmt: skip
    """Validation top-1 of a logistic regression on the backbone's (cached) features: what
    ``auto`` weighs a linear probe by."""
    feats, _, _ = backbone_features(model, pre, data, cfg, ctx, dtype, workers)
    g = torch.Generator().manual_seed(cfg.seed)
    x, y = feats["train_x"], feats["train_y"].long()
    mu, sd = x.mean(0), x.std(0) + 1e-6
    head = nn.Linear(x.shape[1], len(data.classes))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(30):
        for idx in torch.randperm(len(x), generator=g).split(256):
            loss = nn.functional.cross_entropy(head((x[idx] - mu) / sd), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = head((feats["val_x"] - mu) / sd).argmax(1)
    return float((pred == feats["val_y"].long()).float().mean())


def _starts_from_weights(cfg: TrainConfig) -> bool:
    """Whether the run can start from trained weights (given, or the model's default):
    what ``auto`` weighs first."""
    return cfg.weights is not None or has_default_weights(cfg.model)


def _auto_strategy(
    cfg: TrainConfig, ctx: Context, data: DataSplit, workers: int, dtype: torch.dtype | None
) -> tuple[str, str, nn.Module | None]:
    """``auto`` for classification: the strategy, why, and the probed backbone when the
    choice is a linear probe (its features are cached, the run reuses both)."""
    per_class = min(data.counts("train"))
    with_weights = _starts_from_weights(cfg)
    probe_top1, model = None, None
    if with_weights and per_class >= 30:
        torch.manual_seed(cfg.seed)
        start = starting_weights(cfg.model, "linear-probe", cfg.weights)
        model = build_model(cfg.model, len(data.classes), start, aux=False)
        model.to(ctx.device)
        pre = model.pretrained_cfg.preprocessing
        probe_top1 = _quick_probe(model, pre, data, cfg, ctx, dtype, workers)
    strategy, reason = choose_strategy(per_class, probe_top1, with_weights)
    say(ctx, f"auto: chose {strategy}: {reason}")
    return strategy, reason, model if strategy == "linear-probe" else None


def plan_run(
    cfg: TrainConfig, ctx: Context, data: DataSplit | SegSplit, workers: int,
    dtype: torch.dtype | None,
) -> RunPlan:  # fmt: skip
    """The strategy (on resume the checkpoint's, before anything depends on it; ``auto``
    decided by a quick linear probe where it can), the starting weights, epochs, learning
    rate and output folder."""
    strategy, reason, resumed, model = cfg.strategy, "asked for", None, None
    if cfg.resume:
        resumed = ckpt.load_checkpoint(_resume_folder(cfg) / ckpt.CHECKPOINT)
        ckpt.check_resume(resumed, cfg.model, data.classes, task=cfg.task)
        if cfg.strategy not in ("auto", resumed["strategy"]):
            say(ctx, f"resume: the checkpoint trains {resumed['strategy']}; "
                      f"--strategy {cfg.strategy} is ignored")  # fmt: skip
        strategy, reason = resumed["strategy"], "the resumed run's"
    elif strategy == "auto" and cfg.task == seg.SEGMENTATION:
        strategy, reason = choose_segmentation_strategy(len(data.train), _starts_from_weights(cfg))
        say(ctx, f"auto: chose {strategy}: {reason}")
    elif strategy == "auto":
        strategy, reason, model = _auto_strategy(cfg, ctx, data, workers, dtype)
    defaults = DEFAULTS[strategy]
    taken = [
        text
        for given, text in (
            (cfg.epochs, f"{defaults.epochs} epochs"),
            (cfg.lr, f"lr {defaults.lr[cfg.optimizer]:g} ({cfg.optimizer})"),
            (cfg.warmup_epochs, f"{defaults.warmup_epochs:g} warm-up epoch(s) then cosine"),
        )
        if given is None
    ]
    if taken:
        say(ctx, f"defaults for {strategy} (train.config.DEFAULTS): {', '.join(taken)}")
    out = Path(cfg.out or f"runs/{cfg.model}-{strategy}")
    if not cfg.out:  # a given --out was checked before any work
        check_out(out, cfg.resume, cfg.overwrite)
    return RunPlan(
        strategy=strategy,
        reason=reason,
        weights=starting_weights(cfg.model, strategy, cfg.weights),
        epochs=cfg.epochs if cfg.epochs is not None else defaults.epochs,
        lr=cfg.lr if cfg.lr is not None else defaults.lr[cfg.optimizer],
        warmup_epochs=(
            cfg.warmup_epochs if cfg.warmup_epochs is not None else defaults.warmup_epochs
        ),
        out=out,
        channels_last=default_channels_last(ctx.device, cfg.task == seg.SEGMENTATION)
        if cfg.channels_last is None
        else cfg.channels_last,
        resumed=resumed,
        model=model,
        segmentation=cfg.task == seg.SEGMENTATION,
        input_size=(cfg.input_size or seg.default_input_size(data))
        if cfg.task == seg.SEGMENTATION
        else None,
    )


def build_network(
    cfg: TrainConfig, plan: RunPlan, ctx: Context, n_classes: int
) -> tuple[nn.Module, wts.Preprocessing, Freezing]:
    """The model on its device (auto's probed one where it is kept), its preprocessing and
    what the strategy freezes."""
    torch.manual_seed(cfg.seed)
    aux = cfg.aux_weight > 0 and not plan.probe
    model = plan.model or build_model(cfg.model, n_classes, plan.weights, aux=aux)
    pre = model.pretrained_cfg.preprocessing  # the weights', else the family's default
    if plan.segmentation:
        if plan.input_size < model.min_input_size:
            raise TrainError(f"--input-size {plan.input_size} is below {cfg.model}'s smallest "
                             f"input, {model.min_input_size}")  # fmt: skip
        # Trained and scored at size x size: predict resizes to it, from the checkpoint.
        pre = dataclasses.replace(pre, input_size=plan.input_size, resize_size=plan.input_size)
    freezing = apply_freezing(model, plan.strategy, cfg.unfreeze_from, cfg.freeze_bn,
                              head_bn_trains=plan.segmentation)  # fmt: skip
    model.to(ctx.device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, pre, freezing
