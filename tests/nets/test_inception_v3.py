"""Inception v3: parity with torchvision (with and without AuxLogits, in eval and in
training mode), parameter counts, anatomy, minimum input size, the blocks' widths."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn
from torch import nn

import nets
from weights import get_tag


@pytest.fixture(scope="module")
def checkpoint(module_dir) -> tuple[str, nn.Module]:
    """torchvision's inception_v3 as its weights builder makes it (re-normalising its input,
    with AuxLogits, which inception_v3_google-0cc3c7bd.pth carries), saved as that file is."""
    torch.manual_seed(0)
    ref = torchvision.models.inception_v3(aux_logits=True, init_weights=True, transform_input=True)
    # Statistics measured in training mode at 299 (the aux head needs the 17x17 grid).
    calibrate_bn(randomize_bn(ref), 299, n=8)
    path = module_dir / "inception_v3.pth"
    torch.save(ref.state_dict(), path)
    return str(path), ref


@pytest.mark.parametrize("aux_logits", [False, True])
def test_torchvision_checkpoint_gives_torchvision_logits(checkpoint, aux_logits):
    path, ref = checkpoint
    ref.eval()
    ours = nets.create_model("inception_v3", weights=path, aux_logits=aux_logits).eval()
    assert len(ours.aux) == (1 if aux_logits else 0)
    assert_same_logits(ours, ref, torch.randn(2, 3, 107, 107))  # ImageNet-normalised input


def test_aux_logits_in_training_mode_match_torchvision(checkpoint):
    path, ref = checkpoint
    ours = nets.create_model("inception_v3", weights=path, aux_logits=True)
    ref = copy.deepcopy(ref)  # training updates BatchNorm statistics
    for model in (ours, ref):
        model.train()
        for m in model.modules():  # dropout off, so that the two can be compared
            if isinstance(m, nn.Dropout):
                m.eval()
    x = torch.randn(2, 3, 299, 299)  # the aux head needs the 17x17 grid
    with torch.no_grad():
        theirs = ref(x)
        out = ours(x)
    assert isinstance(out, nets.AuxOutputs) and len(out.aux) == 1
    torch.testing.assert_close(out.logits, theirs.logits)
    torch.testing.assert_close(out.aux[0], theirs.aux_logits)


def test_new_classes_replace_the_aux_classifier_too(checkpoint):
    path, _ = checkpoint
    model = nets.create_model("inception_v3", weights=path, aux_logits=True, num_classes=3)
    assert model.get_classifier().out_features == 3
    assert model.aux_classifiers == ("aux.0.fc",)
    assert model.aux[0].fc.out_features == 3
    assert model.aux[0].fc.weight.std() < 0.01  # torchvision's init for it: std 0.001


def test_parameter_counts():
    with torch.device("meta"):
        ours = n_params(nets.create_model("inception_v3"))
        with_aux = n_params(nets.create_model("inception_v3", aux_logits=True))
        ref = n_params(torchvision.models.inception_v3(aux_logits=False, init_weights=True))
        ref_aux = n_params(torchvision.models.inception_v3(aux_logits=True, init_weights=True))
    assert ours == ref == 23_834_568
    # torchvision's published count (and our tag's) includes AuxLogits.
    assert with_aux == ref_aux == get_tag("inception_v3.tv_in1k").num_params == 27_161_264


def test_tag_preprocessing():
    p = get_tag("inception_v3.tv_in1k").preprocessing
    assert (p.resize_size, p.input_size) == (342, 299)
    assert p.mean == (0.485, 0.456, 0.406)  # ImageNet normalisation; the model re-normalises
    assert nets.get_spec("inception_v3").input_size == 299


def test_stages_follow_the_anatomy():
    model = nets.create_model("inception_v3", include_top=False, pooling=None).eval()
    assert [f.channels for f in model.feature_info] == [288, 768, 2048]
    assert [f.reduction for f in model.feature_info] == [8, 16, 32]
    names = [[n for n, _ in s.named_children()] for s in model.stages]
    assert names == [
        ["mixed5b", "mixed5c", "mixed5d"],
        ["mixed6a", "mixed6b", "mixed6c", "mixed6d", "mixed6e"],
        ["mixed7a", "mixed7b", "mixed7c"],
    ]
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2))(x)
    # Unpadded convs and pools: 299 gives the paper's 35, 17 and 8 grids.
    assert [m.shape[1:] for m in maps] == [(288, 35, 35), (768, 17, 17), (2048, 8, 8)]
    pooled = nets.create_model("inception_v3", include_top=False, pooling="avg").eval()
    with torch.no_grad():
        assert pooled(torch.randn(1, 3, 75, 75)).shape == (1, 2048)


def test_minimum_input_size_is_keras():
    model = nets.create_model("inception_v3").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 75, 75)).shape == (1, 1000)
        with pytest.raises(nets.InputSizeError, match="at least 75x75"):
            model(torch.randn(1, 3, 74, 74))


def test_blocks_widths():
    x = torch.randn(1, 288, 9, 9)
    with torch.no_grad():
        assert nets.InceptionV3A(192, 32).eval()(torch.randn(1, 192, 9, 9)).shape[1] == 256
        reduced = nets.InceptionV3B(288).eval()(x)
        assert reduced.shape == (1, 768, 4, 4)  # 384 + 96 + the 288 pooled channels
        c = nets.InceptionV3C(768, 128).eval()(reduced)
        assert c.shape == (1, 768, 4, 4)
        d = nets.InceptionV3D(768).eval()(torch.randn(1, 768, 9, 9))
        assert d.shape == (1, 1280, 4, 4)
        assert nets.InceptionV3E(1280).eval()(d).shape == (1, 2048, 4, 4)
