"""The trainer's one-line error: the CLI prints ``error: <message>`` and exits with 2."""

from __future__ import annotations

import torch

# torch.OutOfMemoryError (torch >= 2.5) is torch.cuda.OutOfMemoryError under a new name;
# the trainer and the benchmarks both turn it into one line.
OUT_OF_MEMORY = tuple(
    {getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError} - {None}
)


class TrainError(Exception):
    """A problem with the data, the options or a checkpoint, explained in one line."""
