"""The nets API: registry, create_model options, anatomy, images, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nets
from nets.images import load_image


def test_list_and_registry():
    names = nets.list_models()
    assert {"resnet50", "efficientnet_lite0"} <= set(names)
    assert nets.list_models("resnet*")[:3] == ["resnet18", "resnet34", "resnet50"]
    with pytest.raises(ValueError, match="already registered"):
        nets.register_model("resnet50", lambda **kw: None, family="resnet")


def test_register_variants_registers_a_table_with_per_row_defaults():
    from nets import registry

    variants = {"_tiny_resnet_a": (1, 1, 1, 1), "_tiny_resnet_b": (1, 2, 1, 1)}
    try:
        specs = nets.register_variants(
            variants,
            lambda depths, **kw: nets.models.resnet.ResNet(nets.BasicBlock, depths, **kw),
            family="resnet",
            input_size=lambda depths: 64 * depths[1],
            defaults=lambda depths: dict(drop_rate=0.1 * depths[1]),
            paper=str.upper,
        )
        assert [s.name for s in specs] == list(variants)
        assert [s.input_size for s in specs] == [64, 128]
        assert specs[1].paper == "_TINY_RESNET_B"
        assert specs[1].kwargs == {"drop_rate": 0.2}
        model = nets.create_model("_tiny_resnet_b", num_classes=3)
        assert [len(stage) for stage in model.stages] == [1, 2, 1, 1]
        assert model.head.drop.p == pytest.approx(0.2)
        # the caller's keywords win over a row's defaults
        assert nets.create_model("_tiny_resnet_b", drop_rate=0.5).head.drop.p == 0.5
        with pytest.raises(ValueError, match="already registered"):
            nets.register_variants(variants, nets.models.resnet.ResNet, family="resnet")
    finally:
        for name in variants:
            registry._MODELS.pop(name, None)


def test_unknown_model_suggests_close_names():
    with pytest.raises(nets.UnknownModelError, match="did you mean resnet50"):
        nets.create_model("resnet05")
    with pytest.raises(nets.UnknownModelError, match="python -m nets list"):
        nets.create_model("transformer")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pooling"):
        nets.create_model("resnet18", pooling="mean")
    with pytest.raises(ValueError, match="include_top=False"):
        nets.create_model("resnet18", pooling=None)
    with pytest.raises(ValueError, match="num_classes"):
        nets.create_model("resnet18", num_classes=-1)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_anatomy_is_shared(name):
    model = nets.create_model(name).eval()
    for part in ("stem", "stages", "head"):
        assert isinstance(getattr(model, part), torch.nn.Module)
    assert isinstance(model.stages, torch.nn.Sequential)
    assert len(model.feature_info) == len(model.stages)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features == model.feature_info[-1].channels
        logits = model.forward_head(feats)
        pre = model.forward_head(feats, pre_logits=True)
        torch.testing.assert_close(logits, model(x))
    assert logits.shape == (2, 1000) and pre.shape == (2, model.num_features)
    assert model.get_classifier() is model.head.fc
    model.reset_classifier(7)
    assert model.get_classifier().out_features == 7
    with torch.no_grad():
        assert model(x).shape == (2, 7)
    maps = nets.feature_extractor(model, stages=(-2, -1))(x)
    assert [m.shape[1] for m in maps] == [f.channels for f in model.feature_info[-2:]]
    with pytest.raises(ValueError, match="out of range"):
        nets.feature_extractor(model, stages=(9,))


def test_include_top_false_and_pooling_follow_keras():
    x = torch.randn(2, 3, 64, 64)
    for pooling, shape in (("avg", (2, 512)), ("max", (2, 512)), (None, (2, 512, 2, 2))):
        model = nets.create_model("resnet18", include_top=False, pooling=pooling).eval()
        with torch.no_grad():
            assert model(x).shape == shape
        assert not [k for k in model.state_dict() if k.startswith("head.")]


def test_new_classifier_with_pretrained_weights(save_reference):
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18().eval()
    path = save_reference(ref)
    model = nets.create_model("resnet18", weights=path, num_classes=5).eval()
    assert model.head.fc.out_features == 5
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref_features = torch.flatten(
            ref.avgpool(
                ref.layer4(
                    ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x)))))))
                )
            ),
            1,
        )
        torch.testing.assert_close(
            model.forward_head(model.forward_features(x), True), ref_features
        )
    headless = nets.create_model("resnet18", weights=path, include_top=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(headless(x), ref_features)


def test_input_smaller_than_minimum():
    model = nets.create_model("resnet18").eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
        with pytest.raises(nets.InputSizeError, match="at least 32x32"):
            model(torch.randn(1, 3, 31, 40))
        with pytest.raises(nets.InputSizeError, match=r"\(N, 3, H, W\)"):
            model(torch.randn(1, 1, 64, 64))


# -- images ----------------------------------------------------------------------------------
@pytest.fixture
def odd_images(tmp_path):
    rgb = Image.open("samples/chelsea.jpg").convert("RGB").resize((80, 60))
    paths = {}
    paths["gray"] = tmp_path / "gray.png"
    rgb.convert("L").save(paths["gray"])
    paths["rgba"] = tmp_path / "rgba.png"
    rgb.convert("RGBA").save(paths["rgba"])
    paths["palette"] = tmp_path / "palette.png"
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(paths["palette"])
    paths["gray16"] = tmp_path / "gray16.png"
    wide = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(paths["gray16"])
    return paths, rgb


def test_odd_image_modes_are_converted(odd_images):
    paths, rgb = odd_images
    gray = np.asarray(rgb.convert("L"), dtype=np.int16)
    for kind, path in paths.items():
        image = load_image(path)
        assert image.mode == "RGB" and image.size == (80, 60), kind
    # 16-bit values are rescaled, not clipped to white.
    g16 = np.asarray(load_image(paths["gray16"]))[..., 0].astype(np.int16)
    assert np.abs(g16 - gray).max() <= 1
    rgba = np.asarray(load_image(paths["rgba"]), dtype=np.int16)
    assert np.abs(rgba - np.asarray(rgb, dtype=np.int16)).max() == 0


def test_not_an_image_and_truncated_image(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(nets.ImageError, match="is not an image"):
        load_image(text)
    data = open("samples/coffee.jpg", "rb").read()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(nets.ImageError, match="truncated or corrupted"):
        load_image(cut)
    with pytest.raises(nets.ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("name", nets.list_models())
def test_every_registered_model_has_the_anatomy(name):
    """stem, stages (one FeatureInfo each, strides not decreasing), head with a classifier,
    and a first conv the in_chans adaptation can find: built on the meta device."""
    with torch.device("meta"):
        model = nets.create_model(name)
    assert isinstance(model, nets.Network)
    assert isinstance(model.stem, torch.nn.Module) and isinstance(model.head, torch.nn.Module)
    assert isinstance(model.stages, torch.nn.Sequential)
    assert [f.stage for f in model.feature_info] == list(range(len(model.stages)))
    reductions = [f.reduction for f in model.feature_info]
    assert reductions == sorted(reductions)
    assert model.get_classifier() is model.head.fc
    assert f"{model.first_conv}.weight" in model.state_dict()


# -- every model knows its preprocessing (issue 13) -----------------------------------------
def test_every_model_knows_its_preprocessing_without_weights():
    """With no weights, the family's default tag's preprocessing (what its published
    weights expect), else the generic ImageNet default; and weights.transforms(model)
    builds the transform for every registered model, grey for a 1-channel one."""
    import weights

    photo = load_image("samples/coffee.jpg")
    for name in nets.list_models():
        with torch.device("meta"):  # the record, not the tensors, is what is checked
            model = nets.create_model(name)
        cfg = model.pretrained_cfg
        assert isinstance(cfg, nets.PretrainedCfg) and cfg.tag is None, name
        tag = weights.default_tag(name)
        if tag is not None:
            assert cfg.preprocessing == weights.get_tag(tag).preprocessing, name
            assert cfg.preprocessing_from == f"the default tag {tag} (no weights loaded)"
        else:
            size = nets.get_spec(name).input_size
            assert (cfg.preprocessing.input_size, cfg.preprocessing.resize_size) == (
                size, round(size / 0.875)
            ), name  # fmt: skip
            assert cfg.preprocessing_from.startswith("the generic ImageNet default"), name
        x = weights.transforms(model)(photo)
        size = cfg.preprocessing.input_size
        assert x.shape == (model.in_chans, size, size), name


def test_the_readme_example_runs(monkeypatch):
    """The README's API example, as written, up to the part that needs files we do not
    have offline; then the same idiom for models without weights."""
    from pathlib import Path

    import weights

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    text = (root / "README.md").read_text()
    block = text.split("## The API in one example", 1)[1].split("```python", 1)[1]
    block = block.split("```", 1)[0].split("# A new 10-way head", 1)[0]
    assert "weights.transforms(model)" in block
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["logits"].shape == (1, 1000)

    for name in ("resnet18", "lenet5", "googlenet"):
        model = nets.create_model(name).eval()
        x = weights.transforms(model)(load_image("samples/coffee.jpg")).unsqueeze(0)
        with torch.no_grad():
            assert model(x).shape[0] == 1, name


def test_pretrained_cfg_is_a_frozen_record_read_like_a_dict():
    import dataclasses

    model = nets.create_model("efficientnet_lite0", weights="imagenet")
    cfg = model.pretrained_cfg
    assert cfg["tag"] == cfg.tag == "efficientnet_lite0.tf_in1k"
    assert cfg.preprocessing_from == "the tag efficientnet_lite0.tf_in1k"
    assert cfg.get("class_names") is None and "origin" in cfg and dict(cfg)["arch"] == cfg.arch
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.tag = "other"
    with pytest.raises(KeyError):
        cfg["nope"]
    assert cfg.replace(tag=None).tag is None and cfg.tag is not None
