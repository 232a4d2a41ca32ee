"""The end of a run: the best weights evaluated once more, the run's results, and its
report in --out and on the console."""

from __future__ import annotations

import time

import weights as wts

from . import checkpoint as ckpt
from .epochs import validate_pass
from .loaders import count_per_class
from .report import LOG, METRICS, write_json
from .run import Run


def _skipped_per_class(run: Run, bad_val: set[str]) -> list[int]:
    """Unreadable images per class over the run: in training, in the final validation and,
    for a linear probe, those its feature pass left out."""
    data, n, probe_skipped = run.data, run.n_classes, run.loaders.probe_skipped
    return [
        sum(counts)
        for counts in zip(
            count_per_class(set(run.state.skipped), data.label_of("train"), n),
            count_per_class(bad_val, data.label_of("val"), n),
            probe_skipped["train"],
            probe_skipped["val"],
            strict=True,
        )
    ]


def _results(run: Run, final: dict, per_class: list[int]) -> dict:
    """What the run returns, and writes (less the history) to metrics.json."""
    cfg, plan, data, state, loaders, timing = (
        run.config, run.plan, run.data, run.state, run.loaders, run.timing,
    )  # fmt: skip
    return {
        "model": cfg.model,
        "strategy": plan.strategy,
        "reason": plan.reason,
        "weights": plan.weights,
        "task": cfg.task,
        "classes": data.classes,
        **run.task.final_metrics(final, data.classes),
        "confusion": final["confusion"],
        "val_images": final["count"],
        "validation": data.validation,
        "best_epoch": state.best_epoch,
        "epochs_run": len(state.history),
        "stopped_early": run.stopped_early,
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
        "seconds": round(time.time() - run.started, 2),
        "world_size": run.context.world,
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


def finish(run: Run) -> dict:
    """The phase that ends the run: evaluate the best weights once more, and return (and,
    on the main process, write) the run's results and plots."""
    best_state, _ = wts.read_checkpoint(run.plan.out / ckpt.BEST)
    run.model.load_state_dict(best_state, strict=False)
    run.freezing.set_train_mode(run.model, False)
    run.where = "in the final evaluation"
    final, bad_val = validate_pass(run, run.loaders.net)
    results = _results(run, final, _skipped_per_class(run, bad_val))
    if run.context.is_main:
        write_report(run, final, results)
    return results


def write_report(run: Run, final: dict, results: dict) -> None:
    """The run's summary in ``--out`` (metrics, the task's plots) and on the console."""
    out, timing, task = run.plan.out, run.timing, run.task
    write_json(out / METRICS, {k: v for k, v in results.items() if k != "history"})
    task.plot(run, final)
    print(f"best epoch {results['best_epoch']}: " + task.summary(final, results["classes"]))
    if timing.images:
        bound = "loading data" if timing.bound == "data" else "the training step"
        print(f"training ran at {timing.images_per_s:.0f} img/s, bound by {bound} "
              f"(waiting for data {timing.wait_share:.0%} of the time)")  # fmt: skip
    if results["skipped_images"]:
        where = ", ".join(f"{c}: {k}" for c, k in results["skipped_per_class"].items())
        print(f"warning: {results['skipped_images']} unreadable image(s) were skipped "
              f"({where})")  # fmt: skip
    print(f"wrote {out}/: {ckpt.CHECKPOINT}, {ckpt.BEST}, {LOG}, {METRICS}, "
          f"{', '.join(task.plots)}")  # fmt: skip
