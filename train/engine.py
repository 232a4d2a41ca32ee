"""``fit``: one explicit training loop for every task, strategy, device and process count.

A run is a ``Run`` record that its phases take and extend in order, each in its own
module: the data and the plan, then the network (``plan``), the loaders (``loaders``), the
step and the epochs (``epochs``), and the report (``finish``); what differs between tasks
is the run's ``Task`` (``train.tasks``)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

import common

from .config import TrainConfig, validate
from .context import say, setup, teardown
from .epochs import make_step, run_epoch, save_epoch, start_epochs
from .errors import OUT_OF_MEMORY, TrainError
from .features import default_cache_dir
from .finish import finish
from .loaders import make_loaders
from .plan import build_network, own_out, plan_run, read_data
from .run import Run
from .strategy import unet_encoder
from .tasks import task_for


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
    run = Run(config, ctx, task_for(config.task))
    try:
        return _fit(run)
    except OUT_OF_MEMORY:
        raise TrainError(run.out_of_memory()) from None
    finally:
        if run.lock is not None:
            run.lock.release()
        teardown(ctx)


def _check_writable(run: Run) -> None:
    """Before any work: a run that would be refused at the end is refused now, and a given
    --out becomes this run's (its lock) before anything is written there."""
    cfg = run.config
    if cfg.out:
        own_out(run, Path(cfg.out))
    else:  # runs/<model>-<strategy>: the strategy (auto) is known later, the folder now
        common.check_writable(Path("runs"), "--out (default runs/)")
    if cfg.strategy in ("linear-probe", "auto"):
        common.check_writable(cfg.cache_dir or default_cache_dir(), "--cache-dir")


def _header(run: Run) -> str:
    """The run's line before its epochs: what trains, from which weights, on what data,
    where and how."""
    cfg, plan, data, ctx = run.config, run.plan, run.data, run.context
    encoders = " (the encoder's)" if plan.weights and unet_encoder(cfg.model) else ""
    return (
        f"{cfg.model} | {plan.strategy} | weights {plan.weights or 'none (random init)'}"
        f"{encoders} | {len(data.train)} train / {len(data.val)} val images "
        f"({data.validation}), {len(data.classes)} classes | {ctx.world} process(es) on "
        f"{ctx.device}"
        + (" | channels_last" if plan.channels_last else "")
        + (" | normalised on the device" if run.loaders.normalize is not None else "")
        + (f" | {run.dtype}".replace("torch.", "") if run.dtype else "")
    )


def _train_epochs(run: Run) -> None:
    """The epochs, each saved; until the plan's last or early stopping's patience ends."""
    cfg, ctx, state = run.config, run.context, run.state
    while state.epoch < run.plan.epochs:
        record = run_epoch(run)
        save_epoch(run, record)
        ctx.barrier()
        _maybe_kill(state.epoch)
        if cfg.patience and state.bad_epochs >= cfg.patience:
            say(ctx, f"early stopping: no improvement for {state.bad_epochs} epochs")
            run.stopped_early = True
            break


def _fit(run: Run) -> dict:
    """The phases of a run in order: check the output, read the data, plan, build the
    network, the loaders and the step, restore a resumed run, train the epochs, finish."""
    _check_writable(run)
    torch.manual_seed(run.config.seed)
    read_data(run)
    plan_run(run)
    build_network(run)
    make_loaders(run)
    make_step(run)
    start_epochs(run)
    say(run.context, _header(run))
    _train_epochs(run)
    return finish(run)
