"""SE-ResNet: parity with timm's two layouts (legacy_seresnet*, seresnet*) on the same input,
parameter counts, weight tags, anatomy."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn

import nets
import weights
from weights.convert import detect_source

LEGACY = ["legacy_seresnet50", "legacy_seresnet101", "legacy_seresnet152"]
TIMM = ["seresnet50", "seresnet101", "seresnet152"]
# timm 1.0.31's counts (the same for both layouts); REFERENCE.md has the two 50-layer ones.
PARAMS = {50: 28_088_024, 101: 49_326_872, 152: 66_821_848}


def _depth(name: str) -> int:
    return int(name.removeprefix("legacy_").removeprefix("seresnet"))


@pytest.mark.parametrize("name", [*LEGACY, "seresnet50"])
def test_timm_checkpoint_gives_timm_logits(name, save_reference):
    torch.manual_seed(0)
    ref = calibrate_bn(randomize_bn(timm.create_model(name, pretrained=False)), 64)
    ours = nets.create_model(name, weights=save_reference(ref, f"{name}.pth")).eval()
    # 77 is odd after the stem conv (39), where a ceil-mode pool and a padded one differ in size.
    sizes = (64, 77) if name.endswith("50") else (64,)
    for size in sizes:
        assert_same_logits(ours, ref, torch.randn(2, 3, size, size))
    del ref, ours


@pytest.mark.parametrize("name", LEGACY + TIMM)
def test_parameter_count_matches_timm_and_reference(name):
    with torch.device("meta"):
        ours = n_params(nets.create_model(name))
        ref = n_params(timm.create_model(name, pretrained=False))
    assert ours == ref == PARAMS[_depth(name)]
    for tag in weights.tags_for(name):
        assert weights.get_tag(tag).num_params == ours


def test_the_two_layouts_differ_where_the_weights_need_it():
    legacy = nets.create_model("legacy_seresnet50")
    timm_like = nets.create_model("seresnet50")
    pool_l, pool_t = legacy.stem.pool, timm_like.stem.pool
    assert (pool_l.padding, pool_l.ceil_mode) == (0, True)
    assert (pool_t.padding, pool_t.ceil_mode) == (1, False)
    # Caffe's stride on the first 1x1 conv, torchvision's on the 3x3.
    assert legacy.stages[1][0].conv1.conv.stride == (2, 2)
    assert timm_like.stages[1][0].conv2.conv.stride == (2, 2)
    se = legacy.stages[3][0].attn
    assert isinstance(se, nets.SqueezeExcite) and se.reduce.out_channels == 2048 // 16
    # timm's ResNet starts every residual branch at zero; the legacy SENet does not.
    assert not timm_like.stages[0][0].conv3.bn.weight.any()
    assert legacy.stages[0][0].conv3.bn.weight.all()


def test_layouts_are_recognised_and_not_confused(save_reference):
    with torch.device("meta"):
        legacy_keys = dict(timm.create_model("legacy_seresnet50").state_dict())
        timm_keys = dict(timm.create_model("seresnet50").state_dict())
    assert detect_source(legacy_keys, {}, "legacy_seresnet50") == "timm"
    assert detect_source(timm_keys, {}, "seresnet50") == "timm"
    assert detect_source(timm_keys, {}, "legacy_seresnet50") == "unknown"
    assert detect_source(legacy_keys, {}, "seresnet50") == "unknown"

    torch.manual_seed(0)
    path = save_reference(timm.create_model("seresnet50"), "seresnet50.pth")
    with pytest.raises(nets.IncompatibleCheckpointError, match="legacy_seresnet50"):
        nets.create_model("legacy_seresnet50", weights=path)


def test_weight_tags_follow_timms_pretrained_cfg():
    for name in LEGACY:
        tag = weights.get_tag(f"{name}.in1k")
        cfg = timm.models.get_pretrained_cfg(f"{name}.in1k")
        assert weights.default_tag(name) == tag.name
        assert tag.url == cfg.url and tag.url.endswith(tag.file_name)
        assert tag.preprocessing.interpolation == cfg.interpolation == "bilinear"
    tag = weights.get_tag("seresnet50.ra2_in1k")
    cfg = timm.models.get_pretrained_cfg("seresnet50.ra2_in1k")
    assert weights.default_tag("seresnet50") == tag.name
    assert tag.url == cfg.url and tag.preprocessing.interpolation == cfg.interpolation
    for name in weights.list_tags("*seresnet*"):
        tag = weights.get_tag(name)
        cfg = timm.models.get_pretrained_cfg(name)
        prep = tag.preprocessing
        assert prep.input_size == cfg.input_size[-1] == 224
        assert prep.resize_size == round(cfg.input_size[-1] / cfg.crop_pct) == 256
        assert (prep.mean, prep.std) == (tuple(cfg.mean), tuple(cfg.std))
        assert tag.source == "timm" and tag.sha256 == ""


def test_feature_map_without_top_and_stages():
    model = nets.create_model("legacy_seresnet50", include_top=False, pooling=None).eval()
    assert [f.channels for f in model.feature_info] == [256, 512, 1024, 2048]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert model(x).shape == (1, 2048, 3, 3)
        maps = nets.feature_extractor(model, stages=(0, 1, 2, 3))(x)
    assert [m.shape[1] for m in maps] == [f.channels for f in model.feature_info]
    assert [96 // m.shape[-1] for m in maps] == [f.reduction for f in model.feature_info]
    pooled = nets.create_model("seresnet50", include_top=False, pooling="max").eval()
    with torch.no_grad():
        assert pooled(x).shape == (1, 2048)
    assert set(nets.list_models("*seresnet*")) == set(LEGACY + TIMM)
