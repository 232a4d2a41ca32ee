"""``fit``: one explicit training loop for every strategy, device and process count."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import weights as wts

from . import checkpoint as ckpt
from . import segmentation as seg
from .augment import Augment, inspect_images, resolve_augment
from .config import DEFAULTS, TrainConfig, validate
from .datasets import default_workers, load_data
from .errors import OUT_OF_MEMORY, TrainError
from .features import cache_info, cached_features, default_cache_dir
from .loop import Step, Throughput, batches, evaluate, train_epoch
from .memory_cache import image_data
from .report import (
    append_jsonl,
    format_metrics,
    plot_confusion,
    plot_curves,
    plot_segmentation,
    write_json,
)
from .strategy import (
    apply_freezing,
    build_model,
    choose_segmentation_strategy,
    choose_strategy,
    has_default_weights,
    param_groups,
    starting_weights,
    unet_encoder,
)

LOG = "log.jsonl"
METRICS = "metrics.json"


# -- processes and devices -----------------------------------------------------------------
@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def setup(device: str) -> Context:
    """Single process, or DistributedDataParallel under torchrun (NCCL on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda was asked for but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Context(rank, world, local, dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Reseed every generator per epoch, so a resumed run repeats the epochs it missed."""
    s = (seed * 1_000_003 + epoch * 101 + rank) % (2**31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def _tensor_collate(batch):
    xs, ys = zip(*batch, strict=True)
    return torch.stack(xs), torch.stack(ys), []


def _say(ctx: Context, *args) -> None:
    if ctx.is_main:
        print(*args, flush=True)


def _maybe_kill(epoch: int) -> None:
    """Test hook: TRAIN_TEST_KILL_AFTER_EPOCH=k kills this process (SIGKILL) right after
    epoch k's checkpoint is written, as a crash would."""
    k = os.environ.get("TRAIN_TEST_KILL_AFTER_EPOCH")
    if k and int(k) == epoch:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# -- fit -----------------------------------------------------------------------------------


@dataclass
class RunState:
    """Where a run is, for the one-line error of a failure that escapes the loop."""

    where: str = "before training"
    checkpoint: Path | None = None
    epoch_saved: int = 0
    feature_rate: float | None = None  # a linear probe's backbone pass, img/s (its cache's)

    def out_of_memory(self, cfg: TrainConfig) -> str:
        smaller = max(1, cfg.batch_size // 2)
        suggestion = f"try a smaller one (--batch-size {smaller})"
        if smaller < cfg.batch_size:
            suggestion += (
                f", or keep the effective batch with --batch-size {smaller} "
                f"--accum-steps {cfg.accum_steps * 2}"
            )
        if self.checkpoint is not None and self.epoch_saved:
            kept = f"the last checkpoint is kept: {self.checkpoint} (epoch {self.epoch_saved})"
            kept += ", --resume continues from it"
        else:
            kept = "no checkpoint was written yet"
        return (
            f"out of GPU memory {self.where} with --batch-size {cfg.batch_size}: "
            f"{suggestion}; {kept}"
        )


def fit(config: TrainConfig | dict | None = None, **overrides) -> dict:
    """Train as ``config`` says and return the results (metrics, history, files)."""
    if config is None:
        config = TrainConfig()
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    validate(config)
    ctx = setup(config.device)
    run = RunState()
    try:
        return _fit(config, ctx, run)
    except OUT_OF_MEMORY:
        raise TrainError(run.out_of_memory(config)) from None
    finally:
        teardown(ctx)


def _features(model, pre, data, cfg, ctx, dtype, workers):  # noqa: ANN001, ANN202
    """The backbone's cached features for ``data``: ``(tensors, cache file, hit)``."""
    return cached_features(
        model, pre, data, cache_dir=cfg.cache_dir, device=ctx.device, amp=cfg.amp,
        amp_dtype=dtype, batch_size=cfg.batch_size, num_workers=workers, strict=cfg.strict,
        progress=cfg.progress and ctx.is_main, is_main=ctx.is_main, barrier=ctx.barrier,
    )  # fmt: skip


def _quick_probe(model, pre, data, cfg, ctx, dtype, workers) -> float:
    feats, _, _ = _features(model, pre, data, cfg, ctx, dtype, workers)
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


def _per_class(names: set[str], label_of: dict[str, int], n: int) -> list[int]:
    counts = [0] * n
    for name in names:
        if name in label_of:
            counts[label_of[name]] += 1
    return counts


def check_classes_left(
    classes: list[str], totals: list[int], skipped: list[int], which: str, allow: bool
) -> None:
    """A class whose every training (or validation) image was unreadable is an error: the
    run would otherwise train a classifier that can never predict it, and say nothing."""
    gone = [(c, t) for c, t, k in zip(classes, totals, skipped, strict=True) if t and k >= t]
    if not gone:
        return
    (name, total), more = gone[0], len(gone) - 1
    text = f"class {name!r} has no readable {which} images (all {total} skipped as unreadable)" + (
        f", and {more} more class(es) too" if more else ""
    )
    if allow:
        warnings.warn(f"{text}; going on without them (--allow-missing-classes)", stacklevel=2)
        return
    raise TrainError(
        f"{text}: replace or remove the files, or pass --allow-missing-classes to train on "
        "the other classes"
    )


def _all_names(ctx: Context, names: set[str]) -> set[str]:
    """The union over the processes: each process reads only its share of the images."""
    if not ctx.distributed:
        return names
    gathered: list = [None] * ctx.world
    torch.distributed.all_gather_object(gathered, sorted(names))
    return set().union(*gathered)


# -- the phases of a run -------------------------------------------------------------------
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

    def score(self, record: dict) -> float:
        """What "best epoch" means: validation mean IoU, or top-1."""
        return record["val_miou"] if self.segmentation else record["val_top1"]


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


def plan_run(cfg: TrainConfig, ctx: Context, data, workers: int, dtype) -> RunPlan:  # noqa: ANN001
    """The strategy (on resume the checkpoint's, before anything depends on it; ``auto``
    decided by a quick linear probe where it can), the starting weights, epochs, learning
    rate and output folder."""
    strategy, reason, resumed, model = cfg.strategy, "asked for", None, None
    if cfg.resume:
        resumed = ckpt.load_checkpoint(_resume_folder(cfg) / ckpt.CHECKPOINT)
        ckpt.check_resume(resumed, cfg.model, data.classes, task=cfg.task)
        if cfg.strategy not in ("auto", resumed["strategy"]):
            _say(ctx, f"resume: the checkpoint trains {resumed['strategy']}; "
                      f"--strategy {cfg.strategy} is ignored")  # fmt: skip
        strategy, reason = resumed["strategy"], "the resumed run's"
    elif strategy == "auto" and cfg.task == seg.SEGMENTATION:
        with_weights = cfg.weights is not None or has_default_weights(cfg.model)
        strategy, reason = choose_segmentation_strategy(len(data.train), with_weights)
        _say(ctx, f"auto: chose {strategy}: {reason}")
    elif strategy == "auto":
        per_class = min(data.counts("train"))
        with_weights = cfg.weights is not None or has_default_weights(cfg.model)
        probe_top1 = None
        if with_weights and per_class >= 30:
            torch.manual_seed(cfg.seed)
            start = starting_weights(cfg.model, "linear-probe", cfg.weights)
            model = build_model(cfg.model, len(data.classes), start, aux=False)
            model.to(ctx.device)
            pre = model.pretrained_cfg.preprocessing
            probe_top1 = _quick_probe(model, pre, data, cfg, ctx, dtype, workers)
        strategy, reason = choose_strategy(per_class, probe_top1, with_weights)
        _say(ctx, f"auto: chose {strategy}: {reason}")
        if strategy != "linear-probe":
            model = None
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
        _say(ctx, f"defaults for {strategy} (train.config.DEFAULTS): {', '.join(taken)}")
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


def build_network(cfg: TrainConfig, plan: RunPlan, ctx: Context, n_classes: int):  # noqa: ANN201
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


@dataclass
class Loaders:
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    sampler: torch.utils.data.distributed.DistributedSampler | None
    generator: torch.Generator
    net: nn.Module  # what the batches feed: the model, or a linear probe's classifier
    cache_path: Path | None = None
    # unreadable images per split and class, as far as known before training (the probe)
    probe_skipped: dict[str, list[int]] | None = None
    augment: Augment | None = None  # None for a linear probe (features, no images)
    in_memory: bool = False  # the decoded images are held in memory
    # Batches arrive as uint8 and are normalised by this on the device (``batches``).
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None


def make_loaders(cfg, plan, ctx, data, model, pre, workers, dtype, run) -> Loaders:  # noqa: ANN001
    """Training and validation loaders: of cached backbone features for a linear probe,
    else of images (workers kept across epochs, memory pinned on CUDA)."""
    n_classes = len(data.classes)
    pin = ctx.device.type == "cuda"
    probe_skipped = {"train": [0] * n_classes, "val": [0] * n_classes}
    cache_path = None
    normalize = None  # the loaders normalise, except image batches on CUDA (below)
    if plan.probe:
        run.where = "computing the backbone's features"
        feats, cache_path, hit = _features(model, pre, data, cfg, ctx, dtype, workers)
        info = cache_info(cache_path)
        rate = f"{float(info['images_per_s']):.0f} img/s" if "images_per_s" in info else "?"
        _say(ctx, f"features: {'cached' if hit else 'computed and cached'} in {cache_path} "
                  f"(backbone pass through the fast path, {info.get('fast_path', 'float32')}, "
                  f"{rate})")  # fmt: skip
        run.feature_rate = float(info["images_per_s"]) if "images_per_s" in info else None
        # The features leave unreadable images out: what is missing is what was skipped.
        for split, which in (("train", "training"), ("val", "validation")):
            totals = data.counts(split)
            readable = torch.bincount(feats[f"{split}_y"].long(), minlength=n_classes).tolist()
            probe_skipped[split] = [t - r for t, r in zip(totals, readable, strict=True)]
            check_classes_left(
                data.classes, totals, probe_skipped[split], which, cfg.allow_missing_classes
            )
        train_ds = torch.utils.data.TensorDataset(feats["train_x"], feats["train_y"].long())
        val_ds = torch.utils.data.TensorDataset(feats["val_x"], feats["val_y"].long())
        loader_kw = dict(collate_fn=_tensor_collate, num_workers=0, pin_memory=pin)
        net = model.get_classifier()
    elif plan.segmentation:
        augment = seg.seg_augment(cfg.augment)
        _say(ctx, f"augment: {augment.describe()}: {augment.reason}; at {plan.input_size}x"
                  f"{plan.input_size}")  # fmt: skip
        args = (pre, plan.input_size)
        train_ds = seg.SegDataset(
            data.train, seg.joint_transform(*args, augment, cfg.ignore_index, model.in_chans),
            model.in_chans,
        )  # fmt: skip
        val_ds = seg.SegDataset(
            data.val, seg.joint_transform(*args, None, cfg.ignore_index, model.in_chans),
            model.in_chans,
        )  # fmt: skip
        in_memory = False  # masks and images are read from disk every epoch
        loader_kw = dict(collate_fn=seg.seg_collate, num_workers=workers, pin_memory=pin,
                         persistent_workers=workers > 0)  # fmt: skip
        net = model
    else:
        stats = inspect_images(data.train)  # a few dozen headers, no decoding
        augment = resolve_augment(cfg.augment, stats, min(data.counts("train")))
        _say(ctx, f"augment: {augment.describe()}"
                  + (f": {augment.reason}" if cfg.augment == "auto" else ""))  # fmt: skip
        run.where = "decoding the images into memory"
        on_device = (default_normalize_on_device(ctx.device) if cfg.normalize_on_device is None
                     else cfg.normalize_on_device)  # fmt: skip
        images = image_data(data, pre, model.in_chans, augment, stats=stats,
                            cache_memory=cfg.cache_memory, workers=workers,
                            normalize_on_device=on_device)  # fmt: skip
        _say(ctx, images.note)
        in_memory = images.cached
        normalize = images.normalize
        train_ds, val_ds = images.train, images.val
        loader_kw = dict(
            collate_fn=images.collate,
            num_workers=workers,
            pin_memory=pin,
            # Workers live for the whole run: respawning them (and re-importing torch in
            # each) every epoch cost seconds per epoch.
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers else None,
        )
        net = model
    sampler = None
    if ctx.distributed and not plan.probe:
        sampler = torch.utils.data.distributed.DistributedSampler(
            train_ds, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed
        )
    if ctx.distributed:  # each process validates every world-th image; metrics are summed
        val_ds = torch.utils.data.Subset(val_ds, range(ctx.rank, len(val_ds), ctx.world))
    gen = torch.Generator()
    train = torch.utils.data.DataLoader(
        train_ds, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
        generator=gen, drop_last=False, **loader_kw,
    )  # fmt: skip
    val = torch.utils.data.DataLoader(val_ds, batch_size=cfg.batch_size, **loader_kw)
    return Loaders(train, val, sampler, gen, net, cache_path, probe_skipped,
                   None if plan.probe else augment, not plan.probe and in_memory,
                   normalize)  # fmt: skip


def make_step(cfg, plan, ctx, model, loaders, dtype) -> tuple[Step, nn.Module]:  # noqa: ANN001
    """The optimiser (layer-wise rates), warm-up + cosine schedule, gradient scaler and
    loss; and the network the loop trains and evaluates (DDP, compiled, as asked)."""
    groups = param_groups(
        model, plan.lr, cfg.weight_decay, cfg.backbone_lr_mult, pretrained=plan.weights is not None
    )
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=plan.lr)
    else:
        # Nesterov needs momentum; --momentum 0 is plain SGD.
        optimizer = torch.optim.SGD(
            groups, lr=plan.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0
        )
    steps_per_epoch = math.ceil(len(loaders.train) / cfg.accum_steps)
    warmup = round(plan.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(warmup, plan.epochs * steps_per_epoch)
    )
    net = loaders.net
    if ctx.distributed and not plan.probe:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)
    step = Step(
        net=net,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(ctx.device.type, enabled=dtype == torch.float16),
        criterion=criterion(cfg, plan, cfg.label_smoothing),
        trainable=[p for p in model.parameters() if p.requires_grad],
        accum=cfg.accum_steps,
        clip_grad=cfg.clip_grad,
        aux_weight=cfg.aux_weight,
        dtype=dtype,
    )
    return step, net


def criterion(cfg: TrainConfig, plan: RunPlan, label_smoothing: float = 0.0) -> nn.Module:
    """The loss: cross-entropy, or for segmentation cross-entropy + Dice (both ignoring
    unlabelled pixels)."""
    if plan.segmentation:
        return seg.DiceCELoss(cfg.dice_weight, cfg.ignore_index, label_smoothing)
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def new_meter(cfg: TrainConfig, plan: RunPlan, n_classes: int):  # noqa: ANN201
    """The epoch's metric accumulator: ``None`` is the classification ``Meter``."""
    return seg.SegMeter(n_classes, cfg.ignore_index) if plan.segmentation else None


def epoch_metrics(plan: RunPlan, train: dict, val: dict) -> dict:
    """The task's figures of an epoch, for the log and the history."""
    if plan.segmentation:
        return {
            "train_loss": train["loss"],
            "train_pixel_acc": train["pixel_acc"],
            "train_miou": train["miou"],
            "val_loss": val["loss"],
            "val_pixel_acc": val["pixel_acc"],
            "val_miou": val["miou"],
        }
    return {
        "train_loss": train["loss"],
        "train_top1": train["top1"],
        "val_loss": val["loss"],
        "val_top1": val["top1"],
        "val_top5": val["top5"],
    }


def epoch_line(plan: RunPlan, r: dict) -> str:
    if plan.segmentation:
        return (
            f"train loss {r['train_loss']:.4f} mIoU {r['train_miou']:.2%}  val loss "
            f"{r['val_loss']:.4f} mIoU {r['val_miou']:.2%} pixel acc {r['val_pixel_acc']:.2%}"
        )
    return (
        f"train loss {r['train_loss']:.4f} top-1 {r['train_top1']:.2%}  val loss "
        f"{r['val_loss']:.4f} top-1 {r['val_top1']:.2%} top-5 {r['val_top5']:.2%}"
    )


def _tracked(data, run: RunState, epoch: int):  # noqa: ANN001, ANN202
    """``data``, noting which step runs (for the one-line error of a failure inside it)."""
    for i, batch in enumerate(data):
        run.where = f"at epoch {epoch + 1}, step {i + 1}"
        yield batch


def run_epoch(cfg, ctx, plan, data, model, freezing, loaders, step, eval_net, state, run):  # noqa: ANN001, ANN201
    """Train one epoch, validate, and return the epoch's record (with its throughput)."""
    from tqdm import tqdm

    epoch = state.epoch
    t0 = time.time()
    # A distributed linear probe trains the same head on the same cached features in every
    # process (the head is tiny next to the backbone pass that made the cache), so every
    # rank draws the same random numbers and the head stays identical.
    seed_epoch(cfg.seed, epoch, 0 if plan.probe else ctx.rank)
    loaders.generator.manual_seed(cfg.seed * 7919 + epoch)
    if loaders.sampler is not None:
        loaders.sampler.set_epoch(epoch)
    freezing.set_train_mode(model, True)
    skipped = set(state.skipped)
    timing = Throughput()
    bar = tqdm(
        total=len(loaders.train), desc=f"epoch {epoch + 1}/{plan.epochs}",
        disable=not (cfg.progress and ctx.is_main), leave=False, dynamic_ncols=True,
    )  # fmt: skip

    def on_batch(i: int, loss: float) -> None:
        bar.update()
        if i % 10 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")

    def check_finite(loss: torch.Tensor, i: int) -> None:
        finite = torch.isfinite(loss.detach()).reshape(1).float()
        if ctx.distributed:
            # Every rank must stop together: a rank that stopped alone would leave the
            # others waiting in the next gradient all-reduce.
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if not bool(finite.item()):
            last = f"{run.checkpoint} (epoch {state.epoch})" if state.history else "none"
            raise TrainError(
                f"the loss became {loss.item() if not ctx.distributed else 'non-finite'} "
                f"at epoch {epoch + 1}, step {i + 1}"
                f"{' on one of the processes' if ctx.distributed else ''}; "
                f"stopped, the last good checkpoint is kept: {last}"
            )

    feed = batches(loaders.train, ctx.device, channels_last=plan.channels_last,
                   normalize=loaders.normalize, strict=cfg.strict, skipped=skipped,
                   timing=timing)  # fmt: skip
    try:
        train = train_epoch(
            step, _tracked(feed, run, epoch), len(data.classes), ctx.device,
            check_finite=check_finite, on_batch=on_batch,
            meter=new_meter(cfg, plan, len(data.classes)),
        )  # fmt: skip
    finally:
        bar.close()  # before any error's one line: a half-drawn bar would precede it
    freezing.set_train_mode(model, False)
    run.where = f"validating epoch {epoch + 1}"
    val, bad_val = evaluate(
        eval_net, loaders.val, len(data.classes), ctx.device, criterion=criterion(cfg, plan),
        dtype=step.dtype, channels_last=plan.channels_last, normalize=loaders.normalize,
        strict=cfg.strict,
        meter=new_meter(cfg, plan, len(data.classes)),
    )  # fmt: skip
    skipped = _all_names(ctx, skipped)
    bad_val = _all_names(ctx, bad_val)
    state.skipped = sorted(skipped)
    if epoch == _first_epoch(plan):  # every image has been read once now
        for which, names, split in (("training", skipped, "train"),
                                    ("validation", bad_val, "val")):  # fmt: skip
            check_classes_left(
                data.classes, data.counts(split),
                _per_class(names, data.label_of(split), len(data.classes)), which,
                cfg.allow_missing_classes,
            )  # fmt: skip
    return (
        {
            "epoch": epoch + 1,
            **epoch_metrics(plan, train, val),
            "lr": step.optimizer.param_groups[-1]["lr"],
            "skipped": len(skipped | bad_val),
            "seconds": round(time.time() - t0, 3),
            "train_images_per_s": round(timing.images_per_s, 1),
            "data_wait": round(timing.wait_share, 3),
        },
        bad_val,
        timing,
    )


def _first_epoch(plan: RunPlan) -> int:
    return plan.resumed["epoch"] if plan.resumed else 0


def save_epoch(cfg, ctx, plan, data, model, pre, step, state, record, run) -> None:  # noqa: ANN001
    """Record the epoch: the best weights exported when it improved, the checkpoint, the
    log line. Only the main process writes."""
    state.history.append(record)
    state.epoch = record["epoch"]
    # best_top1 holds the best score: top-1, or mean IoU for segmentation.
    score = plan.score(record)
    if score > state.best_top1:
        state.best_top1, state.best_epoch, state.bad_epochs = score, state.epoch, 0
        key = "val_miou" if plan.segmentation else "val_top1"
        if ctx.is_main:
            ckpt.export_model(
                model, plan.out / ckpt.BEST, classes=data.classes, preprocessing=pre,
                extra={"strategy": plan.strategy, "epoch": str(state.epoch),
                       key: repr(score), "train_config": cfg.to_json()},
            )  # fmt: skip
    else:
        state.bad_epochs += 1
    if not ctx.is_main:
        return
    parts = {"model": model, "optimizer": step.optimizer, "scheduler": step.scheduler,
             "scaler": step.scaler}  # fmt: skip
    about = {"config": cfg.to_dict(), "classes": data.classes, "in_chans": model.in_chans,
             "preprocessing": pre.as_metadata()}  # fmt: skip
    state.save(run.checkpoint, parts, about)
    run.epoch_saved = state.epoch
    append_jsonl(plan.out / LOG, record)
    print(
        f"epoch {state.epoch}/{plan.epochs}  {epoch_line(plan, record)}  "
        f"({record['seconds']:.1f}s, {record['train_images_per_s']:.0f} img/s, "
        f"data wait {record['data_wait']:.0%})",
        flush=True,
    )


def finish(cfg, ctx, plan, data, model, freezing, loaders, step, state, run, extra) -> dict:  # noqa: ANN001
    """Evaluate the best weights once more and write the run's results and plots."""
    best_state, _ = wts.read_checkpoint(plan.out / ckpt.BEST)
    model.load_state_dict(best_state, strict=False)
    freezing.set_train_mode(model, False)
    run.where = "in the final evaluation"
    final, bad_val = evaluate(
        loaders.net, loaders.val, len(data.classes), ctx.device,
        criterion=criterion(cfg, plan), dtype=step.dtype, channels_last=plan.channels_last,
        normalize=loaders.normalize,
        strict=cfg.strict, meter=new_meter(cfg, plan, len(data.classes)),
    )  # fmt: skip
    bad_val = _all_names(ctx, bad_val)
    n = len(data.classes)
    per_class = [
        sum(counts)
        for counts in zip(
            _per_class(set(state.skipped), data.label_of("train"), n),
            _per_class(bad_val, data.label_of("val"), n),
            loaders.probe_skipped["train"],
            loaders.probe_skipped["val"],
            strict=True,
        )
    ]
    skipped_per_class = {c: k for c, k in zip(data.classes, per_class, strict=True) if k}
    timing: Throughput = extra["timing"]
    results = {
        "model": cfg.model,
        "strategy": plan.strategy,
        "reason": plan.reason,
        "weights": plan.weights,
        "task": cfg.task,
        "classes": data.classes,
        **final_metrics(plan, final, data.classes),
        "confusion": final["confusion"],
        "val_images": final["count"],
        "validation": data.validation,
        "best_epoch": state.best_epoch,
        "epochs_run": len(state.history),
        "stopped_early": extra["stopped_early"],
        "skipped_images": sum(per_class),
        "skipped_per_class": skipped_per_class,
        "history": state.history,
        "out": str(plan.out),
        "checkpoint": str(run.checkpoint),
        "best": str(plan.out / ckpt.BEST),
        "feature_cache": str(loaders.cache_path) if loaders.cache_path else None,
        "augment": loaders.augment.name if loaders.augment else None,
        "augment_reason": loaders.augment.reason if loaders.augment else None,
        "images_in_memory": loaders.in_memory,
        "schedule": {"epochs": plan.epochs, "lr": plan.lr, "warmup_epochs": plan.warmup_epochs},
        "seconds": round(time.time() - extra["started"], 2),
        "world_size": ctx.world,
        "channels_last": plan.channels_last,
        "normalize_on_device": loaders.normalize is not None,
        # This process's training passes, all epochs of this run together.
        "throughput": {
            "train_images_per_s": round(timing.images_per_s, 1),
            "data_wait": round(timing.wait_share, 3),
            "bound": timing.bound,
            "feature_images_per_s": run.feature_rate,
        },
    }
    if ctx.is_main:
        out = plan.out
        write_json(out / METRICS, {k: v for k, v in results.items() if k != "history"})
        if plan.segmentation:
            plot_curves(state.history, out, metric=("miou", ("train_miou", "val_miou")))
            plot_segmentation(*seg.examples(model, loaders.val, ctx.device),
                              data.classes, out / "segmentation.png")  # fmt: skip
            plots = "loss.png, miou.png, segmentation.png"
            print(f"best epoch {state.best_epoch}: "
                  + seg.format_seg_metrics(final, data.classes))  # fmt: skip
        else:
            plot_curves(state.history, out)
            plot_confusion(final["confusion"], data.classes, out / "confusion.png")
            plots = "loss.png, accuracy.png, confusion.png"
            print(f"best epoch {state.best_epoch}: " + format_metrics(final, data.classes))
        if timing.images:
            bound = "loading data" if timing.bound == "data" else "the training step"
            print(f"training ran at {timing.images_per_s:.0f} img/s, bound by {bound} "
                  f"(waiting for data {timing.wait_share:.0%} of the time)")  # fmt: skip
        if results["skipped_images"]:
            where = ", ".join(f"{c}: {k}" for c, k in skipped_per_class.items())
            print(f"warning: {results['skipped_images']} unreadable image(s) were skipped "
                  f"({where})")  # fmt: skip
        print(f"wrote {out}/: {ckpt.CHECKPOINT}, {ckpt.BEST}, {LOG}, {METRICS}, {plots}")
    return results


def final_metrics(plan: RunPlan, final: dict, classes: list[str]) -> dict:
    """The summary's figures: top-1/top-5/per-class accuracy, or pixel accuracy and IoU."""
    if plan.segmentation:
        return {
            "miou": final["miou"],
            "pixel_acc": final["pixel_acc"],
            "iou": dict(zip(classes, final["iou"], strict=True)),
            "val_pixels": final["pixels"],
        }
    return {
        "top1": final["top1"],
        "top5": final["top5"],
        "per_class": dict(zip(classes, final["per_class"], strict=True)),
    }


def _fit(cfg: TrainConfig, ctx: Context, run: RunState) -> dict:
    started = time.time()
    if cfg.out:  # before any work: a run that would be refused at the end is refused now
        check_out(Path(cfg.out), cfg.resume, cfg.overwrite)
    else:  # runs/<model>-<strategy>: the strategy (auto) is known later, the folder now
        wts.check_writable(Path("runs"), "--out (default runs/)")
    if cfg.strategy in ("linear-probe", "auto"):
        wts.check_writable(cfg.cache_dir or default_cache_dir(), "--cache-dir")
    torch.manual_seed(cfg.seed)
    if cfg.task == seg.SEGMENTATION:
        data = seg.load_seg_data(
            cfg.data, val_split=cfg.val_split, seed=cfg.seed, ignore_index=cfg.ignore_index
        )
    else:
        data = load_data(
            cfg.data, val_split=cfg.val_split, seed=cfg.seed, max_per_class=cfg.max_per_class
        )
    workers = default_workers(cfg.num_workers, ctx.device)
    dtype = amp_dtype(cfg.amp, ctx.device)
    plan = plan_run(cfg, ctx, data, workers, dtype)
    model, pre, freezing = build_network(cfg, plan, ctx, len(data.classes))
    loaders = make_loaders(cfg, plan, ctx, data, model, pre, workers, dtype, run)
    step, net = make_step(cfg, plan, ctx, model, loaders, dtype)

    if ctx.is_main:
        prepare_out(plan.out, cfg.overwrite)
    ctx.barrier()
    run.checkpoint = plan.out / ckpt.CHECKPOINT
    state = ckpt.TrainState(strategy=plan.strategy)
    if plan.resumed is not None:
        ckpt.check_resume(plan.resumed, cfg.model, data.classes, model.in_chans, task=cfg.task)
        parts = {"model": model, "optimizer": step.optimizer, "scheduler": step.scheduler,
                 "scaler": step.scaler}  # fmt: skip
        ckpt.TrainState.restore(plan.resumed, parts)
        state = ckpt.TrainState.read(plan.resumed)
        run.epoch_saved = state.epoch
        _say(ctx, f"resuming {plan.out} after epoch {state.epoch}")
    _say(
        ctx,
        f"{cfg.model} | {plan.strategy} | weights {plan.weights or 'none (random init)'}"
        f"{' (the encoder' + chr(39) + 's)' if plan.weights and unet_encoder(cfg.model) else ''} | "
        f"{len(data.train)} train / {len(data.val)} val images ({data.validation}), "
        f"{len(data.classes)} classes | {ctx.world} process(es) on {ctx.device}"
        + (" | channels_last" if plan.channels_last else "")
        + (" | normalised on the device" if loaders.normalize is not None else "")
        + (f" | {dtype}".replace("torch.", "") if dtype else ""),
    )

    timing, stopped_early = Throughput(), False
    while state.epoch < plan.epochs:
        record, _, epoch_timing = run_epoch(
            cfg, ctx, plan, data, model, freezing, loaders, step, net, state, run
        )
        timing.add(epoch_timing)
        save_epoch(cfg, ctx, plan, data, model, pre, step, state, record, run)
        ctx.barrier()
        _maybe_kill(state.epoch)
        if cfg.patience and state.bad_epochs >= cfg.patience:
            _say(ctx, f"early stopping: no improvement for {state.bad_epochs} epochs")
            stopped_early = True
            break
    extra = {"started": started, "stopped_early": stopped_early, "timing": timing}
    return finish(cfg, ctx, plan, data, model, freezing, loaders, step, state, run, extra)
