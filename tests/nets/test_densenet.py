"""DenseNet: parity with torchvision (both key spellings of its files), parameter counts,
memory-efficient mode, anatomy."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn

import nets
import weights
from nets.blocks import DenseLayer

DENSENETS = ["densenet121", "densenet161", "densenet169", "densenet201"]
# The files on download.pytorch.org spell the dense layers' children ``norm.1``, ``conv.2``;
# torchvision's modules today say ``norm1``, ``conv2``. Two models get each spelling.
OLD_SPELLING = {"densenet121", "densenet169"}
PUBLISHED_PARAMS = {"densenet121": 7_978_856, "densenet201": 20_013_928}  # REFERENCE.md


def _old_spelling(state_dict: dict) -> dict:
    return {
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
        for k, v in state_dict.items()
    }


def _reference(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return calibrate_bn(randomize_bn(torchvision.models.get_model(name)), 64)


@pytest.mark.parametrize("name", DENSENETS)
def test_torchvision_checkpoint_gives_torchvision_logits(name, save_reference, tmp_path):
    ref = _reference(name)
    if name in OLD_SPELLING:
        state_dict = _old_spelling(ref.state_dict())
        assert "features.denseblock1.denselayer1.norm.1.weight" in state_dict
        path = tmp_path / f"{name}.pth"
        torch.save(state_dict, path)
    else:
        assert "features.denseblock1.denselayer1.norm1.weight" in ref.state_dict()
        path = save_reference(ref, f"{name}.pth")
    ours = nets.create_model(name, weights=path).eval()
    assert ours.pretrained_cfg["source"] == "torchvision"
    x = torch.randn(2, 3, 64, 64)
    assert_same_logits(ours, ref, x)
    with torch.no_grad():
        # norm5 and torchvision's ReLU after ``features`` close our last stage.
        torch.testing.assert_close(ours.forward_features(x), F.relu(ref.features(x)))
    del ref, ours


@pytest.mark.parametrize("name", DENSENETS)
def test_parameter_count_matches_torchvision_and_reference(name):
    with torch.device("meta"):
        ours = n_params(nets.create_model(name))
        ref = n_params(torchvision.models.get_model(name))
    assert ours == ref == weights.get_tag(f"{name}.tv_in1k").num_params
    assert ours == PUBLISHED_PARAMS.get(name, ours)
    assert weights.default_tag(name) == f"{name}.tv_in1k"


def test_memory_efficient_mode_gives_the_same_outputs_gradients_and_statistics(monkeypatch):
    torch.manual_seed(0)
    plain = nets.create_model("densenet121", num_classes=10).train()
    efficient = nets.create_model("densenet121", num_classes=10, memory_efficient=True).train()
    efficient.load_state_dict(plain.state_dict())

    calls = []
    bottleneck = DenseLayer.bottleneck

    def counted(self, *features, update_stats=True):
        calls.append(update_stats)
        return bottleneck(self, *features, update_stats=update_stats)

    monkeypatch.setattr(DenseLayer, "bottleneck", counted)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([3, 7])
    outputs = []
    for model in (plain, efficient):
        calls.clear()
        out = model(x)
        F.cross_entropy(out, y).backward()
        outputs.append(out.detach())
        n_layers = sum(isinstance(m, DenseLayer) for m in model.modules())
        if model is efficient:
            # Recomputed in backward, without a second update of the running statistics.
            assert calls.count(True) == calls.count(False) == n_layers
        else:
            assert calls == [True] * n_layers

    torch.testing.assert_close(outputs[1], outputs[0])
    names = [
        "stem.conv1.conv.weight",
        "stages.0.block.0.norm1.weight",
        "stages.0.block.0.conv1.weight",
        "stages.2.block.10.conv1.weight",
        "stages.3.transition.conv.weight",
        "stages.3.block.15.conv2.weight",
        "head.fc.weight",
    ]
    grads = dict(plain.named_parameters())
    for name, p in efficient.named_parameters():
        if name in names:
            torch.testing.assert_close(p.grad, grads[name].grad, msg=name)
    buffers = dict(plain.named_buffers())
    for name, b in efficient.named_buffers():
        torch.testing.assert_close(b, buffers[name], msg=name)


def test_stages_follow_the_anatomy():
    model = nets.create_model("densenet121").eval()
    assert [f.channels for f in model.feature_info] == [256, 512, 1024, 1024]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2, 3))(x)
    assert [m.shape[1] for m in maps] == [256, 512, 1024, 1024]
    assert [64 // m.shape[-1] for m in maps] == [4, 8, 16, 32]
    with torch.device("meta"):
        wide = nets.create_model("densenet161")
    assert [f.channels for f in wide.feature_info] == [384, 768, 2112, 2208]


def test_without_top_and_with_new_classes(save_reference):
    path = save_reference(_reference("densenet121"), "densenet121.pth")
    x = torch.randn(2, 3, 64, 64)
    full = nets.create_model("densenet121", weights=path).eval()
    pooled = nets.create_model("densenet121", weights=path, include_top=False).eval()
    maps = nets.create_model("densenet121", weights=path, include_top=False, pooling=None).eval()
    with torch.no_grad():
        features = full.forward_features(x)
        torch.testing.assert_close(pooled(x), features.mean((2, 3)))
        torch.testing.assert_close(maps(x), features)
    assert maps(x).shape == (2, 1024, 2, 2)
    assert not any(k.startswith("head.") for k in pooled.state_dict())

    tuned = nets.create_model("densenet121", weights=path, num_classes=5)
    assert tuned.get_classifier().out_features == 5
    assert torch.count_nonzero(tuned.get_classifier().bias) == 0
    key = "stages.3.norm.running_var"
    torch.testing.assert_close(tuned.state_dict()[key], full.state_dict()[key])
