"""EfficientNet-B0..B7: parameter counts, stochastic depth, anatomy and the torchvision weight
tags (parity with torchvision for every tag: tests/weights/test_parity.py)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import n_params, randomize_bn

import nets
import weights
from nets.models.efficientnet import VARIANTS
from weights.convert import detect_source, to_ours

B = [f"efficientnet_b{i}" for i in range(8)]
# torchvision's ``features`` indices after which our stages end: group 0, 1, 2, 4, head conv.
TV_STAGE_ENDS = (2, 3, 4, 6, 9)


def _reference(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(torchvision.models.get_model(name), seed)


def _blocks(model: nets.Network) -> list[torch.nn.Module]:
    return [b for s in model.stages for n, b in s.named_children() if n != "conv_head"]


@pytest.mark.parametrize("name", B)
def test_parameter_count_matches_torchvision_and_the_tags(name):
    with torch.device("meta"):
        ours = n_params(nets.create_model(name))
        ref = n_params(torchvision.models.get_model(name))
    assert ours == ref
    for tag in weights.tags_for(name):
        assert weights.get_tag(tag).num_params == ours
    published = {"efficientnet_b0": 5_288_548, "efficientnet_b3": 12_233_232}  # REFERENCE.md
    if name in published:
        assert ours == published[name]


def test_stages_give_torchvisions_feature_maps(save_reference):
    ref = _reference("efficientnet_b2").eval()
    model = nets.create_model("efficientnet_b2", weights=save_reference(ref)).eval()
    assert [f.channels for f in model.feature_info] == [16, 24, 48, 120, 1408]
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=range(5))(x)
        expected = [ref.features[:end](x) for end in TV_STAGE_ENDS]
        torch.testing.assert_close(model.forward_features(x), ref.features(x))
    for m, e, info in zip(maps, expected, model.feature_info, strict=True):
        torch.testing.assert_close(m, e)
        assert m.shape[1] == info.channels and 96 // m.shape[-1] == info.reduction


def test_without_top(save_reference):
    ref = _reference("efficientnet_b0").eval()
    path = save_reference(ref)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = ref.features(x)
        fmap = nets.create_model("efficientnet_b0", weights=path, include_top=False, pooling=None)
        torch.testing.assert_close(fmap.eval()(x), expected)
        for pooling, reduce in (("avg", torch.mean), ("max", torch.amax)):
            model = nets.create_model(
                "efficientnet_b0", weights=path, include_top=False, pooling=pooling
            ).eval()
            assert not any(k.startswith("head.") for k in model.state_dict())
            torch.testing.assert_close(model(x), reduce(expected, dim=(2, 3)))


def test_new_classifier_gets_torchvisions_init(save_reference):
    path = save_reference(_reference("efficientnet_b0"))
    model = nets.create_model("efficientnet_b0", weights=path, num_classes=10)
    fc = model.get_classifier()
    assert fc.weight.shape == (10, 1280)
    assert fc.weight.abs().max() <= 1 / 10**0.5 and not fc.bias.any()


def test_stochastic_depth_rates_follow_the_block_index():
    model = nets.create_model("efficientnet_b3")
    blocks = _blocks(model)
    n = len(blocks)
    assert n == 26  # ceil(repeats * 1.4) per group: 2 + 3 + 3 + 5 + 5 + 6 + 2
    ref = torchvision.models.get_model("efficientnet_b3")
    ref_blocks = [b for group in ref.features[1:8] for b in group]
    for i, (ours, theirs) in enumerate(zip(blocks, ref_blocks, strict=True)):
        assert ours.has_residual == theirs.use_res_connect
        expected = 0.2 * i / n
        assert theirs.stochastic_depth.p == pytest.approx(expected)
        if i == 0:
            assert isinstance(ours.drop_path, torch.nn.Identity)
        else:
            assert ours.drop_path.p == pytest.approx(expected)
            assert ours.drop_path.mode == "row"


def test_stochastic_depth_is_identity_in_eval_and_active_in_train(save_reference):
    ref = _reference("efficientnet_b0")
    path = save_reference(ref)
    model = nets.create_model("efficientnet_b0", weights=path)
    plain = nets.create_model("efficientnet_b0", weights=path, drop_path_rate=0.0)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        model.eval()
        plain.eval()
        out = model(x)
        torch.testing.assert_close(model(x), out, rtol=0, atol=0)
        torch.testing.assert_close(plain(x), out, rtol=0, atol=0)

        # In training, the same seed drops the same rows as torchvision's StochasticDepth,
        # and the head's dropout draws after it in both.
        for m in (model, ref, plain):
            m.train()
        for seed in (1, 2, 3):
            torch.manual_seed(seed)
            got = model(x)
            torch.manual_seed(seed)
            torch.testing.assert_close(got, ref(x))
            torch.manual_seed(seed)
            dropped = model.forward_features(x)
            assert not torch.allclose(dropped, plain.forward_features(x))


def test_blocks_follow_torchvisions_layout():
    model = nets.create_model("efficientnet_b0")
    blocks = _blocks(model)
    assert len(blocks) == 16
    assert isinstance(blocks[0], nets.DepthwiseSeparable)
    assert all(isinstance(b, nets.InvertedResidual) for b in blocks[1:])
    # SE squeezes to a quarter of the block's input, not of the expanded width.
    assert blocks[0].attn.reduce.out_channels == 32 // 4
    assert (blocks[1].attn.reduce.in_channels, blocks[1].attn.reduce.out_channels) == (96, 4)
    assert isinstance(blocks[1].depthwise.act, torch.nn.SiLU)
    assert blocks[1].depthwise.conv.padding == (1, 1)  # symmetric, not TF "same"
    assert model.stem.conv.out_channels == 32
    assert model.stages[4].conv_head.conv.out_channels == 1280
    assert model.head.drop.p == 0.2
    assert set(nets.list_models("efficientnet_b*")) == set(B)


@pytest.mark.parametrize(
    ("name", "eps", "momentum"), [("efficientnet_b4", 1e-5, 0.1), ("efficientnet_b5", 1e-3, 0.01)]
)
def test_batchnorm_follows_torchvisions_builders(name, eps, momentum):
    with torch.device("meta"):
        ours = nets.create_model(name)
        ref = torchvision.models.get_model(name)
    for m in (ours.stem.bn, ours.stages[4].conv_head.bn, ref.features[0][1]):
        assert (m.eps, m.momentum) == (eps, momentum)
    assert ours.head.drop.p == VARIANTS[name].dropout == ref.classifier[0].p


def test_layout_is_recognised_and_told_apart_from_mobilenet_v3():
    with torch.device("meta"):
        sd = torchvision.models.get_model("efficientnet_b1").state_dict()
        mnv3 = torchvision.models.get_model("mobilenet_v3_small").state_dict()
        v2 = torchvision.models.get_model("efficientnet_v2_s").state_dict()
    assert detect_source(sd, {}, "efficientnet_b1") == "torchvision"
    assert detect_source(mnv3, {}, "efficientnet_b0") != "torchvision"
    assert detect_source(v2, {}, "efficientnet_b0") != "torchvision"
    converted = to_ours("efficientnet_b1", "torchvision", sd)
    assert converted.keys() == {
        k for k in nets.create_model("efficientnet_b1").state_dict() if "num_batches" not in k
    }


def test_torchvision_tags():
    b0 = weights.get_tag("efficientnet_b0.tv_in1k")
    assert b0.file_name == "efficientnet_b0_rwightman-7f5810bc.pth" and b0.sha256 == "7f5810bc"
    p = b0.preprocessing
    assert (p.resize_size, p.input_size, p.interpolation) == (256, 224, "bicubic")
    p = weights.get_tag("efficientnet_b3.tv_in1k").preprocessing
    assert (p.resize_size, p.input_size) == (320, 300)
    assert weights.default_tag("efficientnet_b1") == "efficientnet_b1.tv2_in1k"
    for name in B:
        default = torchvision.models.get_model_weights(name).DEFAULT
        tag = weights.get_tag(weights.default_tag(name))
        assert tag.url == default.url
        assert tag.preprocessing.input_size == default.transforms().crop_size[0]
