"""``python -m benchmarks train-loop``: the trainer's own loop against its bare step.

Two figures side by side, from one run: the training step alone, fed one synthetic batch
already on the device (what the model and optimiser can do), and the trainer's loop on a
real image folder (decoding, augmentation, collation, copies: what a user's run gets).
Their ratio says how much of the step's speed the data pipeline keeps. Both run the same
model, optimiser, precision and memory format, built by the trainer's own phases.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import common
import nets
import weights
from common import atomic_write_text, cli
from train.config import TrainConfig, validate
from train.context import setup, teardown
from train.epochs import make_step
from train.errors import TrainError
from train.loaders import make_loaders
from train.loop import Throughput, batches, train_epoch
from train.memory_cache import GIB, budget_bytes
from train.plan import build_network, plan_run, read_data
from train.run import Run
from train.tasks import task_for

from . import report

IMAGE_STRATEGIES = ("fine-tune", "feature-extract", "scratch")


def parser() -> argparse.ArgumentParser:
    p = common.ArgumentParser(prog="python -m benchmarks train-loop", description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="an image folder or CSV, as train fit takes")
    p.add_argument("--strategy", choices=IMAGE_STRATEGIES, default="fine-tune")
    p.add_argument(
        "--weights",
        help="as train fit takes: 'imagenet' (the default where the strategy needs them), a "
        "tag or a file; a machine without network needs a file",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto")
    # Ranges are the trainer's checks (train.config.validate), with its wording.
    p.add_argument("--batch-size", type=cli.integer, default=32)
    p.add_argument("--steps", type=cli.integer, default=20, help="timed steps of each (default 20)")
    p.add_argument("--warmup", type=cli.integer, default=3, help="untimed steps first (default 3)")
    p.add_argument(
        "--num-workers", type=cli.integer, help="loader processes (default: the trainer's)"
    )
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--normalize-on-device", action=argparse.BooleanOptionalAction, default=None,
        help="uint8 batches normalised after the copy (default: on CUDA), as train fit",
    )  # fmt: skip
    p.add_argument(
        "--compile", action="store_true",
        help="torch.compile the training step, as train fit --compile does (its compile "
        "time is the warm-up's, reported apart)",
    )  # fmt: skip
    p.add_argument(
        "--cache-memory", type=cli.number, metavar="GiB",
        help="as train fit: GiB of decoded images held in memory (default: a quarter of the "
        "RAM; 0: every image decoded from disk each time, what a folder too large for the "
        "cache gets)",
    )  # fmt: skip
    p.add_argument(
        "--out", type=Path, help="also write the figures to OUT/train-loop.json and the table "
        "to OUT/train-loop.md",
    )  # fmt: skip
    return p


def _config(args: argparse.Namespace, out: str) -> TrainConfig:
    cfg = TrainConfig(
        model=args.model, data=args.data, strategy=args.strategy, weights=args.weights,
        batch_size=args.batch_size,
        amp=args.amp, device=args.device, num_workers=args.num_workers,
        channels_last=args.channels_last, normalize_on_device=args.normalize_on_device,
        cache_memory=args.cache_memory, progress=False, out=out, epochs=1,
        compile=args.compile,
    )  # fmt: skip
    for name, value in (("--steps", args.steps), ("--warmup", args.warmup)):
        if value < 1:
            raise TrainError(f"{name} must be a positive integer, got {value}")
    return validate(cfg)


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> dict:
    """The bare step's and the loop's images per second, from one run."""
    with tempfile.TemporaryDirectory() as scratch:
        cfg = _config(args, scratch)
        ctx = setup(cfg.device)
        try:
            # The trainer's phases up to its first epoch: the run's data, plan, network,
            # loaders and step, exactly as train fit builds them.
            run = Run(cfg, ctx, task_for(cfg.task))
            for phase in (read_data, plan_run, build_network, make_loaders, make_step):
                phase(run)
            data, plan, loaders, step, dtype = run.data, run.plan, run.loaders, run.step, run.dtype
            run.freezing.set_train_mode(run.model, True)
            n = run.n_classes
            steps = min(args.steps, len(loaders.train))

            def loop(count: int, timing: Throughput) -> None:
                feed = batches(loaders.train, ctx.device, channels_last=plan.channels_last,
                               normalize=loaders.normalize, timing=timing)  # fmt: skip
                train_epoch(step, feed, n, ctx.device, check_finite=_ignore, max_steps=count)

            # Warm-up: workers started (they persist), kernels chosen, the first batch's
            # shape taken for the synthetic one.
            warmup_s = _timed(lambda: loop(args.warmup, Throughput()))
            x, y = next(batches(loaders.train, ctx.device, channels_last=plan.channels_last,
                                normalize=loaders.normalize))  # fmt: skip
            x = torch.randn_like(x)
            y = torch.randint(0, n, y.shape, device=ctx.device)

            def bare() -> None:
                feed = itertools.repeat((x, y), steps)
                train_epoch(step, feed, n, ctx.device, check_finite=_ignore)

            bare()  # warm at the synthetic batch too
            timing = Throughput()
            # bare, loop, bare: the step's speed is the mean of the two around the loop.
            bare_s = _timed(bare)
            loop_s = _timed(lambda: loop(steps, timing))
            bare_s = (bare_s + _timed(bare)) / 2
        finally:
            teardown(ctx)
    batch = x.shape[0]
    bare_ips = steps * batch / bare_s
    loop_ips = timing.images / loop_s
    return {
        "model": cfg.model, "strategy": plan.strategy, "device": str(ctx.device),
        "dtype": str(dtype).replace("torch.", "") if dtype else "float32",
        "channels_last": plan.channels_last, "compile": cfg.compile,
        "normalize_on_device": loaders.normalize is not None,
        # --cache-memory as given (None: the default budget), the budget it makes here, and
        # whether the folder fitted: a cached loop augments from memory, decoding nothing.
        "cache_memory": cfg.cache_memory,
        "cache_budget_gib": round(budget_bytes(cfg.cache_memory) / GIB, 3),
        "in_memory": loaders.in_memory,
        "warmup_s": round(warmup_s, 2), "batch_size": batch, "input": list(x.shape[1:]),
        "num_workers": run.workers, "steps": steps, "data": cfg.data,
        "train_images": len(data.train),
        "bare_step_images_per_s": round(bare_ips, 2),
        "loop_images_per_s": round(loop_ips, 2),
        "ratio": round(loop_ips / bare_ips, 3),
        "loop_data_wait": round(timing.wait_share, 3),
        # The wait for the first batch: every epoch starts so, all workers on a batch at once.
        "loop_first_batch_s": round(timing.start_wait_s, 3),
        "loop_s": round(loop_s, 3),
        "machine": {**report.machine(),
                    "gpu": torch.cuda.get_device_name(ctx.device)
                    if ctx.device.type == "cuda" else None},
    }  # fmt: skip


def _ignore(_loss: torch.Tensor, _i: int) -> None:
    """The benchmark's step does not stop on a non-finite loss: random labels are fine."""


def table(r: dict) -> str:
    rows = [
        "| | img/s | |",
        "|---|---|---|",
        f"| bare step (synthetic batch on {r['device']}) | {r['bare_step_images_per_s']:.1f} | |",
        f"| trainer's loop on {r['data']} | {r['loop_images_per_s']:.1f} | data wait "
        f"{r['loop_data_wait']:.0%} ({r['loop_first_batch_s']:.2f} s of {r['loop_s']:.2f} s "
        "before the first batch) |",
        f"| loop / bare step | {r['ratio']:.2f} | |",
    ]
    shape = "x".join(map(str, r["input"]))
    head = (
        f"{r['model']} {r['strategy']}, batch {r['batch_size']} x {shape}, {r['dtype']}, "
        f"channels_last {r['channels_last']}, {'compiled, ' if r['compile'] else ''}"
        f"{'normalised on the device, ' if r['normalize_on_device'] else ''}"
        f"{_images_from(r)}, {r['num_workers']} loader workers, {r['steps']} steps "
        f"(warm-up {r['warmup_s']:.1f} s)"
    )
    return head + "\n\n" + "\n".join(rows)


def _images_from(r: dict) -> str:
    """Where the loop's images came from, with the --cache-memory that decided it."""
    given = "default " if r["cache_memory"] is None else ""
    where = "images cached in memory" if r["in_memory"] else "images decoded from disk"
    return f"{where} (--cache-memory {given}{r['cache_budget_gib']:.3g} GiB)"


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if args.out is not None:
            common.check_writable(args.out, "--out")
        result = measure(args)
        if args.out is not None:
            text = json.dumps(result, indent=1) + "\n"
            atomic_write_text(args.out / "train-loop.json", text)
            atomic_write_text(args.out / "train-loop.md", table(result) + "\n")
    except (TrainError, nets.NetsError, weights.WeightsError, common.WriteError) as exc:
        print(f"error: {common.one_line(exc)}", file=sys.stderr)
        return 2
    print(table(result))
    return 0
