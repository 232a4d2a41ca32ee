"""Building the networks to compare: ours, and torchvision's twin with the same weights.

A model has a torchvision twin when one of its registered weights tags comes from
torchvision (``weights.get_tag(t).source``): our converters then map torchvision's
checkpoints, so a random torchvision model's state dict loads into ours exactly.
"""

from __future__ import annotations

import os
import tempfile

import torch
import torchvision
from torch import nn

import nets
import weights


def has_twin(name: str) -> bool:
    return any(weights.get_tag(t).source == "torchvision" for t in weights.tags_for(name))


def twin_kwargs(ours: nn.Module) -> dict:
    """torchvision options that give the architecture ours was built with: the input
    re-normalisation module in the stem and the auxiliary classifiers (GoogLeNet, v3)."""
    kwargs = {}
    stem = getattr(ours, "stem", None)
    if stem is not None and hasattr(stem, "transform"):
        kwargs["transform_input"] = True
    if hasattr(ours, "aux_taps"):
        kwargs["aux_logits"] = bool(ours.aux_taps)
        kwargs["init_weights"] = True
    return kwargs


def build_pair(name: str, *, seed: int = 0) -> tuple[nn.Module, nn.Module | None]:
    """Ours and torchvision's model (or None) holding the same random weights."""
    torch.manual_seed(seed)
    ours = nets.create_model(name)
    if not has_twin(name):
        return ours, None
    theirs = torchvision.models.get_model(name, **twin_kwargs(ours))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}-torchvision.pth")
        torch.save(theirs.state_dict(), path)
        ours = nets.create_model(name, weights=path)
    return ours, theirs


def input_size(name: str, requested: int | None) -> int:
    spec = nets.get_spec(name)
    return max(requested or spec.input_size, spec.min_input_size)
