"""LeNet-5, AlexNet, ZFNet and VGG: parity with torchvision, parameter counts against the
reference and against layer-table arithmetic, minimum input sizes, heads."""

from __future__ import annotations

import gc

import pytest
import torch
import torchvision
from conftest import n_params, randomize_bn

import nets
from weights import get_tag

VGGS = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


def conv(cin: int, cout: int, k: int) -> int:
    """Parameters of a k x k conv with bias."""
    return cout * (cin * k * k + 1)


def fc(fin: int, fout: int) -> int:
    """Parameters of a Linear layer with bias."""
    return fout * (fin + 1)


def _tv_pre_logits(ref: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's AlexNet/VGG up to the last hidden layer (the classifier without fc)."""
    return ref.classifier[:-1](torch.flatten(ref.avgpool(ref.features(x)), 1))


# Logits of every torchvision tag: tests/weights/test_parity.py. Here the hidden layer before fc
# too, on AlexNet and one VGG (the head is the same code in all of them).
@pytest.mark.parametrize("name", ["alexnet", pytest.param("vgg11_bn", marks=pytest.mark.slow)])
def test_torchvision_checkpoint_gives_torchvision_pre_logits(name, save_reference):
    torch.manual_seed(0)
    ref = randomize_bn(torchvision.models.get_model(name)).eval()
    path = save_reference(ref, f"{name}.pth")
    x = torch.randn(2, 3, 64, 64)  # the adaptive pool before fc1 makes a small input valid
    with torch.no_grad():
        logits, hidden = ref(x), _tv_pre_logits(ref, x)
    del ref  # keep one 0.5 GB model in memory at a time
    gc.collect()
    ours = nets.create_model(name, weights=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), logits)
        features = ours.forward_features(x)
        torch.testing.assert_close(ours.forward_head(features, pre_logits=True), hidden)
    assert logits.abs().max() > 1e-2  # a real comparison, not of near-zero numbers
    assert ours.pretrained_cfg["origin"] == path


@pytest.mark.parametrize("name", ["alexnet", *VGGS])
def test_parameter_count_matches_torchvision_and_published(name):
    with torch.device("meta"):  # shapes only: no allocation, no initialisation cost
        ours = n_params(nets.create_model(name))
        ref = n_params(torchvision.models.get_model(name))
    assert ours == ref == get_tag(f"{name}.tv_in1k").num_params


def test_published_counts_from_the_reference_page():
    with torch.device("meta"):
        counts = {n: n_params(nets.create_model(n)) for n in ("alexnet", "vgg11", "vgg16")}
        counts["vgg16_bn"] = n_params(nets.create_model("vgg16_bn"))
        counts["vgg19"] = n_params(nets.create_model("vgg19"))
    assert counts == {
        "alexnet": 61_100_840,
        "vgg11": 132_863_336,
        "vgg16": 138_357_544,  # also Keras' VGG16
        "vgg16_bn": 138_365_992,
        "vgg19": 143_667_240,
    }


def test_vgg_count_is_its_layer_table():
    depths = {"vgg11": (1, 1, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
    for name, per_stage in depths.items():
        total, cin = 0, 3
        for width, n in zip((64, 128, 256, 512, 512), per_stage, strict=True):
            for _ in range(n):
                total, cin = total + conv(cin, width, 3), width
        total += fc(512 * 7 * 7, 4096) + fc(4096, 4096) + fc(4096, 1000)
        with torch.device("meta"):
            assert n_params(nets.create_model(name)) == total
            # BatchNorm adds gamma and beta per conv channel (convs keep their bias).
            bn = 2 * sum(w * n for w, n in zip((64, 128, 256, 512, 512), per_stage, strict=True))
            assert n_params(nets.create_model(f"{name}_bn")) == total + bn


def test_zfnet_parameter_count_is_its_layer_table():
    expected = (
        conv(3, 96, 7)
        + conv(96, 256, 5)
        + conv(256, 512, 3)
        + conv(512, 1024, 3)
        + conv(1024, 512, 3)
        + fc(512 * 6 * 6, 4096)
        + fc(4096, 4096)
        + fc(4096, 1000)
    )
    assert expected == 107_627_624
    with torch.device("meta"):
        assert n_params(nets.create_model("zfnet")) == expected


def test_zfnet_reproduces_the_paper_map_sizes():
    # Figure 3 of Zeiler and Fergus: 224 -> 110 (conv1) -> 55 -> 26 (conv2) -> 13 -> 6.
    model = nets.create_model("zfnet", include_top=False, pooling=None).eval()
    x = torch.randn(1, 3, 224, 224)
    sizes = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out: sizes.append(out.shape[-1]))
        for stage in model.stages
        for m in stage
    ]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    assert sizes == [110, 55, 26, 13, 13, 13, 13, 6]
    assert out.shape == (1, 512, 6, 6)
    assert [f.channels for f in model.feature_info] == [96, 256, 512]
    assert [f.reduction for f in model.feature_info] == [4, 16, 32]


def test_lenet5_parameter_count_is_its_layer_table():
    # Table I of LeCun et al. (1998), written as the paper describes it: C3 maps 0-5 read
    # three contiguous S2 maps, 6-11 four contiguous, 12-14 four discontinuous, 15 all six.
    c3_inputs = (
        [{j % 6, (j + 1) % 6, (j + 2) % 6} for j in range(6)]
        + [{(j + k) % 6 for k in range(4)} for j in range(6)]
        + [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}, set(range(6))]
    )
    connections = sum(len(s) for s in c3_inputs)
    assert connections == 60
    layers = {
        "C1": conv(1, 6, 5),  # 156
        "S2": 6 * 2,  # one coefficient and one bias per map
        "C3": connections * 5 * 5 + 16,  # 1516
        "S4": 16 * 2,
        "C5": conv(16, 120, 5),  # 48120
        "F6": fc(120, 84),  # 10164
        "output": fc(84, 10),  # 850 (a Linear in place of the RBF units)
    }
    assert layers["C3"] == 1516
    assert sum(layers.values()) == 60_850
    model = nets.create_model("lenet5")
    assert n_params(model) == 60_850
    c3 = model.stages[1].c3.conv
    assert n_params(c3) == layers["C3"]
    # The dense kernel is non-zero exactly on the connections of Table I.
    dense = c3.full_weight().detach()
    reads = [set(torch.nonzero(dense[j].abs().sum((1, 2))).flatten().tolist()) for j in range(16)]
    assert reads == c3_inputs

    # The common simplified variant: full C3, parameter-free average pooling.
    simplified = conv(1, 6, 5) + conv(6, 16, 5) + conv(16, 120, 5) + fc(120, 84) + fc(84, 10)
    assert n_params(nets.create_model("lenet5", simplified=True)) == simplified == 61_706


def test_lenet5_defaults_to_ten_classes_on_grey_32x32():
    model = nets.create_model("lenet5").eval()
    assert model.in_chans == 1 and model.head.fc.out_features == 10
    assert nets.get_spec("lenet5").input_size == 32
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (4, 10)
        maps = nets.feature_extractor(model, stages=(0, 1, 2))(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(6, 14, 14), (16, 5, 5), (120, 1, 1)]
    assert [f.reduction for f in model.feature_info] == [2, 4, 4]
    # Explicit arguments still win over the registered defaults.
    other = nets.create_model("lenet5", num_classes=1000, in_chans=3)
    assert other.in_chans == 3 and other.head.fc.out_features == 1000
    # LeCun's squashing function maps +-1 to +-1 (to 4 digits).
    act = model.stages[0].c1.act
    torch.testing.assert_close(
        act(torch.tensor([1.0, -1.0])), torch.tensor([1.0, -1.0]), atol=1e-4, rtol=0
    )
    # Only the connected C3 kernels learn.
    model.train()
    model(x).sum().backward()
    assert model.stages[1].c3.conv.weight.grad.shape == (60, 5, 5)


def test_lenet5_checkpoint_round_trip(tmp_path):
    model = nets.create_model("lenet5").eval()
    path = tmp_path / "lenet5.pth"
    torch.save(model.state_dict(), path)
    assert not any("idx" in k for k in model.state_dict())  # the table is structure
    again = nets.create_model("lenet5", weights=path).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


MIN_SIZES = [("lenet5", 32), ("alexnet", 63), ("zfnet", 47), ("vgg11", 32), ("vgg16_bn", 32)]


@pytest.mark.parametrize(("name", "size"), MIN_SIZES)
def test_min_input_size_is_the_smallest_that_runs(name, size):
    assert nets.get_spec(name).min_input_size == size
    # VGG's fully connected head does not change the minimum: leave it out to stay fast.
    top = name.startswith(("lenet", "alexnet", "zfnet"))
    model = nets.create_model(name, include_top=top).eval()
    chans = model.in_chans
    with torch.no_grad():
        out = model(torch.randn(1, chans, size, size))
        assert out.shape[0] == 1 and out.numel() > 0
        with pytest.raises(nets.InputSizeError, match=f"at least {size}x{size} pixels"):
            model(torch.randn(1, chans, size - 1, size - 1))
        with pytest.raises(nets.InputSizeError, match=f"at least {size}x{size} pixels"):
            model(torch.randn(1, chans, size, size - 1))
        # Tight: without the check, one pixel less leaves a feature map empty.
        model.min_input_size = 1
        with pytest.raises(RuntimeError):
            model(torch.randn(1, chans, size - 1, size - 1))


def test_vgg16_without_top_pools_like_keras():
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for pooling, shape in (("avg", (2, 512)), ("max", (2, 512)), (None, (2, 512, 2, 2))):
            model = nets.create_model("vgg16", include_top=False, pooling=pooling).eval()
            assert model(x).shape == shape
    # Keras: VGG16(include_top=False) has the 13 convs only.
    assert n_params(model) == 14_714_688
    assert not any(k.startswith("head.") for k in model.state_dict())


def test_vgg16_anatomy_and_pre_logits():
    model = nets.create_model("vgg16").eval()
    assert model.first_conv == "stages.0.0.conv"
    assert [f.channels for f in model.feature_info] == [64, 128, 256, 512, 512]
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
    assert isinstance(model.stages[0][-1], torch.nn.MaxPool2d)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2, 3, 4))(x)
        assert [64 // m.shape[-1] for m in maps] == [2, 4, 8, 16, 32]
        features = model.forward_features(x)
        assert model.forward_head(features, pre_logits=True).shape == (1, 4096)
        assert model.forward_head(features).shape == (1, 1000)
    model.reset_classifier(10)
    assert model.get_classifier().out_features == 10
    assert model.get_classifier().weight.std().item() == pytest.approx(0.01, rel=0.1)


@pytest.mark.slow
def test_new_num_classes_keeps_the_hidden_layers(save_reference):
    torch.manual_seed(0)
    ref = torchvision.models.get_model("vgg11").eval()
    path = save_reference(ref, "vgg11.pth")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        hidden, features = _tv_pre_logits(ref, x), ref.features(x)
    fc1, fc2 = ref.classifier[0].weight.clone(), ref.classifier[3].weight.clone()
    del ref
    gc.collect()

    model = nets.create_model("vgg11", weights=path, num_classes=10).eval()
    assert model.head.fc.out_features == 10
    torch.testing.assert_close(model.head.fc1.weight, fc1, rtol=0, atol=0)
    torch.testing.assert_close(model.head.fc2.weight, fc2, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x), True), hidden)
        assert model(x).shape == (1, 10)
    del model
    gc.collect()

    # include_top=False drops the whole fully connected stack and loads the convs strictly.
    model = nets.create_model("vgg11", weights=path, include_top=False, pooling=None).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), features)


def test_alexnet_grey_input_sums_the_first_conv(save_reference):
    torch.manual_seed(0)
    ref = torchvision.models.get_model("alexnet")
    rgb = ref.features[0].weight.detach().clone()
    path = save_reference(ref, "alexnet.pth")
    del ref
    model = nets.create_model("alexnet", weights=path, in_chans=1)
    assert model.first_conv == "stages.0.0.conv"
    torch.testing.assert_close(model.stages[0][0].conv.weight.detach(), rgb.sum(1, keepdim=True))
    assert [f.reduction for f in model.feature_info] == [8, 16, 32]
    with torch.no_grad():
        maps = nets.feature_extractor(model.eval(), stages=(0, 1, 2))(torch.randn(1, 1, 224, 224))
    # torchvision's AlexNet maps at 224: 27x27x64, 13x13x192, 6x6x256.
    assert [tuple(m.shape[1:]) for m in maps] == [(64, 27, 27), (192, 13, 13), (256, 6, 6)]
