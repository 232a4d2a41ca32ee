"""GoogLeNet: parity with torchvision (with and without the auxiliary heads, in eval and in
training mode), parameter counts, anatomy, the Inception module's costs from the paper."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from conftest import assert_same_logits, calibrate_bn, n_params, randomize_bn
from torch import nn

import nets
from nets.cost import count_macs
from weights import IncompatibleCheckpointError, get_tag


def _torchvision(aux_logits: bool, transform_input: bool = True) -> nn.Module:
    # As torchvision's googlenet(weights=...) builds it: re-normalising its input.
    torch.manual_seed(0)
    model = torchvision.models.googlenet(
        aux_logits=aux_logits, init_weights=True, transform_input=transform_input
    )
    # Statistics measured in training mode, aux heads included (they run there too).
    return calibrate_bn(randomize_bn(model), 112)


@pytest.fixture(scope="module")
def checkpoint(module_dir) -> tuple[str, nn.Module]:
    """torchvision's googlenet with aux heads, saved as googlenet-1378be20.pth is (the
    published file carries aux1 and aux2)."""
    ref = _torchvision(aux_logits=True)
    path = module_dir / "googlenet.pth"
    torch.save(ref.state_dict(), path)
    return str(path), ref


def _train_without_dropout(model: nn.Module) -> nn.Module:
    """Training mode (BatchNorm on batch statistics, aux heads on), dropout off so that two
    models can be compared."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


@pytest.mark.parametrize("aux_logits", [False, True])
def test_torchvision_checkpoint_gives_torchvision_logits(checkpoint, aux_logits):
    path, ref = checkpoint
    ref.eval()
    ours = nets.create_model("googlenet", weights=path, aux_logits=aux_logits).eval()
    assert len(ours.aux) == (2 if aux_logits else 0)
    assert_same_logits(ours, ref, torch.randn(2, 3, 112, 112))  # ImageNet-normalised input


def test_aux_logits_in_training_mode_match_torchvision(checkpoint):
    path, ref = checkpoint
    ours = _train_without_dropout(nets.create_model("googlenet", weights=path, aux_logits=True))
    ref = _train_without_dropout(copy.deepcopy(ref))  # training updates BatchNorm statistics
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        theirs = ref(x)
        out = ours(x)
    assert isinstance(out, nets.AuxOutputs)
    torch.testing.assert_close(out.logits, theirs.logits)
    # Ours are shallowest first (aux1 on inception4a, aux2 on inception4d); torchvision
    # returns (logits, aux_logits2, aux_logits1).
    torch.testing.assert_close(out.aux[0], theirs.aux_logits1)
    torch.testing.assert_close(out.aux[1], theirs.aux_logits2)
    assert not torch.allclose(out.aux[0], out.aux[1])


def test_checkpoint_without_aux_heads(save_reference):
    ref = _torchvision(aux_logits=False).eval()
    path = save_reference(ref, "googlenet_noaux.pth")
    ours = nets.create_model("googlenet", weights=path).eval()
    assert_same_logits(ours, ref, torch.randn(2, 3, 64, 64))
    with pytest.raises(IncompatibleCheckpointError, match=r"missing \(aux\.0\.") as err:
        nets.create_model("googlenet", weights=path, aux_logits=True)
    assert err.value.missing and all(k.startswith("aux.") for k in err.value.missing)
    assert not err.value.unexpected and not err.value.mismatched


def test_transform_input_off_matches_torchvision_off(save_reference):
    ref = _torchvision(aux_logits=False, transform_input=False).eval()
    path = save_reference(ref, "googlenet_plain.pth")
    ours = nets.create_model("googlenet", weights=path, transform_input=False).eval()
    assert isinstance(ours.stem.transform, nn.Identity)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))
        # The transform maps ImageNet normalisation to Google's (x - 0.5) / 0.5.
        on = nets.create_model("googlenet", weights=path).eval()
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        torch.testing.assert_close(on(x), ours((x * std + mean - 0.5) / 0.5))


def test_new_classes_replace_every_classifier(checkpoint):
    path, _ = checkpoint
    model = nets.create_model("googlenet", weights=path, aux_logits=True, num_classes=10)
    pretrained = nets.create_model("googlenet", weights=path, aux_logits=True)
    assert model.aux_classifiers == ("aux.0.fc", "aux.1.fc")
    ours, theirs = model.state_dict(), pretrained.state_dict()
    for key, value in ours.items():
        if key.startswith(("head.fc.", "aux.0.fc.", "aux.1.fc.")):
            assert value.shape[0] == 10, key
        else:
            assert torch.equal(value, theirs[key]), key
    model.reset_classifier(5)
    assert [a.fc.out_features for a in model.aux] == [5, 5]
    assert model.get_classifier().out_features == 5


def test_parameter_counts():
    with torch.device("meta"):
        ours = n_params(nets.create_model("googlenet"))
        with_aux = n_params(nets.create_model("googlenet", aux_logits=True))
        ref = n_params(torchvision.models.googlenet(aux_logits=False, init_weights=True))
        ref_aux = n_params(torchvision.models.googlenet(aux_logits=True, init_weights=True))
        paper_kernel = n_params(nets.create_model("googlenet", kernel_5x5=5))
    assert ours == ref == get_tag("googlenet.tv_in1k").num_params == 6_624_904
    assert with_aux == ref_aux == 13_004_888
    # The paper's 5x5 kernels: each "5x5" conv has 25/9 of the 3x3's weights.
    fives = sum(cfg[3] * cfg[4] for stage in nets.models.googlenet.STAGES for _, cfg in stage)
    assert paper_kernel - ours == fives * (25 - 9)


def test_stages_follow_the_anatomy():
    model = nets.create_model("googlenet", include_top=False, pooling=None).eval()
    assert [f.channels for f in model.feature_info] == [480, 832, 1024]
    assert [f.reduction for f in model.feature_info] == [8, 16, 32]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2))(x)
        out = model(x)
    assert [m.shape[1:] for m in maps] == [(480, 12, 12), (832, 6, 6), (1024, 3, 3)]
    torch.testing.assert_close(out, maps[-1])
    pooled = nets.create_model("googlenet", include_top=False, pooling="max").eval()
    with torch.no_grad():
        assert pooled(x).shape == (1, 1024)
    with pytest.raises(ValueError, match="include_top"):
        nets.create_model("googlenet", include_top=False, aux_logits=True)


def test_training_mode_returns_aux_outputs_only_with_aux_heads():
    x = torch.randn(2, 3, 64, 64)
    plain = nets.create_model("googlenet").train()
    assert isinstance(plain(x), torch.Tensor)
    model = nets.create_model("googlenet", aux_logits=True, num_classes=7).train()
    out = model(x)
    assert out.logits.shape == (2, 7) and [a.shape for a in out.aux] == [(2, 7), (2, 7)]
    loss = nn.functional.cross_entropy(out.logits, torch.tensor([1, 2]))
    loss = loss + 0.3 * sum(nn.functional.cross_entropy(a, torch.tensor([1, 2])) for a in out.aux)
    loss.backward()
    assert model.aux[0].fc.weight.grad is not None
    with torch.no_grad():
        assert isinstance(model.eval()(x), torch.Tensor)


def test_minimum_input_size():
    model = nets.create_model("googlenet").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 15, 15)).shape == (1, 1000)
        with pytest.raises(nets.InputSizeError, match="at least 15x15"):
            model(torch.randn(1, 3, 14, 14))


def test_inception_module_costs_from_the_course():
    """28x28x256 input, branches 1x1:128, 3x3:192, 5x5:96: the naive module costs 854M
    multiply-adds and outputs 672 channels; with 1x1:64 bottlenecks and pool projection,
    271.4M (the slides' "358M" does not add up) and 480 channels."""
    shape = (1, 256, 28, 28)
    with torch.device("meta"):
        naive = nets.InceptionModule(256, 128, 0, 192, 0, 96, 0, naive=True)
        reduced = nets.InceptionModule(256, 128, 64, 192, 64, 96, 64)
    assert naive.out_chs == 672 and reduced.out_chs == 480
    assert not hasattr(naive.branch_pool, "proj") and not hasattr(naive.branch3x3, "reduce")
    hw = 28 * 28
    assert count_macs(naive, shape) == hw * 256 * (128 + 9 * 192 + 25 * 96)
    assert round(count_macs(naive, shape) / 1e6) == 854
    bottleneck = hw * (256 * (128 + 64 + 64 + 64) + 64 * (9 * 192 + 25 * 96))
    assert count_macs(reduced, shape) == bottleneck
    assert round(bottleneck / 1e5) == 2714
    with torch.no_grad():
        x = torch.randn(1, 256, 28, 28)
        assert nets.InceptionModule(256, 128, 64, 192, 64, 96, 64).eval()(x).shape[1] == 480
        assert nets.InceptionModule(256, 128, 0, 192, 0, 96, 0, naive=True)(x).shape[1] == 672
