"""The epochs of a run: the optimiser and schedule, one epoch of training and validation,
its checkpoint and log line, and the final evaluation with the run's report."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

import weights as wts

from . import checkpoint as ckpt
from . import segmentation as seg
from .config import TrainConfig
from .context import Context, RunState, all_names, seed_epoch
from .errors import TrainError
from .loaders import Loaders, check_classes_left, count_per_class
from .loop import Step, Throughput, batches, evaluate, train_epoch
from .plan import RunPlan
from .report import (
    LOG,
    METRICS,
    append_jsonl,
    format_metrics,
    plot_confusion,
    plot_curves,
    plot_segmentation,
    write_json,
)
from .strategy import Freezing, param_groups

if TYPE_CHECKING:
    from .datasets import DataSplit
    from .segmentation import SegSplit


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """The learning-rate factor of each optimiser step: linear warm-up, then cosine to 0."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def make_step(
    cfg: TrainConfig, plan: RunPlan, ctx: Context, model: nn.Module, loaders: Loaders,
    dtype: torch.dtype | None,
) -> tuple[Step, nn.Module]:  # fmt: skip
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


def new_meter(cfg: TrainConfig, plan: RunPlan, n_classes: int) -> seg.SegMeter | None:
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
    """An epoch's figures as its log line shows them."""
    if plan.segmentation:
        return (
            f"train loss {r['train_loss']:.4f} mIoU {r['train_miou']:.2%}  val loss "
            f"{r['val_loss']:.4f} mIoU {r['val_miou']:.2%} pixel acc {r['val_pixel_acc']:.2%}"
        )
    return (
        f"train loss {r['train_loss']:.4f} top-1 {r['train_top1']:.2%}  val loss "
        f"{r['val_loss']:.4f} top-1 {r['val_top1']:.2%} top-5 {r['val_top5']:.2%}"
    )


def _tracked(data: Iterable, run: RunState, epoch: int) -> Iterator:
    """``data``, noting which step runs (for the one-line error of a failure inside it)."""
    for i, batch in enumerate(data):
        run.where = f"at epoch {epoch + 1}, step {i + 1}"
        yield batch


def _finite_check(
    ctx: Context, epoch: int, state: ckpt.TrainState, run: RunState
) -> Callable[[torch.Tensor, int], None]:
    """The loop's check of each step's loss: a non-finite one stops the run (every process
    together) with a one-line error that names the step and the checkpoint kept."""

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


def validate_pass(
    cfg: TrainConfig, ctx: Context, plan: RunPlan, data: DataSplit | SegSplit,
    loaders: Loaders, step: Step, net: nn.Module,
) -> tuple[dict, set[str]]:  # fmt: skip
    """``net`` over the validation loader: the task's figures (no label smoothing) and the
    unreadable validation images of every process."""
    n_classes = len(data.classes)
    figures, bad = evaluate(
        net, loaders.val, n_classes, ctx.device, criterion=criterion(cfg, plan),
        dtype=step.dtype, channels_last=plan.channels_last, normalize=loaders.normalize,
        strict=cfg.strict, meter=new_meter(cfg, plan, n_classes),
    )  # fmt: skip
    return figures, all_names(ctx, bad)


def run_epoch(
    cfg: TrainConfig, ctx: Context, plan: RunPlan, data: DataSplit | SegSplit,
    model: nn.Module, freezing: Freezing, loaders: Loaders, step: Step, eval_net: nn.Module,
    state: ckpt.TrainState, run: RunState,
) -> tuple[dict, Throughput]:  # fmt: skip
    """Train one epoch and validate: the epoch's record (with its throughput) and the
    epoch's timing."""
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

    feed = batches(loaders.train, ctx.device, channels_last=plan.channels_last,
                   normalize=loaders.normalize, strict=cfg.strict, skipped=skipped,
                   timing=timing)  # fmt: skip
    try:
        train = train_epoch(
            step, _tracked(feed, run, epoch), len(data.classes), ctx.device,
            check_finite=_finite_check(ctx, epoch, state, run), on_batch=on_batch,
            meter=new_meter(cfg, plan, len(data.classes)),
        )  # fmt: skip
    finally:
        bar.close()  # before any error's one line: a half-drawn bar would precede it
    freezing.set_train_mode(model, False)
    run.where = f"validating epoch {epoch + 1}"
    val, bad_val = validate_pass(cfg, ctx, plan, data, loaders, step, eval_net)
    skipped = all_names(ctx, skipped)
    state.skipped = sorted(skipped)
    if epoch == _first_epoch(plan):  # every image has been read once now
        for which, names, split in (("training", skipped, "train"),
                                    ("validation", bad_val, "val")):  # fmt: skip
            check_classes_left(
                data.classes, data.counts(split),
                count_per_class(names, data.label_of(split), len(data.classes)), which,
                cfg.allow_missing_classes,
            )  # fmt: skip
    record = {
        "epoch": epoch + 1,
        **epoch_metrics(plan, train, val),
        "lr": step.optimizer.param_groups[-1]["lr"],
        "skipped": len(skipped | bad_val),
        "seconds": round(time.time() - t0, 3),
        "train_images_per_s": round(timing.images_per_s, 1),
        "data_wait": round(timing.wait_share, 3),
    }
    return record, timing


def resumable_parts(model: nn.Module, step: Step) -> dict[str, object]:
    """What a checkpoint holds the ``state_dict`` of, and a resumed run loads it into."""
    return {"model": model, "optimizer": step.optimizer, "scheduler": step.scheduler,
            "scaler": step.scaler}  # fmt: skip


def _first_epoch(plan: RunPlan) -> int:
    return plan.resumed["epoch"] if plan.resumed else 0


def save_epoch(
    cfg: TrainConfig, ctx: Context, plan: RunPlan, data: DataSplit | SegSplit,
    model: nn.Module, pre: wts.Preprocessing, step: Step, state: ckpt.TrainState,
    record: dict, run: RunState,
) -> None:  # fmt: skip
    """Record the epoch: the best weights exported when it improved, the checkpoint, the
    log line. Only the main process writes."""
    state.history.append(record)
    state.epoch = record["epoch"]
    # best_top1 holds the best score: top-1, or mean IoU for segmentation.
    score = record[plan.score_key]
    if score > state.best_top1:
        state.best_top1, state.best_epoch, state.bad_epochs = score, state.epoch, 0
        if ctx.is_main:
            ckpt.export_model(
                model, plan.out / ckpt.BEST, classes=data.classes, preprocessing=pre,
                extra={"strategy": plan.strategy, "epoch": str(state.epoch),
                       plan.score_key: repr(score), "train_config": cfg.to_json()},
            )  # fmt: skip
    else:
        state.bad_epochs += 1
    if not ctx.is_main:
        return
    about = {"config": cfg.to_dict(), "classes": data.classes, "in_chans": model.in_chans,
             "preprocessing": pre.as_metadata()}  # fmt: skip
    state.save(run.checkpoint, resumable_parts(model, step), about)
    run.epoch_saved = state.epoch
    append_jsonl(plan.out / LOG, record)
    print(
        f"epoch {state.epoch}/{plan.epochs}  {epoch_line(plan, record)}  "
        f"({record['seconds']:.1f}s, {record['train_images_per_s']:.0f} img/s, "
        f"data wait {record['data_wait']:.0%})",
        flush=True,
    )


def finish(
    cfg: TrainConfig, ctx: Context, plan: RunPlan, data: DataSplit | SegSplit,
    model: nn.Module, freezing: Freezing, loaders: Loaders, step: Step,
    state: ckpt.TrainState, run: RunState, extra: dict,
) -> dict:  # fmt: skip
    """Evaluate the best weights once more, and return (and, on the main process, write)
    the run's results and plots."""
    best_state, _ = wts.read_checkpoint(plan.out / ckpt.BEST)
    model.load_state_dict(best_state, strict=False)
    freezing.set_train_mode(model, False)
    run.where = "in the final evaluation"
    final, bad_val = validate_pass(cfg, ctx, plan, data, loaders, step, loaders.net)
    n = len(data.classes)
    per_class = [
        sum(counts)
        for counts in zip(
            count_per_class(set(state.skipped), data.label_of("train"), n),
            count_per_class(bad_val, data.label_of("val"), n),
            loaders.probe_skipped["train"],
            loaders.probe_skipped["val"],
            strict=True,
        )
    ]
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
        "skipped_per_class": {c: k for c, k in zip(data.classes, per_class, strict=True) if k},
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
        write_report(plan, ctx, model, loaders, final, results, timing)
    return results


def write_report(
    plan: RunPlan, ctx: Context, model: nn.Module, loaders: Loaders, final: dict,
    results: dict, timing: Throughput,
) -> None:  # fmt: skip
    """The run's summary in ``--out`` (metrics, curves, the confusion matrix or example
    masks) and on the console."""
    out, classes, best = plan.out, results["classes"], results["best_epoch"]
    history = results["history"]
    write_json(out / METRICS, {k: v for k, v in results.items() if k != "history"})
    if plan.segmentation:
        plot_curves(history, out, metric=("miou", ("train_miou", "val_miou")))
        plot_segmentation(*seg.examples(model, loaders.val, ctx.device),
                          classes, out / "segmentation.png")  # fmt: skip
        plots = "loss.png, miou.png, segmentation.png"
        print(f"best epoch {best}: " + seg.format_seg_metrics(final, classes))
    else:
        plot_curves(history, out)
        plot_confusion(final["confusion"], classes, out / "confusion.png")
        plots = "loss.png, accuracy.png, confusion.png"
        print(f"best epoch {best}: " + format_metrics(final, classes))
    if timing.images:
        bound = "loading data" if timing.bound == "data" else "the training step"
        print(f"training ran at {timing.images_per_s:.0f} img/s, bound by {bound} "
              f"(waiting for data {timing.wait_share:.0%} of the time)")  # fmt: skip
    if results["skipped_images"]:
        where = ", ".join(f"{c}: {k}" for c, k in results["skipped_per_class"].items())
        print(f"warning: {results['skipped_images']} unreadable image(s) were skipped "
              f"({where})")  # fmt: skip
    print(f"wrote {out}/: {ckpt.CHECKPOINT}, {ckpt.BEST}, {LOG}, {METRICS}, {plots}")


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
