"""ResNet: anatomy (parity with torchvision and the counts of every tag:
tests/weights/test_parity.py)."""

from __future__ import annotations

import torch

import nets


def test_stages_follow_the_anatomy():
    model = nets.create_model("resnet50").eval()
    assert [f.channels for f in model.feature_info] == [256, 512, 1024, 2048]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2, 3))(x)
    assert [m.shape[1] for m in maps] == [256, 512, 1024, 2048]
    assert [96 // m.shape[-1] for m in maps] == [4, 8, 16, 32]
