"""The trainer's one-line error: the CLI prints ``error: <message>`` and exits with 2."""

from __future__ import annotations


class TrainError(Exception):
    """A problem with the data, the options or a checkpoint, explained in one line."""
