"""U-Net: the paper's configuration, the decoder's shapes on every registered encoder, the
anatomy read for dense prediction, encoder weights, and bad input."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import n_params

import nets
from nets.models.unet import VALID_MIN_INPUT


def _conv3(cin: int, cout: int) -> int:
    return 9 * cin * cout + cout  # 3x3 weights and a bias


def test_paper_configuration_parameter_count_is_its_layer_table():
    widths = (64, 128, 256, 512, 1024)
    inputs = (1, *widths[:-1])
    encoder = sum(_conv3(cin, w) + _conv3(w, w) for cin, w in zip(inputs, widths, strict=True))
    decoder = 0
    for deep, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
        decoder += 4 * deep * w + w  # the 2x2 up-convolution, halving the channels
        decoder += _conv3(2 * w, w) + _conv3(w, w)  # skip and upsampled map concatenated
    classifier = 64 * 2 + 2
    model = nets.create_model("unet", in_chans=1, num_classes=2, padding="valid")
    assert n_params(model) == encoder + decoder + classifier == 31_030_658


def test_valid_padding_reproduces_the_papers_572_to_388():
    with torch.device("meta"):
        model = nets.create_model("unet", in_chans=1, padding="valid")
        assert model(torch.empty(1, 1, 572, 572)).shape == (1, 2, 388, 388)
        assert model(torch.empty(1, 1, VALID_MIN_INPUT, VALID_MIN_INPUT)).shape == (1, 2, 4, 4)
        with pytest.raises(nets.InputSizeError, match="at least 188x188"):
            model(torch.empty(1, 1, VALID_MIN_INPUT - 1, VALID_MIN_INPUT))


@pytest.mark.parametrize("options", [{}, {"upsample": "bilinear"}, {"norm": True}])
def test_same_padding_keeps_the_input_size_even_for_odd_sizes(options):
    torch.manual_seed(0)
    model = nets.create_model("unet", num_classes=3, widths=(8, 16, 32), **options).eval()
    for h, w in ((32, 32), (37, 21)):
        out = model(torch.randn(2, 3, h, w))
        assert out.shape == (2, 3, h, w) and torch.isfinite(out).all()
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert has_bn == bool(options.get("norm"))
    ups = [type(b.up) for b in model.head.decoder.blocks]
    bilinear = options.get("upsample") == "bilinear"
    assert ups == [torch.nn.Upsample if bilinear else torch.nn.ConvTranspose2d] * 2


ENCODERS = [n for n in nets.list_models() if nets.get_spec(n).family != "unet"]


@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_registered_network_is_a_unet_encoder(encoder):
    name = f"unet_{encoder}"
    spec = nets.get_spec(name)
    assert spec.family == "unet" and spec.min_input_size == nets.get_spec(encoder).min_input_size
    with torch.device("meta"):
        model = nets.create_model(name, num_classes=4).eval()
        # The smallest input, made odd and non-square: the decoder fits every skip.
        h, w = spec.min_input_size, spec.min_input_size + 7
        x = torch.empty(2, model.in_chans, h, w)
        maps = model.forward_features(x)
        assert [m.shape[1] for m in maps] == [f.channels for f in model.feature_info]
        assert model.forward_head(maps, pre_logits=True).shape[1] == model.num_features
        assert model(x).shape == (2, 4, h, w)
    # One skip at every stride the encoder declares below its deepest map.
    reductions = {f.reduction for f in model.feature_info}
    assert len(model.head.decoder.skip_indices) == len(reductions) - 1


def test_unet_anatomy_is_the_encoders_stages_and_a_dense_head():
    model = nets.create_model("unet_resnet18", num_classes=5)
    encoder = nets.create_model("resnet18")
    assert [f.channels for f in model.feature_info] == [f.channels for f in encoder.feature_info]
    assert model.first_conv == encoder.first_conv
    # The encoder's keys are the classifier's own: a ResNet checkpoint maps onto stem/stages.
    ours = {k for k in model.state_dict() if not k.startswith("head.")}
    assert ours == {k for k in encoder.state_dict() if not k.startswith("head.")}
    assert isinstance(model.get_classifier(), torch.nn.Conv2d)
    model.reset_classifier(7)
    assert model.get_classifier().out_channels == 7
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7, 64, 64)
    # the trainer's stage freezing needs nothing new
    extractor = nets.feature_extractor(model, (0, 3))
    assert [m.shape[1] for m in extractor(torch.randn(1, 3, 64, 64))] == [64, 512]


def test_encoder_weights_load_strictly_into_the_encoder(save_reference):
    torch.manual_seed(0)
    path = save_reference(torchvision.models.resnet18(), "resnet18.pth")
    model = nets.create_model("unet_resnet18", encoder_weights=path, num_classes=3).eval()
    classifier = nets.create_model("resnet18", weights=path).eval()
    theirs = classifier.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("head."):
            torch.testing.assert_close(value, theirs[key], rtol=0, atol=0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x)[-1], classifier.forward_features(x))
    assert model.pretrained_cfg.preprocessing == classifier.pretrained_cfg.preprocessing
    assert "encoder" in model.pretrained_cfg.preprocessing_from
    assert model.pretrained_cfg.arch == "unet_resnet18"


def test_derived_names_are_not_listed_but_resolve():
    assert "unet" in nets.list_models()
    assert not any(n.startswith("unet_") for n in nets.list_models())
    assert nets.get_spec("unet_mobilenet_v2").input_size == 224


def test_bad_input_is_one_line():
    with pytest.raises(nets.UnknownModelError, match="unknown model 'resnet05'; did you mean"):
        nets.create_model("unet_resnet05")
    with pytest.raises(nets.UnknownModelError, match="cannot be a U-Net's encoder"):
        nets.create_model("unet_unet")
    with pytest.raises(ValueError, match="padding must be 'same' or 'valid', got 'full'"):
        nets.create_model("unet", padding="full")
    with pytest.raises(ValueError, match="upsample must be 'transpose' or 'bilinear'"):
        nets.create_model("unet_resnet18", upsample="nearest")
    with pytest.raises(ValueError, match="decoder_channels needs 5 widths"):
        nets.create_model("unet_resnet18", decoder_channels=(64, 32))
