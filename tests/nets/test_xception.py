"""Xception: parity with timm's legacy_xception (the ported Keras weights' layout) on the same
input, parameter count, weight tag, anatomy and minimum input size."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn

import nets
import weights
from nets.blocks import SeparableConv2d, XceptionBlock

NAME = "legacy_xception"
PARAMS = 22_855_952  # REFERENCE.md and timm 1.0.31


@pytest.fixture(scope="module")
def pair(module_dir):
    """timm's model with random weights and ours loaded from its saved state dict."""
    torch.manual_seed(0)
    ref = calibrate_bn(randomize_bn(timm.create_model(NAME, pretrained=False)), 107)
    path = module_dir / "xception.pth"
    torch.save(ref.state_dict(), path)
    ours = nets.create_model(NAME, weights=str(path)).eval()
    yield ours, ref
    del ours, ref


# 71 is Keras' minimum (the exit flow ends at 3x3); 107 leaves odd sizes after every pool;
# 299 is the size the weights were trained at.
@pytest.mark.parametrize("size", [71, 107, 299])
def test_timm_checkpoint_gives_timm_logits(pair, size):
    ours, ref = pair
    assert_same_logits(ours, ref, torch.randn(2, 3, size, size))


def test_stage_maps_are_timms_feature_taps(pair):
    # timm's taps for blocks 1, 2 and 11 are the ReLU that begins the next block; ours are the
    # stage outputs before it. The exit flow's tap (act4) is our last stage output itself.
    ours, ref = pair
    x = torch.randn(1, 3, 107, 107)
    with torch.no_grad():
        maps = nets.feature_extractor(ours, stages=(0, 1, 2, 3))(x)
        taps = ref.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
    for ours_map, tap in zip(maps[:3], taps[:3], strict=True):
        torch.testing.assert_close(ours_map.relu(), tap)
    torch.testing.assert_close(maps[3], taps[3])


def test_parameter_count_matches_timm_reference_and_tag():
    with torch.device("meta"):
        ours = n_params(nets.create_model(NAME))
        ref = n_params(timm.create_model(NAME, pretrained=False))
    assert ours == ref == PARAMS
    assert weights.get_tag(f"{NAME}.tf_in1k").num_params == PARAMS


def test_weight_tag_follows_timms_pretrained_cfg():
    tag = weights.get_tag("legacy_xception.tf_in1k")
    cfg = timm.models.get_pretrained_cfg("legacy_xception.tf_in1k")
    assert weights.default_tag(NAME) == tag.name
    assert tag.url == cfg.url and tag.url.endswith(tag.file_name)
    prep = tag.preprocessing
    assert prep.input_size == cfg.input_size[-1] == nets.get_spec(NAME).input_size == 299
    assert prep.resize_size == round(299 / cfg.crop_pct) == 333
    assert prep.interpolation == cfg.interpolation == "bicubic"
    assert prep.mean == tuple(cfg.mean) == (0.5, 0.5, 0.5)
    assert prep.std == tuple(cfg.std) == (0.5, 0.5, 0.5)


def test_feature_map_without_top_and_stages():
    model = nets.create_model(NAME, include_top=False, pooling=None).eval()
    assert [f.channels for f in model.feature_info] == [128, 256, 728, 2048]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    assert [len(s) for s in model.stages] == [1, 1, 9, 3]  # block 12, conv3, conv4 at the end
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2, 3))(x)
        out = model(x)
    assert [m.shape[1] for m in maps] == [128, 256, 728, 2048]
    # Unpadded stem convs: 128 -> 63 -> 61, then the pools: 31, 16, 8, 4.
    assert [m.shape[-1] for m in maps] == [31, 16, 8, 4]
    assert out.shape == (1, 2048, 4, 4)
    pooled = nets.create_model(NAME, include_top=False, pooling="avg").eval()
    with torch.no_grad():
        assert pooled(x).shape == (1, 2048)


def test_minimum_input_size_is_kerass():
    model = nets.create_model(NAME).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 71, 71)).shape == (1, 1000)
        with pytest.raises(nets.InputSizeError, match="71x71"):
            model(torch.randn(1, 3, 70, 71))


def test_blocks_on_their_own():
    sep = SeparableConv2d(16, 32, 3)
    assert sep.depthwise.groups == 16 and sep.depthwise.weight.shape == (16, 1, 3, 3)
    assert sep.pointwise.weight.shape == (32, 16, 1, 1)
    assert sep(torch.randn(1, 16, 9, 9)).shape == (1, 32, 9, 9)

    exit_block = XceptionBlock(32, 64, 2, 2, grow_first=False)
    # grow_first=False widens in the last separable conv (the exit flow's 728 -> 728 -> 1024).
    assert [u.conv.out_chs for u in exit_block.convs] == [32, 64]
    assert exit_block(torch.randn(1, 32, 9, 9)).shape == (1, 64, 5, 5)

    middle = XceptionBlock(8, 8, 3).eval()
    assert middle.skip is None
    x = torch.randn(1, 8, 5, 5)
    before = x.clone()
    with torch.no_grad():
        middle(x)
    # The block's first ReLU must leave its input alone: the identity shortcut reads it.
    torch.testing.assert_close(x, before)
