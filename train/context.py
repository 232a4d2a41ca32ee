"""The processes and devices of a run: the distributed context, seeding, autocast dtype,
and where a run is (for the one-line error of a failure that escapes the loop)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .errors import TrainError


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


def say(ctx: Context, *args) -> None:
    if ctx.is_main:
        print(*args, flush=True)


def all_names(ctx: Context, names: set[str]) -> set[str]:
    """The union over the processes: each process reads only its share of the images."""
    if not ctx.distributed:
        return names
    gathered: list = [None] * ctx.world
    torch.distributed.all_gather_object(gathered, sorted(names))
    return set().union(*gathered)


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
