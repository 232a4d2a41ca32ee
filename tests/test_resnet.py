"""ResNet: parity with torchvision on the same input, parameter counts, anatomy."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import n_params, randomize_bn

import nets
from weights import get_tag

RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


@pytest.mark.parametrize("name", RESNETS)
def test_torchvision_checkpoint_gives_torchvision_logits(name, save_reference):
    torch.manual_seed(0)
    ref = randomize_bn(torchvision.models.get_model(name)).eval()
    ours = nets.create_model(name, weights=save_reference(ref, f"{name}.pth")).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("name", RESNETS)
def test_parameter_count_matches_torchvision_and_reference(name):
    ours = n_params(nets.create_model(name))
    with torch.device("meta"):
        ref = n_params(torchvision.models.get_model(name))
    assert ours == ref
    for tag in ("tv_in1k", "tv2_in1k"):
        full = f"{name}.{tag}"
        if full in __import__("weights").list_tags():
            assert get_tag(full).num_params == ours


def test_stages_follow_the_anatomy():
    model = nets.create_model("resnet50").eval()
    assert [f.channels for f in model.feature_info] == [256, 512, 1024, 2048]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2, 3))(x)
    assert [m.shape[1] for m in maps] == [256, 512, 1024, 2048]
    assert [96 // m.shape[-1] for m in maps] == [4, 8, 16, 32]
