"""Feature extraction: the maps of chosen stages, for pyramids and dense tasks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import FeatureInfoList, stage_outputs


class FeatureExtractor(nn.Module):
    """Runs a network's stem and stages up to the last one asked for, returning the maps of
    the chosen stages in order. Shares parameters with the network it was made from."""

    def __init__(self, model: nn.Module, stages: Sequence[int]) -> None:
        super().__init__()
        n = len(model.stages)
        if not stages:
            raise ValueError("stages must name at least one stage")
        chosen = []
        for s in stages:
            if not isinstance(s, int) or not -n <= s < n:
                raise ValueError(f"stage {s!r} is out of range for a network with {n} stages")
            chosen.append(s % n)
        if sorted(set(chosen)) != chosen:
            raise ValueError(f"stages must be distinct and increasing, got {list(stages)}")
        self.indices = chosen
        self.model = model
        self.feature_info = FeatureInfoList(model.feature_info[i] for i in chosen)
        self.channels = [f.channels for f in self.feature_info]
        self.reductions = [f.reduction for f in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.model.check_input(x)
        out = []
        for i, fmap in enumerate(stage_outputs(self.model, x)):
            if i in self.indices:
                out.append(fmap)
            if i == self.indices[-1]:
                break  # the later stages are not run
        return out


def feature_extractor(model: nn.Module, stages: Sequence[int] = (1, 2, 3)) -> FeatureExtractor:
    """A module returning the feature maps of ``stages`` (indices into ``model.stages``,
    negative from the end); see ``model.feature_info`` for their channels and strides."""
    return FeatureExtractor(model, stages)
