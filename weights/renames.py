"""Applying explicit rename tables to state dicts."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch

from .types import StateDict

Rule = tuple[str, str | Callable[[re.Match], str]]


def apply_rules(state_dict: Mapping[str, torch.Tensor], rules: Sequence[Rule]) -> StateDict:
    """Rename each key by the first rule whose pattern matches at its start.

    Keys no rule matches are kept as they are, so that a checkpoint of another architecture
    shows up as unexpected keys in the strict check instead of vanishing here.
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: StateDict = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in compiled:
            m = pattern.match(key)
            if m:
                new = (repl(m) if callable(repl) else m.expand(repl)) + key[m.end() :]
                break
        if new in out:
            raise ValueError(f"two checkpoint keys map onto {new!r}")
        out[new] = value
    return out


def apply_prefixes(state_dict: Mapping[str, torch.Tensor], table: Mapping[str, str]) -> StateDict:
    """Rename by an exact module-prefix table: ``{"features.0": "stages.0.0.conv"}``."""
    out: StateDict = {}
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        out[f"{table.get(module, module)}.{leaf}" if module else key] = value
    return out


def drop_num_batches_tracked(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """BatchNorm's step counter carries no information for inference and older checkpoints
    lack it; ``weights.convert.to_ours`` drops it before any converter runs, and the loader
    keeps the model's own."""
    return {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
