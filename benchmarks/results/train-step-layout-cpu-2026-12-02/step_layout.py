"""The trainer's training step with channels_last off and on: both built by the trainer's own
phases (plan, network, loaders, optimiser) for one configuration, fed one real batch of the
folder, and timed interleaved (benchmarks.timing, 7 pairs of samples of two steps each).

python benchmarks/results/train-step-layout-cpu-2026-12-02/step_layout.py MODEL DATA STRATEGY BATCH
"""

import dataclasses
import itertools
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.timing import interleaved, ratio_stats  # noqa: E402
from train import engine  # noqa: E402
from train.config import TrainConfig, validate  # noqa: E402
from train.datasets import load_data  # noqa: E402
from train.loop import batches, train_epoch  # noqa: E402


def two_steps(cfg: TrainConfig, ctx: engine.Context, data, channels_last: bool):  # noqa: ANN001, ANN201
    cfg = validate(dataclasses.replace(cfg, channels_last=channels_last))
    dtype = engine.amp_dtype(cfg.amp, ctx.device)
    plan = engine.plan_run(cfg, ctx, data, 0, dtype)
    model, pre, freezing = engine.build_network(cfg, plan, ctx, len(data.classes))
    run = engine.RunState()
    loaders = engine.make_loaders(cfg, plan, ctx, data, model, pre, 0, dtype, run)
    step, _ = engine.make_step(cfg, plan, ctx, model, loaders, dtype)
    freezing.set_train_mode(model, True)
    x, y = next(batches(loaders.train, ctx.device, channels_last=plan.channels_last))

    def call() -> None:
        feed = itertools.repeat((x, y), 2)
        train_epoch(step, feed, len(data.classes), ctx.device, check_finite=lambda *a: None)

    return call, tuple(x.shape)


model, data_dir, strategy, batch = sys.argv[1:5]
with tempfile.TemporaryDirectory() as out:
    cfg = TrainConfig(model=model, data=data_dir, strategy=strategy, batch_size=int(batch),
                      progress=False, out=out, epochs=1)  # fmt: skip
    ctx = engine.setup("cpu")
    data = load_data(data_dir, val_split=cfg.val_split, seed=cfg.seed)
    contiguous, shape = two_steps(cfg, ctx, data, False)
    nhwc, _ = two_steps(cfg, ctx, data, True)
    off, on = interleaved([contiguous, nhwc], torch.device("cpu"), repeats=7)
    r = ratio_stats(on, off)
    print(f"| {model} | {data_dir} | {strategy} | {shape} "
          f"| {r['median']:.2f} ({r['p25']:.2f}-{r['p75']:.2f}) |", flush=True)  # fmt: skip
