"""Parity over the registered weights: every tag of ``weights.list_tags()`` is covered.

For each weights source there is one reference builder (``REFERENCES``): the source's own
model with random weights and randomised BatchNorm statistics, saved the way the source
distributes it. The file loads into ours through the tag's own path (its layout is detected
from the keys, as for the published file), and the two give the same logits on the same
input; our parameter count equals the reference's and every tag's ``num_params``.

Tags that share a source and an architecture share a file layout (``resnet50.tv_in1k`` and
``resnet50.tv2_in1k``), so they share a case. Keras' files are checked in
``tests/weights/test_keras*.py``, ``tests/nets/test_resnet_v2.py`` and
``tests/nets/test_nasnet.py`` (each Keras application builds its reference with options of its
own); ``test_every_tag_has_a_reference`` holds every source, Keras' included, to having its
tags covered.

The family test files keep what is particular to a family: auxiliary heads in training
mode, other widths, odd input sizes, published counts, the real Lite0 file.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import assert_input_matters, calibrate_bn, n_params, randomize_bn

import nets
import weights
from benchmarks.models import twin_kwargs


@dataclass(frozen=True)
class Reference:
    build: Callable[[str], torch.nn.Module]  # arch -> the source's model, random weights
    input_size: Callable[[str], int]  # arch -> the side of the images compared on


def _torchvision(arch: str) -> torch.nn.Module:
    # GoogLeNet and Inception v3 are built with the aux heads and input transform ours has.
    return torchvision.models.get_model(arch, **twin_kwargs(nets.create_model(arch)))


# Our arch -> timm's model name, where they differ.
TIMM_NAMES = {"mobilenet_v1_100": "mobilenetv1_100"}


def _timm(arch: str) -> torch.nn.Module:
    import timm

    return timm.create_model(TIMM_NAMES.get(arch, arch), pretrained=False)


def _tf_lite(arch: str) -> torch.nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(arch.replace("_", "-"))


def _smallest(arch: str) -> int:
    """64 pixels, or the network's smallest input if larger (every layer sees a map wider
    than 1x1 at 64 in most of them)."""
    return max(64, nets.get_spec(arch).min_input_size)


REFERENCES: dict[str, Reference] = {
    "torchvision": Reference(_torchvision, _smallest),
    "timm": Reference(_timm, _smallest),
    # The TF-port pads statically for its own resolution, so it only runs at that size.
    "tf_efficientnet_lite": Reference(_tf_lite, lambda arch: nets.get_spec(arch).input_size),
}
# torchvision's published count for Inception v3 includes its auxiliary classifier (its
# file carries it; ours is built without it unless aux_logits=True). GoogLeNet's leaves its
# two out, as ours does by default.
COUNTED_WITH_AUX = {"inception_v3"}
# Sources whose parity tests live in their own files (see the module's docstring).
ELSEWHERE = {"keras"}


def _cases() -> dict[tuple[str, str], list[str]]:
    cases: dict[tuple[str, str], list[str]] = {}
    for name in weights.list_tags():
        tag = weights.get_tag(name)
        if tag.source not in ELSEWHERE:
            cases.setdefault((tag.source, tag.arch), []).append(name)
    return cases


CASES = _cases()
# The checkpoints of 0.5 GB (VGG) and the models of over 60 M parameters are slow; slow
# tests still run in make test.
BIG = 60_000_000


def _params() -> list:
    params = []
    for (source, arch), tags in CASES.items():
        big = max(weights.get_tag(t).num_params for t in tags) > BIG
        params.append(
            pytest.param(source, arch, tags, id="+".join(tags),
                         marks=[pytest.mark.slow] if big else [])
        )  # fmt: skip
    return params


def test_every_tag_has_a_reference():
    sources = {weights.get_tag(t).source for t in weights.list_tags()}
    assert sources - ELSEWHERE <= set(REFERENCES), sources - ELSEWHERE - set(REFERENCES)
    covered = {t for tags in CASES.values() for t in tags}
    assert covered == {t for t in weights.list_tags() if weights.get_tag(t).source not in ELSEWHERE}


def test_keras_tags_are_covered_by_the_keras_parity_tests(request):
    """Every Keras tag's arch is checked against Keras by a collected parity test (marked
    ``@pytest.mark.parity(arch)``, counted at collection, before -k or -m deselects)."""
    from conftest import COLLECTED_FILES, PARITY

    every_file = {p.name for p in Path(__file__).resolve().parents[1].rglob("test_*.py")}
    if not every_file <= request.config.stash[COLLECTED_FILES]:
        pytest.skip("counts the parity tests of a whole run (make test); this run collected a part")
    keras_archs = {
        weights.get_tag(t).arch for t in weights.list_tags() if weights.get_tag(t).source == "keras"
    }
    missing = keras_archs - request.config.stash[PARITY]
    assert not missing, f"Keras archs without a parity test: {sorted(missing)}"


@pytest.mark.parametrize(("source", "arch", "tags"), _params())
def test_tag_file_gives_the_source_logits(source, arch, tags, tmp_path):
    ref_source = REFERENCES[source]
    torch.manual_seed(0)
    size = ref_source.input_size(arch)
    ref = calibrate_bn(randomize_bn(ref_source.build(arch)), size)
    path = tmp_path / f"{arch}-{source}.pth"
    torch.save(ref.state_dict(), path)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = ref(x)
    ref_params = n_params(ref)
    del ref  # one large model in memory at a time
    gc.collect()

    ours = nets.create_model(arch, weights=str(path)).eval()
    assert ours.pretrained_cfg["source"] == source
    with torch.no_grad():
        torch.testing.assert_close(ours(x), expected)
    assert_input_matters(expected)
    assert n_params(ours) == ref_params
    if arch in COUNTED_WITH_AUX:
        ref_params = n_params(nets.create_model(arch, aux_logits=True))
    assert {t: weights.get_tag(t).num_params for t in tags} == dict.fromkeys(tags, ref_params)
