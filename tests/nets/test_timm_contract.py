"""timm's model contract on every registered model (written from what timm's own model tests
check): the names timm reads, its data configuration giving our preprocessing, its feature
dicts, ``forward_intermediates``, ``reset_classifier`` with ``global_pool``, layer-wise
learning-rate groups, gradient checkpointing; then ``create_model``'s timm options,
registration into timm (``nets.timm``), torch.hub and the look-ups.

One model per family in ``make test``; every model under ``pytest -m conformance``.
"""

from __future__ import annotations

import copy
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import nets
import weights
from nets.registry import natural_key

timm = pytest.importorskip("timm")

ROOT = Path(__file__).resolve().parents[2]
CHELSEA = ROOT / "samples" / "chelsea.jpg"


def _one_per_family() -> set[str]:
    """The cheapest model of each family: the smallest input it takes, then the fewest
    blocks (by name: mobilenet_v1_025 before mobilenet_v1_100, resnet18 before resnet50)."""
    first: dict[str, tuple] = {}
    for name in nets.list_models():
        spec = nets.get_spec(name)
        key = (spec.min_input_size, spec.input_size, "keras" in name, natural_key(name), name)
        first[spec.family] = min(first.get(spec.family, key), key)
    return {key[-1] for key in first.values()}


CHEAP = _one_per_family()
EVERY_MODEL = [
    n if n in CHEAP else pytest.param(n, marks=pytest.mark.conformance) for n in nets.list_models()
]


def _input(model, batch: int = 2) -> torch.Tensor:
    size = nets.get_spec(model.arch).min_input_size
    return torch.randn(
        batch, model.in_chans, size, size, generator=torch.Generator().manual_seed(0)
    )


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_timm_contract(name):
    model = nets.create_model(name).eval()
    x = _input(model)
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        logits = model(x)
    assert model.num_classes == logits.shape[1] == model.pretrained_cfg["num_classes"]
    if isinstance(features, list):  # U-Net: the encoder's maps, which its decoder reads
        features = features[-1]
    else:
        assert model.num_features == features.shape[1]
        assert model.head_hidden_size == pre_logits.shape[1]
    assert model.default_cfg is model.pretrained_cfg

    # timm's FeatureInfo reads our feature_info as its list of dicts.
    info = timm.models._features.FeatureInfo(model.feature_info, list(range(len(model.stages))))
    assert (
        info.channels() == model.feature_info.channels() == [f.channels for f in model.feature_info]
    )
    assert info.reduction() == [f.reduction for f in model.feature_info]

    # forward_intermediates: every stage, the last n, stop_early, NHWC.
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        torch.testing.assert_close(final, features)
        assert [m.shape[1] for m in maps] == model.feature_info.channels()
        for got, want in zip(maps, model.stage_outputs(x), strict=True):
            torch.testing.assert_close(got, want)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [m.shape for m in last_two] == [m.shape for m in maps[-2:]]
        _, first = model.forward_intermediates(x, indices=[0], stop_early=True)
        torch.testing.assert_close(first[0], maps[0])
        nhwc = model.forward_intermediates(
            x, indices=[0], output_fmt="NHWC", intermediates_only=True
        )
        torch.testing.assert_close(nhwc[0], maps[0].permute(0, 2, 3, 1))

    # Layer-wise learning-rate decay groups: stem first, the head last, every parameter in one.
    names = [n for n, _ in model.named_parameters()]
    for coarse in (True, False):
        groups = timm.models.group_parameters(model, model.group_matcher(coarse=coarse))
        grouped = [n for members in groups.values() for n in members]
        assert sorted(grouped) == sorted(names)
        order = list(groups.values())
        stem = {n for n in names if n.startswith("stem")}  # AlexNet's stages start at once
        assert stem <= set(order[0]) and not any(n.startswith("head") for n in order[0])
        assert all(n.startswith("head") for n in order[-1])
    # (timm.optim's layer decay groups with this same call; importing timm.optim would set
    # dynamo's recompile limit to a million for the whole process, so it is not imported.)

    # reset_classifier with timm's global_pool: "" leaves the map where nothing follows the
    # pooling; heads with layers after it (MobileNet v3's, VGG's) refuse what they cannot do.
    pruned = copy.deepcopy(model)
    if isinstance(model.head, nets.ClassifierHead):
        pruned.reset_classifier(7, "max")
        assert pruned.num_classes == 7 and pruned(x).shape == (2, 7)
        if type(model.head) is nets.ClassifierHead:
            pruned.reset_classifier(0, "")
            assert pruned(x).shape == features.shape
        else:
            with pytest.raises(nets.NetsError, match="global_pool must pool"):
                pruned.reset_classifier(0, "")
    else:
        with pytest.raises(nets.NetsError, match="fixed pooling|no pooling to set"):
            pruned.reset_classifier(7, "max")

    # prune_intermediate_layers keeps the stages up to the last index asked for.
    kept = copy.deepcopy(model)
    if not isinstance(model.head, (nets.ClassifierHead, nets.MLPHead)):  # U-Net's decoder
        with pytest.raises(nets.NetsError, match="cannot be pruned"):
            kept.prune_intermediate_layers(indices=[0, 1])
        return
    assert kept.prune_intermediate_layers(indices=[0, 1]) == [0, 1]
    assert len(kept.stages) == 2 and kept.num_classes == 0
    with torch.no_grad():
        again = kept.forward_intermediates(x, intermediates_only=True)
        torch.testing.assert_close(again, maps[:2])
        torch.testing.assert_close(kept(x), maps[1])


@pytest.mark.parametrize(
    "name", ["resnet50", "inception_v3", "efficientnet_lite0", "keras_xception", "vgg16_bn"]
)
def test_timm_data_config_gives_our_preprocessing(name):
    """resolve_data_config(model=m) then create_transform: the same size, crop, mean and std
    as weights.transforms(m); pixels within one grey level (PIL's resize against torch's)."""
    model = nets.create_model(name)
    p = model.pretrained_cfg.preprocessing
    cfg = timm.data.resolve_data_config(model=model)
    assert cfg["input_size"] == (3, p.input_size, p.input_size)
    assert cfg["interpolation"] == p.interpolation
    assert cfg["mean"] == tuple(p.mean) and cfg["std"] == tuple(p.std)
    image = Image.open(CHELSEA).convert("RGB")
    theirs = timm.data.create_transform(**cfg)(image)
    ours = weights.transforms(model)(image)
    assert theirs.shape == ours.shape
    step = 1 / 255 / min(p.std)  # one grey level after normalisation
    assert (theirs - ours).abs().max() <= step + 1e-6
    assert (theirs - ours).abs().mean() < 0.05 * step


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_gradient_checkpointing_keeps_fewer_activations_and_the_same_gradients(name):
    """The activations alive when the forward pass ends, as PyTorch's memory tracker counts
    them (the figure ``python -m benchmarks checkpointing`` reports): with checkpointing,
    only each stage's input and output. Gradients are unchanged."""
    from benchmarks.checkpointing import _memory

    torch.manual_seed(0)
    model = nets.create_model(name, num_classes=5).train()
    x = torch.randn(2, 3, 64, 64)

    def grads() -> list[torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks in both runs
        model(x).square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain, plain_grads = _memory(model, x, torch.device("cpu"))[0], grads()
    model.set_grad_checkpointing(True)
    kept, ckpt_grads = _memory(model, x, torch.device("cpu"))[0], grads()
    assert kept < 0.6 * plain
    for a, b in zip(plain_grads, ckpt_grads, strict=True):
        torch.testing.assert_close(a, b)
    model.set_grad_checkpointing(False)
    assert _memory(model, x, torch.device("cpu"))[0] == plain


def test_gradient_checkpointing_is_refused_where_stages_run_their_own_way():
    with pytest.raises(nets.NetsError, match="nasnetalarge runs its stages its own way"):
        nets.create_model("nasnetalarge").set_grad_checkpointing(True)


# -- create_model's timm options -------------------------------------------------------------
def test_create_model_takes_timm_options():
    assert nets.create_model("lenet5", pretrained=False).pretrained_cfg.tag is None
    assert nets.create_model("lenet5", weights="none").pretrained_cfg.tag is None
    with pytest.raises(nets.UnknownOptionError, match="weights or pretrained"):
        nets.create_model("lenet5", weights="imagenet", pretrained=True)
    assert nets.create_model("resnet18", global_pool="max").head.pooling == "max"
    no_pool = nets.create_model("resnet18", global_pool="", num_classes=0)
    assert no_pool(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    with pytest.raises(ValueError, match="needs num_classes=0"):
        nets.create_model("resnet18", global_pool="")
    extractor = nets.create_model("resnet18", features_only=True, out_indices=(1, 3))
    maps = extractor(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == extractor.feature_info.channels() == [128, 512]
    assert extractor.feature_info.reduction() == [8, 32]
    assert nets.create_model("resnet18", drop_path_rate=0.1, drop_rate=0.2).head.drop.p == 0.2


@pytest.mark.parametrize(
    ("name", "option", "message"),
    [
        (
            "resnet18",
            {"drop_rat": 0.1},
            "resnet18 does not take 'drop_rat' .did you mean drop_rate",
        ),
        (
            "lenet5",
            {"drop_path_rate": 0.1},
            "lenet5 does not take 'drop_path_rate' .did you mean drop_rate.*options: drop_rate",
        ),
        ("vgg16", {"colour": 1}, "vgg16 does not take 'colour'"),
    ],
)
def test_an_option_a_family_does_not_take_is_one_line(name, option, message):
    with pytest.raises(nets.UnknownOptionError, match=message) as caught:
        nets.create_model(name, **option)
    assert isinstance(caught.value, TypeError) and "\n" not in str(caught.value)


# -- nets.timm: our models in timm's registry ------------------------------------------------
def test_every_model_is_registered_in_timm_with_its_tags():
    import nets.timm as nt

    assert sorted(timm.list_models("nets_*")) == sorted(nt.timm_name(n) for n in nets.list_models())
    assert "resnet50" in timm.list_models("resnet50")  # timm's own model is untouched
    pretrained = set(timm.list_pretrained("nets_*"))
    for tag in weights.list_tags():
        arch, origin = tag.split(".", 1)
        assert f"nets_{arch}.{origin}" in pretrained


def test_timm_create_model_loads_our_weights():
    import nets.timm  # noqa: F401

    model = timm.create_model("nets_efficientnet_lite0", pretrained=True).eval()
    ours = nets.create_model("efficientnet_lite0", weights="imagenet").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ours(x), rtol=0, atol=0)
    assert model.pretrained_cfg.tag == "efficientnet_lite0.tf_in1k"
    small = timm.create_model("nets_resnet18", num_classes=10, in_chans=1, drop_rate=0.1)
    assert small.num_classes == 10 and small.in_chans == 1
    # A tag in the name is ours to load: offline, the one-line download error names its file.
    with pytest.raises(weights.DownloadError, match="resnet50-11ad3fa6.pth"):
        timm.create_model("nets_resnet50.tv2_in1k", pretrained=True)


def test_python_m_nets_timm_runs_a_script_with_our_models(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import sys, timm\n"
        "m = timm.create_model(sys.argv[1], num_classes=3)\n"
        "print(type(m).__name__, m.num_classes)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "nets.timm", str(script), "nets_lenet5"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "LeNet 3"
    usage = subprocess.run(
        [sys.executable, "-m", "nets.timm"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert usage.returncode == 1 and usage.stderr.strip().startswith("usage: python -m nets.timm")


# -- torch.hub, the version, the look-ups ----------------------------------------------------
def test_torch_hub_loads_every_model_from_a_checkout():
    sys.path.insert(0, str(ROOT))
    try:
        import hubconf
    finally:
        sys.path.remove(str(ROOT))
    entries = sorted(n for n in dir(hubconf) if callable(getattr(hubconf, n)) and n[0] != "_")
    assert entries == sorted(nets.list_models())
    model = torch.hub.load(str(ROOT), "resnet18", source="local", num_classes=3, weights="none")
    assert model.num_classes == 3
    lite = torch.hub.load(str(ROOT), "efficientnet_lite0", source="local", pretrained=True)
    assert lite.pretrained_cfg.tag == "efficientnet_lite0.tf_in1k"


def test_version_and_tag_lookups():
    assert nets.__version__ == importlib.metadata.version("classic-convnets")
    assert weights.list_tags("resnet50") == weights.tags_for("resnet50") != []
    assert weights.list_tags("resnet50.tv_in1k") == ["resnet50.tv_in1k"]
    assert weights.list_tags("lenet5") == []
    assert "resnet50.tv_in1k" in weights.list_tags("resnet5*")


def test_aux_outputs_are_one_flat_tuple_and_aux_heads_raise_the_minimum_input():
    """timm's pattern for several outputs, torch.cat(outputs), needs a flat tuple of
    tensors; out.logits and out.aux still name its parts. Inception v3's auxiliary head needs
    Mixed_6e's 17x17 map: in training mode with it, an input under 299 is one clear error."""
    import pickle

    model = nets.create_model("googlenet", aux_logits=True, num_classes=4).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, nets.AuxOutputs) and len(out) == 3
    assert torch.cat(out).shape == (6, 4)
    assert out.logits is out[0] and out.aux == (out[1], out[2])
    again = pickle.loads(pickle.dumps(out))
    assert isinstance(again, nets.AuxOutputs) and torch.equal(again.aux[1], out.aux[1])
    aux = nets.create_model("inception_v3", aux_logits=True).train()
    assert aux.min_input_size == 75 and aux.aux_min_input_size == 299
    with pytest.raises(nets.InputSizeError, match="auxiliary classifiers need inputs of at le"):
        aux(torch.randn(2, 3, 298, 298))
    with torch.no_grad():
        assert aux.eval()(torch.randn(1, 3, 75, 75)).shape == (1, 1000)
