"""``fit``: one explicit training loop for every strategy, device and process count."""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nets
import weights as wts

from . import checkpoint as ckpt
from .config import TrainConfig, validate
from .datasets import (
    DIGITS,
    ImageDataset,
    collate,
    default_preprocessing,
    default_workers,
    eval_transform,
    load_data,
    train_transform,
)
from .errors import TrainError
from .features import cached_features, default_cache_dir
from .report import Meter, append_jsonl, format_metrics, plot_confusion, plot_curves, write_json
from .strategy import (
    apply_freezing,
    build_model,
    choose_strategy,
    has_default_weights,
    param_groups,
    resolve_weights,
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


def compute_loss(out, target: torch.Tensor, criterion: nn.Module, aux_weight: float):
    """Cross-entropy of the main logits plus ``aux_weight`` times each auxiliary head's."""
    if isinstance(out, nets.AuxOutputs):
        loss = criterion(out.logits, target)
        for a in out.aux:
            loss = loss + aux_weight * criterion(a, target)
        return loss, out.logits
    return criterion(out, target), out


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


@torch.no_grad()
def evaluate(
    net: nn.Module,
    loader,
    num_classes: int,
    device: torch.device,
    *,
    criterion: nn.Module,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    strict: bool = False,
) -> tuple[dict, set[str]]:
    """Metrics over ``loader`` (summed over processes); returns them and the names of the
    unreadable images skipped."""
    meter = Meter(num_classes)
    skipped: set[str] = set()
    for x, y, bad in loader:
        if bad and strict:
            raise TrainError(f"unreadable image {bad[0]!r} (--strict)")
        skipped.update(bad)
        if x.numel() == 0:
            continue
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = net(x)
            logits = out.logits if isinstance(out, nets.AuxOutputs) else out
            loss = criterion(logits.float(), y)
        meter.update(logits, y, loss.item() * len(y))
    meter.all_reduce()
    return meter.result(), skipped


# -- fit -----------------------------------------------------------------------------------
# torch.OutOfMemoryError (torch >= 2.5) is torch.cuda.OutOfMemoryError under a new name.
OUT_OF_MEMORY = tuple(
    {getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError} - {None}
)


@dataclass
class RunState:
    """Where a run is, for the one-line error of a failure that escapes the loop."""

    where: str = "before training"
    checkpoint: Path | None = None
    epoch_saved: int = 0

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


def _quick_probe(model, pre, data, cfg, ctx, dtype, workers) -> float:
    feats, _, _ = cached_features(
        model, pre, data, cache_dir=cfg.cache_dir, device=ctx.device, amp=cfg.amp,
        amp_dtype=dtype, batch_size=cfg.batch_size, num_workers=workers, strict=cfg.strict,
        progress=cfg.progress and ctx.is_main, is_main=ctx.is_main, barrier=ctx.barrier,
    )  # fmt: skip
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
        probe = out / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
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


def _fit(cfg: TrainConfig, ctx: Context, run: RunState) -> dict:
    started = time.time()
    if cfg.out:  # before any work: a run that would be refused at the end is refused now
        check_out(Path(cfg.out), cfg.resume, cfg.overwrite)
    else:  # runs/<model>-<strategy>: the strategy (auto) is known later, the folder now
        wts.check_writable(Path("runs"), "--out (default runs/)")
    if cfg.strategy in ("linear-probe", "auto"):
        wts.check_writable(cfg.cache_dir or default_cache_dir(), "--cache-dir")
    torch.manual_seed(cfg.seed)
    data = load_data(
        cfg.data, val_split=cfg.val_split, seed=cfg.seed, max_per_class=cfg.max_per_class
    )
    classes, n_classes = data.classes, len(data.classes)
    workers = default_workers(cfg.num_workers, ctx.device)
    dtype = amp_dtype(cfg.amp, ctx.device)
    strategy, reason = cfg.strategy, "asked for"

    model = None
    if strategy == "auto":
        per_class = min(data.counts("train"))
        with_weights = cfg.weights is not None or has_default_weights(cfg.model)
        probe_top1 = None
        if with_weights and per_class >= 30:
            torch.manual_seed(cfg.seed)
            start = resolve_weights(cfg.model, "linear-probe", cfg.weights)
            model = build_model(cfg.model, n_classes, start, aux=False)
            model.to(ctx.device)
            pre = model.pretrained_cfg.get("preprocessing") or default_preprocessing(
                model.pretrained_cfg["input_size"]
            )
            probe_top1 = _quick_probe(model, pre, data, cfg, ctx, dtype, workers)
        strategy, reason = choose_strategy(per_class, probe_top1, with_weights)
        _say(ctx, f"auto: chose {strategy}: {reason}")
        if strategy != "linear-probe":
            model = None

    weights_spec = resolve_weights(cfg.model, strategy, cfg.weights)
    epochs = cfg.epochs if cfg.epochs is not None else (50 if strategy == "linear-probe" else 20)
    default_lr = {
        ("adamw", "linear-probe"): 3e-2,
        ("adamw", "scratch"): 3e-3,
        ("adamw", "feature-extract"): 1e-2,
        ("sgd", "linear-probe"): 0.1,
        ("sgd", "scratch"): 3e-2,
        ("sgd", "feature-extract"): 0.1,
    }
    lr = cfg.lr
    if lr is None:
        lr = default_lr.get((cfg.optimizer, strategy), 1e-3 if cfg.optimizer == "adamw" else 1e-2)
    out = Path(cfg.out or f"runs/{cfg.model}-{strategy}")
    if not cfg.out:  # a given --out was checked before any work
        check_out(out, cfg.resume, cfg.overwrite)
    probe = strategy == "linear-probe"
    aux = cfg.aux_weight > 0 and not probe

    torch.manual_seed(cfg.seed)
    if model is None:
        model = build_model(cfg.model, n_classes, weights_spec, aux=aux)
    in_chans = model.in_chans
    pre = model.pretrained_cfg.get("preprocessing") or default_preprocessing(
        model.pretrained_cfg["input_size"]
    )
    freezing = apply_freezing(model, strategy, cfg.unfreeze_from, cfg.freeze_bn)
    model.to(ctx.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)

    # -- data ------------------------------------------------------------------------------
    pin = ctx.device.type == "cuda"
    gen = torch.Generator()
    cache_path = None
    probe_skipped = {"train": [0] * n_classes, "val": [0] * n_classes}
    # The loader names an unreadable image by its path; the digits are never unreadable.
    label_of = {
        which: {str(item): label for item, label in getattr(data, which)}
        if data.kind != DIGITS
        else {}
        for which in ("train", "val")
    }
    if probe:
        run.where = "computing the backbone's features"
        feats, cache_path, hit = cached_features(
            model, pre, data, cache_dir=cfg.cache_dir, device=ctx.device, amp=cfg.amp,
            amp_dtype=dtype, batch_size=cfg.batch_size, num_workers=workers,
            strict=cfg.strict, progress=cfg.progress and ctx.is_main, is_main=ctx.is_main,
            barrier=ctx.barrier,
        )  # fmt: skip
        _say(ctx, f"features: {'cached' if hit else 'computed and cached'} in {cache_path}")
        # The features leave unreadable images out: what is missing is what was skipped.
        for split, which in (("train", "training"), ("val", "validation")):
            totals = data.counts(split)
            readable = torch.bincount(feats[f"{split}_y"].long(), minlength=n_classes).tolist()
            probe_skipped[split] = [t - r for t, r in zip(totals, readable, strict=True)]
            check_classes_left(
                classes, totals, probe_skipped[split], which, cfg.allow_missing_classes
            )
        train_ds = torch.utils.data.TensorDataset(feats["train_x"], feats["train_y"].long())
        val_ds = torch.utils.data.TensorDataset(feats["val_x"], feats["val_y"].long())
        loader_kw = dict(collate_fn=_tensor_collate, num_workers=0, pin_memory=pin)
        train_sampler = None
        net = model.get_classifier()
    else:
        augment = cfg.augment if cfg.augment != "auto" else (
            "light" if cfg.data == DIGITS else "standard"
        )  # fmt: skip
        train_ds = ImageDataset(data.train, train_transform(pre, in_chans, augment), in_chans)
        val_ds = ImageDataset(data.val, eval_transform(pre, in_chans), in_chans)
        loader_kw = dict(
            collate_fn=collate,
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )
        train_sampler = None
        if ctx.distributed:
            train_sampler = torch.utils.data.distributed.DistributedSampler(
                train_ds, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed
            )
        net = model
    if ctx.distributed:  # each process validates every world-th image; metrics are summed
        val_ds = torch.utils.data.Subset(val_ds, range(ctx.rank, len(val_ds), ctx.world))
    train_loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        shuffle=train_sampler is None,
        sampler=train_sampler,
        generator=gen,
        drop_last=False,
        **loader_kw,
    )
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=cfg.batch_size, **loader_kw)

    # -- optimisation ----------------------------------------------------------------------
    groups = param_groups(
        model, lr, cfg.weight_decay, cfg.backbone_lr_mult, pretrained=weights_spec is not None
    )
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=lr)
    else:
        # Nesterov needs momentum; --momentum 0 is plain SGD.
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    accum = cfg.accum_steps
    steps_per_epoch = math.ceil(len(train_loader) / accum)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(warmup, epochs * steps_per_epoch)
    )
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()
    trainable = [p for p in model.parameters() if p.requires_grad]

    train_net = net
    if ctx.distributed and not probe:
        train_net = nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if cfg.compile:
        train_net = torch.compile(train_net)
    eval_net = train_net

    # -- resume ----------------------------------------------------------------------------
    if ctx.is_main:
        prepare_out(out, cfg.overwrite)
    ctx.barrier()
    ckpt_path = out / ckpt.CHECKPOINT
    best_path = out / ckpt.BEST
    run.checkpoint = ckpt_path
    start_epoch, history = 0, []
    best_top1, best_epoch, bad_epochs = -1.0, 0, 0
    # Names, not counts: an unreadable file is met again every epoch and counted once.
    skipped_train: set[str] = set()
    if cfg.resume:
        state = ckpt.load_checkpoint(ckpt_path)
        ckpt.check_resume(state, cfg.model, classes, in_chans)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = state["epoch"]
        history = state["history"]
        best_top1, best_epoch = state["best_top1"], state["best_epoch"]
        bad_epochs, skipped_train = state["bad_epochs"], set(state["skipped"])
        strategy = state["strategy"]
        run.epoch_saved = start_epoch
        _say(ctx, f"resuming {out} after epoch {start_epoch}")

    _say(
        ctx,
        f"{cfg.model} | {strategy} | weights {weights_spec or 'none (random init)'} | "
        f"{len(data.train)} train / {len(data.val)} val images ({data.validation}), "
        f"{n_classes} classes | "
        f"{ctx.world} process(es) on {ctx.device}"
        + (f" | {dtype}".replace("torch.", "") if dtype else ""),
    )

    from tqdm import tqdm

    stopped_early = False
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        # A distributed linear probe trains the same head on the same cached features in
        # every process (the head is tiny next to the backbone pass that made the cache),
        # so every rank draws the same random numbers and the head stays identical.
        seed_epoch(cfg.seed, epoch, 0 if probe else ctx.rank)
        gen.manual_seed(cfg.seed * 7919 + epoch)
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        freezing.set_train_mode(model, True)
        meter = Meter(n_classes)
        optimizer.zero_grad(set_to_none=True)
        n_batches = len(train_loader)
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not (cfg.progress and ctx.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        for i, (x, y, bad) in enumerate(bar):
            run.where = f"at epoch {epoch + 1}, step {i + 1}"
            if bad and cfg.strict:
                raise TrainError(f"unreadable image {bad[0]!r} (--strict)")
            skipped_train.update(bad)
            if x.numel() == 0:
                continue
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            if cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                ctx.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                out_ = train_net(x)
                loss, logits = compute_loss(out_, y, criterion, cfg.aux_weight)
            finite = torch.isfinite(loss.detach()).reshape(1).float()
            if ctx.distributed:
                # Every rank must stop together: a rank that stopped alone would leave the
                # others waiting in the next gradient all-reduce.
                torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
            if not bool(finite.item()):
                last = f"{ckpt_path} (epoch {start_epoch_done(history)})" if history else "none"
                raise TrainError(
                    f"the loss became {loss.item() if not ctx.distributed else 'non-finite'} "
                    f"at epoch {epoch + 1}, step {i + 1}"
                    f"{' on one of the processes' if ctx.distributed else ''}; "
                    f"stopped, the last good checkpoint is kept: {last}"
                )
            scaler.scale(loss / accum).backward()
            if (i + 1) % accum == 0 or i + 1 == n_batches:
                if cfg.clip_grad > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(trainable, cfg.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
            meter.update(logits, y, loss.item() * len(y))
            if i % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        meter.all_reduce()
        train_metrics = meter.result()

        freezing.set_train_mode(model, False)
        run.where = f"validating epoch {epoch + 1}"
        val, bad_val = evaluate(
            eval_net, val_loader, n_classes, ctx.device, criterion=eval_criterion, dtype=dtype,
            channels_last=cfg.channels_last, strict=cfg.strict,
        )  # fmt: skip
        skipped_train = _all_names(ctx, skipped_train)
        bad_val = _all_names(ctx, bad_val)
        if epoch == start_epoch:  # every image has been read once now
            for which, names, totals in (
                ("training", skipped_train, data.counts("train")),
                ("validation", bad_val, data.counts("val")),
            ):
                lookup = label_of["train" if which == "training" else "val"]
                check_classes_left(
                    classes, totals, _per_class(names, lookup, n_classes), which,
                    cfg.allow_missing_classes,
                )  # fmt: skip
        record = {
            "epoch": epoch + 1,
            "train_loss": train_metrics["loss"],
            "train_top1": train_metrics["top1"],
            "val_loss": val["loss"],
            "val_top1": val["top1"],
            "val_top5": val["top5"],
            "lr": optimizer.param_groups[-1]["lr"],
            "skipped": len(skipped_train | bad_val),
            "seconds": round(time.time() - t0, 3),
        }
        history.append(record)
        if val["top1"] > best_top1:
            best_top1, best_epoch, bad_epochs = val["top1"], epoch + 1, 0
            if ctx.is_main:
                ckpt.export_model(
                    model, best_path, classes=classes, preprocessing=pre,
                    extra={"strategy": strategy, "epoch": str(epoch + 1),
                           "val_top1": repr(val["top1"]), "train_config": cfg.to_json()},
                )  # fmt: skip
        else:
            bad_epochs += 1
        if ctx.is_main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": ckpt.rng_states(),
                "epoch": epoch + 1,
                "config": cfg.to_dict(),
                "strategy": strategy,
                "classes": classes,
                "in_chans": in_chans,
                "preprocessing": pre.as_metadata(),
                "history": history,
                "best_top1": best_top1,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "skipped": sorted(skipped_train),
            }
            ckpt.save_checkpoint(ckpt_path, state)
            run.epoch_saved = epoch + 1
            append_jsonl(out / LOG, record)
            print(
                f"epoch {epoch + 1}/{epochs}  train loss {record['train_loss']:.4f} "
                f"top-1 {record['train_top1']:.2%}  val loss {val['loss']:.4f} "
                f"top-1 {val['top1']:.2%} top-5 {val['top5']:.2%}  ({record['seconds']:.1f}s)",
                flush=True,
            )
        ctx.barrier()
        _maybe_kill(epoch + 1)
        if cfg.patience and bad_epochs >= cfg.patience:
            _say(ctx, f"early stopping: no improvement for {bad_epochs} epochs")
            stopped_early = True
            break

    # -- final evaluation of the best model ------------------------------------------------
    best_state, _ = wts.read_checkpoint(best_path)
    model.load_state_dict(best_state, strict=False)
    freezing.set_train_mode(model, False)
    run.where = "in the final evaluation"
    final, bad_val = evaluate(
        net, val_loader, n_classes, ctx.device, criterion=eval_criterion, dtype=dtype,
        channels_last=cfg.channels_last, strict=cfg.strict,
    )  # fmt: skip
    bad_val = _all_names(ctx, bad_val)
    per_class = [
        sum(counts)
        for counts in zip(
            _per_class(skipped_train, label_of["train"], n_classes),
            _per_class(bad_val, label_of["val"], n_classes),
            probe_skipped["train"],
            probe_skipped["val"],
            strict=True,
        )
    ]
    skipped_per_class = {c: k for c, k in zip(classes, per_class, strict=True) if k}
    skipped = sum(per_class)
    results = {
        "model": cfg.model,
        "strategy": strategy,
        "reason": reason,
        "weights": weights_spec,
        "classes": classes,
        "top1": final["top1"],
        "top5": final["top5"],
        "per_class": dict(zip(classes, final["per_class"], strict=True)),
        "confusion": final["confusion"],
        "val_images": final["count"],
        "validation": data.validation,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "skipped_images": skipped,
        "skipped_per_class": skipped_per_class,
        "history": history,
        "out": str(out),
        "checkpoint": str(ckpt_path),
        "best": str(best_path),
        "feature_cache": str(cache_path) if cache_path else None,
        "seconds": round(time.time() - started, 2),
        "world_size": ctx.world,
    }
    if ctx.is_main:
        write_json(out / METRICS, {k: v for k, v in results.items() if k != "history"})
        plot_curves(history, out)
        plot_confusion(final["confusion"], classes, out / "confusion.png")
        print(f"best epoch {best_epoch}: " + format_metrics(final, classes))
        if skipped:
            where = ", ".join(f"{c}: {k}" for c, k in skipped_per_class.items())
            print(f"warning: {skipped} unreadable image(s) were skipped ({where})")
        print(f"wrote {out}/: {ckpt.CHECKPOINT}, {ckpt.BEST}, {LOG}, {METRICS}, "
              "loss.png, accuracy.png, confusion.png")  # fmt: skip
    return results


def start_epoch_done(history: list[dict]) -> int:
    return history[-1]["epoch"] if history else 0
