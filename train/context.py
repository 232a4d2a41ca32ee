"""The processes and devices of a run: the distributed context, seeding, autocast dtype."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

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
