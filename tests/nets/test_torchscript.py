"""TorchScript over the registry: ``torch.jit.script`` and ``torch.jit.trace`` of every model
give its eager logits, and the graph of torchvision's ``create_feature_extractor`` scripts
too and gives the stages' maps.

The normal run checks one cheap model per family (the families come from the registry, so a
new family is checked without a change here); ``pytest -m conformance`` checks every model.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import randomize_bn
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import nets

# The first model of a family in natural order, unless it is much larger than another of
# the same family with the same code paths; the Inception-v4 families run with fewer blocks
# of each kind. The normal run takes about a minute on 2 cores.
CHEAPER = {
    "mobilenet_v1": "mobilenet_v1_025",
    "mobilenet_v3": "mobilenet_v3_small",
    "nasnet": "keras_nasnet_mobile",
    "resnet": "resnet18",
}
FEWER_BLOCKS = {
    "inception_v4": dict(depths=(1, 1, 1)),
    "inception_resnet_v2": dict(depths=(1, 1, 2)),  # a scaled block 8 and the final one
}


def _one_per_family() -> list[str]:
    firsts: dict[str, str] = {}
    for name in nets.list_models():
        firsts.setdefault(nets.get_spec(name).family, name)
    return sorted({**firsts, **CHEAPER}.values())


ONE_PER_FAMILY = _one_per_family()
# One model per family in the normal run; every model, whole, under -m conformance.
PARAMS = [
    *(pytest.param(n, FEWER_BLOCKS.get(n, {}), id=n) for n in ONE_PER_FAMILY),
    *(
        pytest.param(n, {}, id=f"{n}-full", marks=pytest.mark.conformance)
        for n in nets.list_models()
    ),
]


@pytest.fixture(autouse=True)
def _quiet_deprecation():
    # torch.jit.script and torch.jit.trace warn that TorchScript is deprecated; it still
    # ships, and this is what the tests check.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit")
        yield


def _build(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(nets.create_model(name, **kwargs)).eval()


def _input(model: nn.Module, seed: int = 1) -> torch.Tensor:
    """The smallest input the model allows: every code path, the least work."""
    size = nets.get_spec(model.arch).min_input_size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, model.in_chans, size, size, generator=g)


def _assert_same(got: torch.Tensor, want: torch.Tensor) -> None:
    # The same operations, at most reordered: relative to the largest output, as random
    # deep networks reach logits of 1e8 (Inception v3).
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale + 1e-6)


def check_script(model: nn.Module) -> None:
    scripted = torch.jit.script(model)
    x = _input(model)
    with torch.no_grad():
        _assert_same(scripted(x), model(x))


def check_trace(model: nn.Module) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(model, _input(model), check_trace=False)
        x = _input(model, seed=2)  # another input than the one traced
        _assert_same(traced(x), model(x))


def check_fx_script(model: nn.Module) -> None:
    """torchvision's create_feature_extractor on every stage, then torch.jit.script of its
    graph: the same maps as ``nets.feature_extractor``."""
    stages = list(range(len(model.stages)))
    extractor = create_feature_extractor(model, {f"stages.{i}": str(i) for i in stages})
    scripted = torch.jit.script(extractor)
    x = _input(model)
    with torch.no_grad():
        got, want = scripted(x), nets.feature_extractor(model, stages)(x)
    assert list(got) == [str(i) for i in stages], f"stages {list(got)}"
    for i, w in enumerate(want):
        _assert_same(got[str(i)], w)


CHECKS = {"script": check_script, "trace": check_trace, "fx + script": check_fx_script}


@pytest.mark.parametrize(("name", "options"), PARAMS)
def test_script_trace_and_fx_script_give_the_eager_outputs(name, options):
    """All three on one model (built once), every failure reported together."""
    model = _build(name, **options)
    failed = []
    for what, check in CHECKS.items():
        try:
            check(model)
        except Exception as exc:  # noqa: BLE001 - a scripting error is a failure to report
            failed.append(f"{what}: {type(exc).__name__}: {str(exc).strip()[:2000]}")
    assert not failed, "\n".join(failed)


def test_scripted_model_checks_its_input():
    """The input check is compiled too: the same message, from TorchScript's error."""
    scripted = torch.jit.script(_build("resnet18"))
    with pytest.raises(torch.jit.Error, match="resnet18 needs inputs of at least 32x32 pixels"):
        scripted(torch.randn(1, 3, 16, 16))
    with pytest.raises(torch.jit.Error, match=r"expects input of shape \(N, 3, H, W\)"):
        scripted(torch.randn(1, 1, 64, 64))


def test_aux_heads_script_in_eval_mode():
    """With auxiliary classifiers (GoogLeNet's; Inception v3 shares the code), the scripted
    model in eval mode gives the logits; in training mode it says that the auxiliary outputs
    need eager mode."""
    model = _build("googlenet", aux_logits=True)
    scripted = torch.jit.script(model)
    x = _input(model)
    with torch.no_grad():
        _assert_same(scripted(x), model(x))
    scripted.train()
    with pytest.raises(torch.jit.Error, match="auxiliary"):
        scripted(x)


@pytest.mark.parametrize("name", ["unet_resnet18", "unet_efficientnet_lite0"])
def test_unet_with_an_encoder_scripts(name):
    model = _build(name)
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 64, 80)  # not square, and the logits are resized to it
    with torch.no_grad():
        _assert_same(scripted(x), model(x))


def test_memory_efficient_densenet_scripts():
    """Gradient checkpointing is eager-only: the scripted layer keeps its bottleneck, and
    gives the same logits."""
    model = _build("densenet121", memory_efficient=True)
    scripted = torch.jit.script(model)
    x = _input(model)
    with torch.no_grad():
        _assert_same(scripted(x), model(x))
