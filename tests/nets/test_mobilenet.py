"""MobileNet v1, v2, v3: parity with timm (v1) and torchvision (v2, v3), parameter counts
against the references and the papers, the v3 head, include_top/pooling and the stages."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn
from timm.models.efficientnet import _gen_mobilenet_v1
from torch import nn

import nets
import weights
from weights.timm import mobilenet as timm_mobilenet
from weights.torchvision import mobilenet as torchvision_mobilenet

V1 = ["mobilenet_v1_025", "mobilenet_v1_050", "mobilenet_v1_075", "mobilenet_v1_100"]
V1_WIDTHS = {"mobilenet_v1_025": 0.25, "mobilenet_v1_050": 0.5, "mobilenet_v1_075": 0.75}
TORCHVISION = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
ALL = V1 + TORCHVISION
# torchvision 0.29 metadata (REFERENCE.md); timm's mobilenetv1_100 (REFERENCE.md), which is
# also Keras MobileNet's trainable count.
PARAMS = {
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v1_100": 4_231_976,
}
# The MobileNet paper, Table 6: millions of parameters for alpha 0.25 .. 1.0 at 224.
V1_PAPER_MILLIONS = {
    "mobilenet_v1_025": 0.5,
    "mobilenet_v1_050": 1.3,
    "mobilenet_v1_075": 2.6,
    "mobilenet_v1_100": 4.2,
}


def _timm_v1(name: str) -> nn.Module:
    if name == "mobilenet_v1_100":
        return timm.create_model("mobilenetv1_100", pretrained=False)
    # timm registers only the 1.0 (and 1.25) widths; its generator builds the others.
    return _gen_mobilenet_v1("mobilenetv1_100", V1_WIDTHS[name])


SIZE = 96


def _check_parity(ours: nn.Module, ref: nn.Module) -> None:
    assert_same_logits(ours, ref, torch.randn(2, 3, SIZE, SIZE))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mobilenet_v2", {}),
        ("mobilenet_v2", {"width_mult": 0.5}),
        ("mobilenet_v2", {"width_mult": 1.4}),
        ("mobilenet_v3_large", {}),
        ("mobilenet_v3_large", {"width_mult": 0.75}),
        ("mobilenet_v3_small", {}),
    ],
)
def test_torchvision_checkpoint_gives_torchvision_logits(name, kwargs, save_reference):
    torch.manual_seed(0)
    ref = calibrate_bn(randomize_bn(torchvision.models.get_model(name, **kwargs)), SIZE)
    path = save_reference(ref, f"{name}.pth")
    ours = nets.create_model(name, weights=path, **kwargs).eval()
    assert n_params(ours) == n_params(ref)
    _check_parity(ours, ref)


@pytest.mark.parametrize("name", V1)
def test_timm_checkpoint_gives_timm_logits(name, save_reference):
    torch.manual_seed(0)
    ref = calibrate_bn(randomize_bn(_timm_v1(name)), SIZE)
    ours = nets.create_model(name, weights=save_reference(ref, f"{name}.pth")).eval()
    assert n_params(ours) == n_params(ref)
    _check_parity(ours, ref)


@pytest.mark.parametrize("name", TORCHVISION)
def test_parameter_count_matches_torchvision_and_reference(name):
    ours = n_params(nets.create_model(name))
    with torch.device("meta"):
        ref = n_params(torchvision.models.get_model(name))
    assert ours == ref == PARAMS[name]
    for tag in weights.tags_for(name):
        assert weights.get_tag(tag).num_params == ours


def test_mobilenet_v1_parameter_counts_round_to_the_paper():
    for name, millions in V1_PAPER_MILLIONS.items():
        assert round(n_params(nets.create_model(name)) / 1e6, 1) == millions, name
    assert n_params(nets.create_model("mobilenet_v1_100")) == PARAMS["mobilenet_v1_100"]
    tag = weights.get_tag(weights.default_tag("mobilenet_v1_100"))
    assert tag.num_params == PARAMS["mobilenet_v1_100"]


def test_timm_tag_follows_timms_pretrained_cfg():
    cfg = timm.models.get_pretrained_cfg("mobilenetv1_100")
    tag = weights.get_tag(f"mobilenet_v1_100.{cfg.tag}")
    assert weights.default_tag("mobilenet_v1_100") == tag.name
    assert tag.url == f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors"
    p = tag.preprocessing
    assert p.input_size == cfg.input_size[-1]
    assert p.resize_size == round(cfg.input_size[-1] / cfg.crop_pct)
    assert p.interpolation == cfg.interpolation
    assert p.mean == tuple(cfg.mean) and p.std == tuple(cfg.std)
    assert tag.sha256 == "" and tag.source == "timm"


def test_timm_tag_loads_hubs_safetensors_file_from_the_cache():
    # Stand in for the download: timm's Hub file is its state dict as safetensors.
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ref = randomize_bn(timm.create_model("mobilenetv1_100", pretrained=False)).eval()
    tag = weights.get_tag("mobilenet_v1_100.ra4_e3600_r224_in1k")
    dest = weights.cache_dir() / "downloads" / tag.file_name
    dest.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(dest))
    ours = nets.create_model("mobilenet_v1_100", weights="imagenet").eval()
    assert ours.pretrained_cfg["tag"] == tag.name
    assert ours.pretrained_cfg["preprocessing"] == tag.preprocessing
    _check_parity(ours, ref)


def test_torchvision_tags_and_defaults():
    assert weights.default_tag("mobilenet_v2") == "mobilenet_v2.tv2_in1k"
    assert weights.default_tag("mobilenet_v3_large") == "mobilenet_v3_large.tv2_in1k"
    assert weights.default_tag("mobilenet_v3_small") == "mobilenet_v3_small.tv_in1k"
    for name in ("mobilenet_v2.tv2_in1k", "mobilenet_v3_large.tv2_in1k"):
        assert weights.get_tag(name).preprocessing.resize_size == 232
    assert weights.get_tag("mobilenet_v2.tv_in1k").preprocessing.resize_size == 256


def test_layouts_recognise_their_publishers_keys():
    with torch.device("meta"):
        v2 = torchvision.models.mobilenet_v2().state_dict()
        v3 = torchvision.models.mobilenet_v3_small().state_dict()
        v1 = timm.create_model("mobilenetv1_100").state_dict()
        # timm's other MobileNets share v1's names but are not v1.
        timm_v2 = timm.create_model("mobilenetv2_100").state_dict()
        timm_v3 = timm.create_model("mobilenetv3_large_100").state_dict()
        effnet = torchvision.models.efficientnet_b0().state_dict()
    assert torchvision_mobilenet.looks_like_v2(v2) and not torchvision_mobilenet.looks_like_v2(v3)
    assert torchvision_mobilenet.looks_like_v3(v3) and not torchvision_mobilenet.looks_like_v3(v2)
    assert not torchvision_mobilenet.looks_like_v3(effnet)
    assert timm_mobilenet.looks_like_mobilenet_v1(v1)
    for other in (timm_v2, timm_v3, v2, v3):
        assert not timm_mobilenet.looks_like_mobilenet_v1(other)


def test_blocks_follow_the_reference_conventions():
    v2 = nets.create_model("mobilenet_v2")
    first = v2.stages[0][0]
    assert isinstance(first, nets.InvertedResidual) and first.expand is None  # t = 1
    assert v2.stages[1][0].expand.conv.out_channels == 16 * 6
    assert isinstance(v2.stem.act, nn.ReLU6) and v2.stem.bn.eps == 1e-5
    assert v2.head.drop.p == 0.2

    large = nets.create_model("mobilenet_v3_large")
    assert large.stages[0][0].expand is None and isinstance(large.stages[0][0].attn, nn.Identity)
    se = large.stages[2][0].attn  # 72 expanded channels: squeeze make_divisible(72 // 4) = 24
    assert isinstance(se, nets.SqueezeExcite) and se.reduce.out_channels == 24
    assert isinstance(se.act, nn.ReLU) and isinstance(se.gate, nn.Hardsigmoid)
    assert isinstance(large.stages[3][0].depthwise.act, nn.Hardswish)
    assert large.stem.bn.eps == 1e-3 and large.stem.bn.momentum == 0.01
    small = nets.create_model("mobilenet_v3_small")
    # The first block: no expansion conv, but squeeze-and-excitation (16 -> 8 -> 16).
    assert small.stages[0][0].expand is None and small.stages[0][0].attn.reduce.out_channels == 8

    v1 = nets.create_model("mobilenet_v1_100")
    blocks = [b for stage in v1.stages for b in stage]
    assert len(blocks) == 13 and all(isinstance(b, nets.DepthwiseSeparable) for b in blocks)
    assert isinstance(blocks[0].pointwise.act, nn.ReLU6)
    assert [len(s) for s in v1.stages] == [1, 2, 2, 6, 2]


def test_mobilenet_v3_head_and_new_classifier(save_reference):
    torch.manual_seed(0)
    ref = randomize_bn(torchvision.models.mobilenet_v3_large()).eval()
    path = save_reference(ref, "mobilenet_v3_large.pth")
    model = nets.create_model("mobilenet_v3_large", weights=path, num_classes=10).eval()
    assert model.get_classifier().weight.shape == (10, 1280)
    # The hidden Linear is pretrained; only the classifier is new.
    torch.testing.assert_close(model.head.fc1.weight, ref.classifier[0].weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        expected = ref.classifier[1](
            ref.classifier[0](torch.flatten(ref.avgpool(ref.features(x)), 1))
        )
        torch.testing.assert_close(pre, expected)
    model.reset_classifier(5)
    assert model.get_classifier().out_features == 5 and model.head.fc1.out_features == 1280


@pytest.mark.parametrize(
    "pooling, shape", [(None, (2, 960, 2, 2)), ("avg", (2, 960)), ("max", (2, 960))]
)
def test_without_top_keeps_only_pooling(pooling, shape, save_reference):
    torch.manual_seed(0)
    ref = randomize_bn(torchvision.models.mobilenet_v3_large()).eval()
    path = save_reference(ref, "mobilenet_v3_large.pth")
    model = nets.create_model(
        "mobilenet_v3_large", weights=path, include_top=False, pooling=pooling
    ).eval()
    assert not any(k.startswith("head.fc") for k in model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        assert out.shape == shape
        if pooling == "avg":
            torch.testing.assert_close(out, torch.flatten(ref.avgpool(ref.features(x)), 1))


@pytest.mark.parametrize(
    "name, channels, reductions",
    [
        ("mobilenet_v1_100", [64, 128, 256, 512, 1024], [2, 4, 8, 16, 32]),
        ("mobilenet_v1_025", [16, 32, 64, 128, 256], [2, 4, 8, 16, 32]),
        ("mobilenet_v2", [16, 24, 32, 96, 1280], [2, 4, 8, 16, 32]),
        ("mobilenet_v3_large", [16, 24, 40, 112, 960], [2, 4, 8, 16, 32]),
        ("mobilenet_v3_small", [16, 24, 48, 576], [4, 8, 16, 32]),
    ],
)
def test_feature_info_matches_stage_outputs(name, channels, reductions):
    model = nets.create_model(name).eval()
    assert [f.channels for f in model.feature_info] == channels
    assert [f.reduction for f in model.feature_info] == reductions
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=range(len(channels)))(x)
    assert [m.shape[1] for m in maps] == channels
    assert [64 // m.shape[-1] for m in maps] == reductions
    assert model.num_features == channels[-1]


def test_registered_names():
    assert set(nets.list_models("mobilenet*")) == set(ALL)
    for name in ALL:
        assert nets.get_spec(name).input_size == 224


def test_initialisation_is_the_references():
    torch.manual_seed(0)
    v1 = nets.create_model("mobilenet_v1_100")
    # timm's TF-style init: N(0, 2 / fan_out), a depthwise 3x3 kernel's fan-out being 9.
    dw = v1.stages[3][1].depthwise.conv.weight
    assert dw.std().item() == pytest.approx((2 / 9) ** 0.5, rel=0.05)
    fc = v1.get_classifier()
    assert fc.weight.abs().max() <= 1 / 1000**0.5 and not fc.bias.any()
    v3 = nets.create_model("mobilenet_v3_large")
    # torchvision's: Linear N(0, 0.01), Kaiming fan-out convs, zero SE biases.
    assert v3.head.fc1.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert not v3.stages[2][0].attn.reduce.bias.any()
    pw = v3.stages[3][0].expand.conv.weight  # 1x1, 240 outputs: std sqrt(2 / 240)
    assert pw.std().item() == pytest.approx((2 / 240) ** 0.5, rel=0.05)
