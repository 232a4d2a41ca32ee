"""Inception-v4 and Inception-ResNet-v2: parity with timm on the same input, parameter
counts, the registered tags, the smallest input, and the anatomy."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn

import nets
import weights
from weights.convert import detect_source

# name: (parameters in timm and REFERENCE.md, the tag)
MODELS = {
    "inception_v4": (42_679_816, "inception_v4.tf_in1k"),
    "inception_resnet_v2": (55_843_464, "inception_resnet_v2.tf_in1k"),
}


def _reference(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return calibrate_bn(randomize_bn(timm.create_model(name, pretrained=False)), 107, n=8)


@pytest.mark.parametrize("name", list(MODELS))
def test_timm_checkpoint_gives_timm_logits(name, save_reference):
    ref = _reference(name)
    path = save_reference(ref, f"{name}.pth")
    assert detect_source(torch.load(path, weights_only=True), {}) == "timm"
    ours = nets.create_model(name, weights=path).eval()
    assert n_params(ours) == n_params(ref)
    # The smallest valid input, one a little larger (every layer runs on a map wider than
    # 1x1), and the native 299.
    for size in (75, 107, 299):
        x = torch.randn(2, 3, size, size)
        assert_same_logits(ours, ref, x)
    with torch.no_grad():
        assert ours.forward_features(x).shape == (2, 1536, 8, 8)


@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_count_matches_timm_reference_and_tag(name):
    params, tag = MODELS[name]
    with torch.device("meta"):
        ours = n_params(nets.create_model(name))
        ref = n_params(timm.create_model(name, pretrained=False))
    assert ours == ref == params
    assert weights.get_tag(tag).num_params == params
    assert weights.default_tag(name) == tag


@pytest.mark.parametrize("name", list(MODELS))
def test_tags_follow_timm_pretrained_cfg(name):
    tag = weights.get_tag(MODELS[name][1])
    cfg = timm.models.get_pretrained_cfg(tag.name)
    pre = tag.preprocessing
    assert tag.source == "timm" and tag.arch == name
    assert tag.url == f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors"
    assert (3, pre.input_size, pre.input_size) == cfg.input_size
    assert pre.resize_size == int(pre.input_size / cfg.crop_pct)  # timm floors
    assert pre.interpolation == cfg.interpolation
    assert pre.mean == cfg.mean and pre.std == cfg.std
    assert nets.get_spec(name).input_size == 299


@pytest.mark.parametrize("name", list(MODELS))
def test_smallest_input_is_75(name):
    model = nets.create_model(name).eval()
    assert model.min_input_size == nets.get_spec(name).min_input_size == 75
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 75, 75)).shape == (1, 1536, 1, 1)
    with pytest.raises(nets.InputSizeError, match="at least 75x75"):
        model(torch.randn(1, 3, 74, 74))


def test_layouts_are_told_apart():
    with torch.device("meta"):
        v4 = timm.create_model("inception_v4").state_dict()
        irv2 = timm.create_model("inception_resnet_v2").state_dict()
    assert detect_source(v4, {}, "inception_resnet_v2") != "timm"
    assert detect_source(irv2, {}, "inception_v4") != "timm"
    assert detect_source(v4, {}, "inception_v4") == "timm"
    assert detect_source(irv2, {}, "inception_resnet_v2") == "timm"


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("inception_v4", [64, 192, 384, 1024, 1536]),
        ("inception_resnet_v2", [64, 192, 320, 1088, 1536]),
    ],
)
def test_feature_info_matches_the_stage_outputs(name, channels):
    model = nets.create_model(name).eval()
    assert [f.channels for f in model.feature_info] == channels
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
    extract = nets.feature_extractor(model, stages=range(5))
    # Unpadded convs make sizes uneven (299 -> 149, 147, 71, 35, 17, 8); a stride shows as
    # how much a stage's map grows when the input grows by 32 pixels.
    with torch.no_grad():
        small, large = extract(torch.randn(1, 3, 107, 107)), extract(torch.randn(1, 3, 139, 139))
    assert [m.shape[1] for m in small] == channels
    assert [b.shape[-1] - a.shape[-1] for a, b in zip(small, large, strict=True)] == [
        16,
        8,
        4,
        2,
        1,
    ]


@pytest.mark.parametrize("pooling", ["avg", "max", None])
def test_without_top(pooling):
    model = nets.create_model("inception_resnet_v2", include_top=False, pooling=pooling).eval()
    assert not any(k.startswith("head.") for k in model.state_dict())
    with torch.no_grad():
        out = model(torch.randn(2, 3, 107, 107))
    assert out.shape == ((2, 1536) if pooling else (2, 1536, 2, 2))


def test_anatomy_and_residual_scales():
    model = nets.create_model("inception_resnet_v2")
    a, b, c = (s for s in list(model.stages)[2:])
    assert [blk.scale for n, blk in a.named_children() if n.isdigit()] == [0.17] * 10
    assert [blk.scale for n, blk in b.named_children() if n.isdigit()] == [0.10] * 20
    cs = [blk for n, blk in c.named_children() if n.isdigit()]
    assert [blk.scale for blk in cs] == [0.20] * 9 + [1.0]
    assert isinstance(cs[-1].act, torch.nn.Identity) and isinstance(cs[0].act, torch.nn.ReLU)
    assert model.head.drop.p == 0.2
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.eps == 1e-3
        if isinstance(m, torch.nn.AvgPool2d):
            assert m.count_include_pad is False
    assert isinstance(
        nets.create_model("inception_v4").stages[4].mixed_7a, nets.InceptionV4ReductionB
    )


def test_blocks_are_tables_and_take_a_table_of_your_own():
    from nets.blocks.inception_v4 import MAX, Pool

    # A published block is the generic one with its table: same keys, same outputs.
    torch.manual_seed(0)
    published = nets.InceptionResNetB(64, 0.1).eval()
    torch.manual_seed(0)
    generic = nets.InceptionResNetBlock(64, 0.1, branches=nets.InceptionResNetB.BRANCHES).eval()
    assert published.state_dict().keys() == generic.state_dict().keys()
    x = torch.randn(2, 64, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(published(x), generic(x), rtol=0, atol=0)

    own = nets.InceptionConcat(
        16, branches=[((8, 1, 1, False),), ((4, 1, 1, False), (6, (1, 3), 1, True)), Pool("avg", 5)]
    )
    assert own.out_chs == 8 + 6 + 5
    assert own(torch.randn(1, 16, 7, 7)).shape == (1, 19, 7, 7)
    reduce = nets.InceptionConcat(16, branches=[((8, 3, 2, False),), MAX])
    assert reduce(torch.randn(1, 16, 9, 9)).shape == (1, 8 + 16, 4, 4)
    with pytest.raises(ValueError, match="InceptionConcat needs branches"):
        nets.InceptionConcat(16)
