"""``fit``: one explicit training loop for every strategy, device and process count.

A run goes through its phases in order, each in its own module: the processes and devices
(``context``), the plan and the network (``plan``), the loaders (``loaders``), the
optimiser, the epochs and the report (``epochs``)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch

import weights as wts

from . import checkpoint as ckpt
from . import segmentation as seg
from .config import TrainConfig, validate
from .context import Context, RunState, amp_dtype, say, setup, teardown
from .datasets import default_workers, load_data
from .epochs import finish, make_step, resumable_parts, run_epoch, save_epoch
from .errors import OUT_OF_MEMORY, TrainError
from .features import default_cache_dir
from .loaders import make_loaders
from .loop import Throughput
from .plan import build_network, check_out, plan_run, prepare_out
from .strategy import unet_encoder

# The phases stay importable from here as before the split: the committed measurement
# benchmarks/results/train-step-layout-cpu-2026-12-02/step_layout.py reads them so.
__all__ = [
    "Context", "RunState", "amp_dtype", "build_network", "fit", "make_loaders", "make_step",
    "plan_run", "setup", "teardown",
]  # fmt: skip


def _maybe_kill(epoch: int) -> None:
    """Test hook: TRAIN_TEST_KILL_AFTER_EPOCH=k kills this process (SIGKILL) right after
    epoch k's checkpoint is written, as a crash would."""
    k = os.environ.get("TRAIN_TEST_KILL_AFTER_EPOCH")
    if k and int(k) == epoch:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


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


def _fit(cfg: TrainConfig, ctx: Context, run: RunState) -> dict:
    """The phases of a run in order: check the output, read the data, plan, build the
    network, the loaders and the step, restore a resumed run, train the epochs, finish."""
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
        ckpt.TrainState.restore(plan.resumed, resumable_parts(model, step))
        state = ckpt.TrainState.read(plan.resumed)
        run.epoch_saved = state.epoch
        say(ctx, f"resuming {plan.out} after epoch {state.epoch}")
    say(
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
        record, epoch_timing = run_epoch(
            cfg, ctx, plan, data, model, freezing, loaders, step, net, state, run
        )
        timing.add(epoch_timing)
        save_epoch(cfg, ctx, plan, data, model, pre, step, state, record, run)
        ctx.barrier()
        _maybe_kill(state.epoch)
        if cfg.patience and state.bad_epochs >= cfg.patience:
            say(ctx, f"early stopping: no improvement for {state.bad_epochs} epochs")
            stopped_early = True
            break
    extra = {"started": started, "stopped_early": stopped_early, "timing": timing}
    return finish(cfg, ctx, plan, data, model, freezing, loaders, step, state, run, extra)
