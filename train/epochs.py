"""The epochs of a run: the optimiser and schedule, where the epochs start (a fresh or a
resumed state), one epoch of training and validation, and its checkpoint and log line."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from . import checkpoint as ckpt
from .context import all_names, say, seed_epoch
from .errors import TrainError
from .loaders import check_classes_left, count_per_class
from .loop import Step, Throughput, batches, evaluate, train_epoch
from .plan import prepare_out
from .report import LOG, append_jsonl
from .run import Run
from .strategy import param_groups


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """The learning-rate factor of each optimiser step: linear warm-up, then cosine to 0."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def _optimizer(run: Run) -> torch.optim.Optimizer:
    """AdamW or SGD over the model's parameter groups (layer-wise rates)."""
    cfg, plan = run.config, run.plan
    groups = param_groups(
        run.model, plan.lr, cfg.weight_decay, cfg.backbone_lr_mult,
        pretrained=plan.weights is not None,
    )  # fmt: skip
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=plan.lr)
    # Nesterov needs momentum; --momentum 0 is plain SGD.
    return torch.optim.SGD(groups, lr=plan.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def make_step(run: Run) -> None:
    """The phase that makes the step: the optimiser, warm-up + cosine schedule, gradient
    scaler and the task's loss, and the network the loop trains and evaluates (DDP,
    compiled, as asked)."""
    cfg, ctx, plan = run.config, run.context, run.plan
    optimizer = _optimizer(run)
    steps_per_epoch = math.ceil(len(run.loaders.train) / cfg.accum_steps)
    warmup = round(plan.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(warmup, plan.epochs * steps_per_epoch)
    )
    net = run.loaders.net
    if ctx.distributed and not plan.probe:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)
    run.step = Step(
        net=net,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(ctx.device.type, enabled=run.dtype == torch.float16),
        criterion=run.task.criterion(cfg, cfg.label_smoothing),
        trainable=[p for p in run.model.parameters() if p.requires_grad],
        accum=cfg.accum_steps,
        clip_grad=cfg.clip_grad,
        aux_weight=cfg.aux_weight,
        dtype=run.dtype,
    )


def resumable_parts(model: nn.Module, step: Step) -> dict[str, object]:
    """What a checkpoint holds the ``state_dict`` of, and a resumed run loads it into."""
    return {"model": model, "optimizer": step.optimizer, "scheduler": step.scheduler,
            "scaler": step.scaler}  # fmt: skip


def start_epochs(run: Run) -> None:
    """The phase before the epochs: --out made ready (every process waits for it), and the
    state the epochs start from, fresh or the resumed checkpoint's (weights, optimiser,
    schedule, generators)."""
    cfg, ctx, plan = run.config, run.context, run.plan
    if ctx.is_main:
        prepare_out(plan.out, cfg.overwrite)
    ctx.barrier()
    run.checkpoint = plan.out / ckpt.CHECKPOINT
    run.state = ckpt.TrainState(strategy=plan.strategy)
    if plan.resumed is not None:
        ckpt.check_resume(plan.resumed, cfg.model, run.data.classes, run.model.in_chans,
                          task=cfg.task)  # fmt: skip
        ckpt.TrainState.restore(plan.resumed, resumable_parts(run.model, run.step))
        run.state = ckpt.TrainState.read(plan.resumed)
        run.epoch_saved = run.state.epoch
        say(ctx, f"resuming {plan.out} after epoch {run.state.epoch}")


def _tracked(data: Iterable, run: Run, epoch: int) -> Iterator:
    """``data``, noting which step runs (for the one-line error of a failure inside it)."""
    for i, batch in enumerate(data):
        run.where = f"at epoch {epoch + 1}, step {i + 1}"
        yield batch


def _finite_check(run: Run, epoch: int) -> Callable[[torch.Tensor, int], None]:
    """The loop's check of each step's loss: a non-finite one stops the run (every process
    together) with a one-line error that names the step and the checkpoint kept."""
    ctx, state = run.context, run.state

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

    return check_finite


def validate_pass(run: Run, net: nn.Module) -> tuple[dict, set[str]]:
    """``net`` over the validation loader: the task's figures (no label smoothing) and the
    unreadable validation images of every process."""
    cfg, ctx, loaders = run.config, run.context, run.loaders
    bad: set[str] = set()
    feed = batches(loaders.val, ctx.device, channels_last=run.plan.channels_last,
                   normalize=loaders.normalize, strict=cfg.strict, skipped=bad)  # fmt: skip
    figures = evaluate(
        net, feed, ctx.device, criterion=run.task.criterion(cfg),
        meter=run.task.meter(cfg, run.n_classes), dtype=run.step.dtype,
    )  # fmt: skip
    return figures, all_names(ctx, bad)


def _train_pass(run: Run, epoch: int, skipped: set[str], timing: Throughput) -> dict:
    """One epoch's training pass, under a progress bar: the task's figures. Unreadable
    images' names go to ``skipped``."""
    from tqdm import tqdm

    cfg, ctx, loaders = run.config, run.context, run.loaders
    bar = tqdm(
        total=len(loaders.train), desc=f"epoch {epoch + 1}/{run.plan.epochs}",
        disable=not (cfg.progress and ctx.is_main), leave=False, dynamic_ncols=True,
    )  # fmt: skip

    def on_batch(i: int, loss: float) -> None:
        bar.update()
        if i % 10 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")

    feed = batches(loaders.train, ctx.device, channels_last=run.plan.channels_last,
                   normalize=loaders.normalize, strict=cfg.strict, skipped=skipped,
                   timing=timing)  # fmt: skip
    try:
        return train_epoch(
            run.step, _tracked(feed, run, epoch), run.n_classes, ctx.device,
            check_finite=_finite_check(run, epoch), on_batch=on_batch,
            meter=run.task.meter(cfg, run.n_classes),
        )  # fmt: skip
    finally:
        bar.close()  # before any error's one line: a half-drawn bar would precede it


def _check_first_epoch(run: Run, skipped: set[str], bad_val: set[str]) -> None:
    """After the run's first epoch, when every image has been read once: no class may have
    lost all its training or validation images to unreadable files."""
    data = run.data
    for which, names, split in (("training", skipped, "train"), ("validation", bad_val, "val")):
        check_classes_left(
            data.classes, data.counts(split),
            count_per_class(names, data.label_of(split), run.n_classes), which,
            run.config.allow_missing_classes,
        )  # fmt: skip


def run_epoch(run: Run) -> dict:
    """Train one epoch and validate: the epoch's record (with its throughput); its timing
    is added to the run's."""
    cfg, ctx, state = run.config, run.context, run.state
    epoch = state.epoch
    t0 = time.time()
    # A distributed linear probe trains the same head on the same cached features in every
    # process (the head is tiny next to the backbone pass that made the cache), so every
    # rank draws the same random numbers and the head stays identical.
    seed_epoch(cfg.seed, epoch, 0 if run.plan.probe else ctx.rank)
    run.loaders.generator.manual_seed(cfg.seed * 7919 + epoch)
    if run.loaders.sampler is not None:
        run.loaders.sampler.set_epoch(epoch)
    run.freezing.set_train_mode(run.model, True)
    skipped, timing = set(state.skipped), Throughput()
    train = _train_pass(run, epoch, skipped, timing)
    run.freezing.set_train_mode(run.model, False)
    run.where = f"validating epoch {epoch + 1}"
    val, bad_val = validate_pass(run, run.step.net)
    skipped = all_names(ctx, skipped)
    state.skipped = sorted(skipped)
    if epoch == run.plan.first_epoch:
        _check_first_epoch(run, skipped, bad_val)
    run.timing.add(timing)
    return {
        "epoch": epoch + 1,
        **run.task.epoch_metrics(train, val),
        "lr": run.step.optimizer.param_groups[-1]["lr"],
        "skipped": len(skipped | bad_val),
        "seconds": round(time.time() - t0, 3),
        "train_images_per_s": round(timing.images_per_s, 1),
        "data_wait": round(timing.wait_share, 3),
    }


def save_epoch(run: Run, record: dict) -> None:
    """Record the epoch: the best weights exported when it improved, the checkpoint, the
    log line. Only the main process writes."""
    cfg, ctx, plan, state = run.config, run.context, run.plan, run.state
    state.history.append(record)
    state.epoch = record["epoch"]
    score = record[run.task.score_key]
    if score > state.best_score:
        state.best_score, state.best_epoch, state.bad_epochs = score, state.epoch, 0
        if ctx.is_main:
            ckpt.export_model(
                run.model, plan.out / ckpt.BEST, classes=run.data.classes, preprocessing=run.pre,
                extra={"strategy": plan.strategy, "epoch": str(state.epoch),
                       run.task.score_key: repr(score), "train_config": cfg.to_json()},
            )  # fmt: skip
    else:
        state.bad_epochs += 1
    if not ctx.is_main:
        return
    about = {"config": cfg.to_dict(), "classes": run.data.classes,
             "in_chans": run.model.in_chans, "preprocessing": run.pre.as_metadata()}  # fmt: skip
    state.save(run.checkpoint, resumable_parts(run.model, run.step), about)
    run.epoch_saved = state.epoch
    append_jsonl(plan.out / LOG, record)
    print(
        f"epoch {state.epoch}/{plan.epochs}  {run.task.epoch_line(record)}  "
        f"({record['seconds']:.1f}s, {record['train_images_per_s']:.0f} img/s, "
        f"data wait {record['data_wait']:.0%})",
        flush=True,
    )
