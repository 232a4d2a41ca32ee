"""torchvision's builder options: ``norm_layer`` (every family with BatchNorm),
``replace_stride_with_dilation`` and ``zero_init_residual`` (ResNet and SE-ResNet), against
torchvision's own builders on the same weights."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import assert_input_matters, assert_same_logits, calibrate_bn, randomize_bn
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FrozenBatchNorm2d

import nets

# Families without any normalisation take no norm_layer; every other family does.
WITHOUT_NORM = {"alexnet", "lenet"}
# The first model of a family, unless it has no BatchNorm (vgg11: only the *_bn VGGs have).
WITH_NORM = {"vgg": "vgg11_bn"}
DILATION = [False, True, True]  # output stride 8, as segmentation backbones use


def _first_per_family() -> list[str]:
    firsts: dict[str, str] = {}
    for name in nets.list_models():
        firsts.setdefault(nets.get_spec(name).family, name)
    return sorted({**firsts, **WITH_NORM}.values())


def _norms(model: nn.Module) -> dict[str, nn.Module]:
    kinds = (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d, nn.GroupNorm)
    return {k: m for k, m in model.named_modules() if isinstance(m, kinds)}


@pytest.mark.parametrize("name", _first_per_family())
def test_norm_layer_replaces_every_batchnorm_and_keeps_the_keys(name):
    """FrozenBatchNorm2d has BatchNorm's weight, bias and running statistics: the keys stay
    (less the step counters), so the family's checkpoints still load. Built on meta."""
    family = nets.get_spec(name).family
    with torch.device("meta"):
        if family in WITHOUT_NORM:
            with pytest.raises(TypeError, match="norm_layer"):
                nets.create_model(name, norm_layer=FrozenBatchNorm2d)
            return
        # The paper's U-Net has no BatchNorm unless norm=True; norm_layer alone turns it on.
        plain = nets.create_model(name, **({"norm": True} if family == "unet" else {}))
        frozen = nets.create_model(name, norm_layer=FrozenBatchNorm2d)
    norms = _norms(frozen)
    assert norms and all(type(m) is FrozenBatchNorm2d for m in norms.values())
    assert set(norms) == set(_norms(plain))
    keys = [k for k in plain.state_dict() if not k.endswith(".num_batches_tracked")]
    assert list(frozen.state_dict()) == keys


def test_frozen_batchnorm_resnet_loads_a_torchvision_checkpoint_strictly(save_reference):
    torch.manual_seed(0)
    ref = randomize_bn(torchvision.models.resnet18()).eval()
    path = save_reference(ref)
    ours = nets.create_model("resnet18", weights=path, norm_layer=FrozenBatchNorm2d).eval()
    frozen_ref = torchvision.models.resnet18(norm_layer=FrozenBatchNorm2d).eval()
    frozen_ref.load_state_dict(ref.state_dict())  # FrozenBatchNorm2d drops the counters
    assert_same_logits(ours, frozen_ref, torch.randn(2, 3, 64, 64))
    # Strictly: a checkpoint that lacks a key is refused, frozen norms or not.
    partial = {k: v for k, v in ref.state_dict().items() if k != "layer2.0.bn1.running_var"}
    torch.save(partial, path)
    with pytest.raises(Exception, match="running_var"):
        nets.create_model("resnet18", weights=path, norm_layer=FrozenBatchNorm2d)


def test_group_norm_resnet_trains():
    model = nets.create_model("resnet18", num_classes=3, norm_layer=lambda c: nn.GroupNorm(32, c))
    assert {type(m) for m in _norms(model).values()} == {nn.GroupNorm}
    out = model(torch.randn(2, 3, 64, 64))
    out.sum().backward()
    assert out.shape == (2, 3) and model.stem.conv1.bn.weight.grad is not None


def test_vgg_without_batchnorm_refuses_norm_layer():
    with pytest.raises(ValueError, match="only the \\*_bn VGGs"):
        nets.create_model("vgg11", norm_layer=FrozenBatchNorm2d)


def test_memory_efficient_dense_block_with_group_norm_trains():
    """The checkpointed recomputation guards BatchNorm's statistics; a GroupNorm has none."""
    torch.manual_seed(0)
    kw = dict(norm_layer=lambda c: nn.GroupNorm(2, c))
    plain = nets.DenseBlock(3, 16, 8, **kw)
    efficient = nets.DenseBlock(3, 16, 8, memory_efficient=True, **kw)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 8, 8)
    outs = [m(x) for m in (plain, efficient)]
    for out in outs:
        out.square().mean().backward()
    torch.testing.assert_close(outs[1], outs[0])
    grads = [m[0].norm1.weight.grad for m in (plain, efficient)]
    torch.testing.assert_close(grads[1], grads[0])


def test_dilated_resnet50_matches_torchvision(save_reference):
    """replace_stride_with_dilation=[False, True, True] on torchvision's weights: the same
    logits and final map (output stride 8) as torchvision's builder at 224 and at a
    segmentation-like 320x480, and feature_info says so."""
    torch.manual_seed(0)
    ref = torchvision.models.resnet50(replace_stride_with_dilation=DILATION)
    ref = calibrate_bn(randomize_bn(ref), 64, n=4)  # random statistics would kill the signal
    ours = nets.create_model(
        "resnet50", weights=save_reference(ref), replace_stride_with_dilation=DILATION
    ).eval()
    assert [f.reduction for f in ours.feature_info] == [4, 8, 8, 8]
    # One pass of each network gives both the final map and the logits.
    ref_outputs = create_feature_extractor(ref, {"layer4": "map", "fc": "logits"})
    for size in [(224, 224), (320, 480)]:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            got = ours.forward_features(x)
            logits, want = ours.forward_head(got), ref_outputs(x)
        assert got.shape == want["map"].shape == (2, 2048, size[0] // 8, size[1] // 8)
        torch.testing.assert_close(got, want["map"], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(logits, want["logits"], rtol=1e-4, atol=1e-4)
        assert_input_matters(want["logits"])


@pytest.mark.parametrize(
    ("name", "dilation", "reductions"),
    [
        ("resnet18", [False, False, True], [4, 8, 16, 16]),  # BasicBlock, output stride 16
        ("legacy_seresnet50", [False, True, True], [4, 8, 8, 8]),  # stride on the first 1x1
    ],
)
def test_dilation_keeps_the_resolution_feature_info_says(name, dilation, reductions):
    model = nets.create_model(name, replace_stride_with_dilation=dilation).eval()
    assert [f.reduction for f in model.feature_info] == reductions
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        maps = nets.feature_extractor(model, [0, 1, 2, 3])(x)
    assert [tuple(m.shape[-2:]) for m in maps] == [(96 // r, 128 // r) for r in reductions]
    with pytest.raises(ValueError, match="needs 3 booleans"):
        nets.create_model(name, replace_stride_with_dilation=[True, True])


@pytest.mark.parametrize(
    ("name", "default"),
    [("resnet18", False), ("resnet50", False), ("seresnet50", True), ("legacy_seresnet50", False)],
)
def test_zero_init_residual_zeroes_the_last_norm_of_every_residual_branch(name, default):
    """The blocks then start as identities (Goyal et al., 2017), as torchvision's and timm's
    option does; timm's SE-ResNet has it on by default, the SENet authors' off."""

    def last_norms(model: nn.Module) -> list[torch.Tensor]:
        blocks = [b for stage in model.stages for b in stage]
        return [(b.conv3 if hasattr(b, "conv3") else b.conv2).bn.weight for b in blocks]

    for zero in (True, False):
        model = nets.create_model(name, zero_init_residual=zero)
        assert all(bool((w == 0).all()) == zero for w in last_norms(model))
        last = {id(w) for w in last_norms(model)}
        others = [m.weight for m in _norms(model).values() if id(m.weight) not in last]
        assert others and all(bool((w == 1).all()) for w in others)
    default_model = nets.create_model(name)
    assert all(bool((w == 0).all()) == default for w in last_norms(default_model))


@pytest.mark.parametrize("norm", ["frozen", "group"])
def test_keras_scale_free_norms_take_a_norm_layer_and_load_strictly(norm, tmp_path):
    """Keras' Inception v3 has BatchNorm without gamma: with FrozenBatchNorm2d or GroupNorm
    as norm_layer the model still has no weight key there, so the Keras layout loads
    strictly (here: our own Keras-layout model's state dict, saved and loaded back)."""
    layer = FrozenBatchNorm2d if norm == "frozen" else (lambda c: nn.GroupNorm(1, c))
    plain = nets.create_model("keras_inception_v3")
    model = nets.create_model("keras_inception_v3", norm_layer=layer)
    assert set(model.state_dict()) <= set(plain.state_dict())
    if norm == "frozen":
        assert set(model.state_dict()) == {
            k for k in plain.state_dict() if not k.endswith("num_batches_tracked")
        }
        path = tmp_path / "k.safetensors"
        nets_state = {k: v for k, v in plain.state_dict().items() if "num_batches" not in k}
        from safetensors.torch import save_file

        save_file(nets_state, str(path))
        loaded = nets.create_model("keras_inception_v3", norm_layer=layer, weights=str(path))
        x = torch.randn(1, 3, 75, 75)
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(x), plain.eval()(x))
