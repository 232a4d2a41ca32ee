"""The cost counter: MACs against torchvision's published figures and the papers' sums."""

from __future__ import annotations

import pytest
import torch
import torchvision

import nets
from nets.cost import cost_table, separable_demo

count_macs = nets.count_macs  # the public name the issue asks for


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet50", "efficientnet_lite0"])
def test_macs_match_torchvision_metadata_or_reference(name):
    with torch.device("meta"):
        ours = nets.create_model(name)
    macs = count_macs(ours, (3, 224, 224))
    if name in torchvision.models.list_models():
        published = torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"]
        assert macs / 1e9 == pytest.approx(published, abs=5e-4)  # GFLOPS printed to 3 places
        with torch.device("meta"):
            ref = torchvision.models.get_model(name)
        assert macs == count_macs(ref, (3, 224, 224))
    else:  # Lite0: the independent TF-port implementation, counted the same way
        from efficientnet_lite_pytorch import EfficientNet

        ref = EfficientNet.from_name("efficientnet-lite0")
        assert macs == count_macs(ref, (3, 224, 224))


def test_cost_table_parts_add_up():
    with torch.device("meta"):
        model = nets.create_model("resnet18")
    for per_block in (False, True):
        rows = cost_table(model, 224, per_block=per_block)
        total = rows[-1]
        assert total.name == "total"
        assert sum(r.macs for r in rows[:-1]) == total.macs
        assert sum(r.params for r in rows[:-1]) == total.params == 11_689_512


def test_separable_demo_matches_the_paper_formula():
    text = separable_demo()
    assert "462.42M" in text  # 14*14*512*3*3*512
    assert "52.28M" in text  # 14*14*512*(9 + 512)
    ratio = (14 * 14 * 512 * 9 + 14 * 14 * 512 * 512) / (14 * 14 * 512 * 9 * 512)
    assert ratio == pytest.approx(1 / 512 + 1 / 9)
    assert f"measured ratio {ratio:.4f}" in text and f"= {1 / 512 + 1 / 9:.4f}" in text


def test_inception_demo_prints_the_true_sums(capsys):
    from nets.__main__ import main

    assert main(["cost", "inception-demo"]) == 0
    out = capsys.readouterr().out
    # The course's figures (REFERENCE.md), measured on InceptionModule.
    for fragment in (
        "output 28x28x672",
        "25.7M",
        "346.8M",
        "481.7M",
        "854.2M",
        "output 28x28x480",
        "12.8M",
        "86.7M",
        "120.4M",
        "271.4M",
        "358M",
        "112.9M",
        "1.5M + 3.8M = 5.3M",
    ):
        assert fragment in out, fragment


def test_cost_command_for_a_model(capsys):
    from nets.__main__ import main

    assert main(["cost", "googlenet", "--per-block"]) == 0
    out = capsys.readouterr().out
    assert "stages.1.inception4a" in out
    assert out.strip().splitlines()[-1].split()[1] == "1.50G"  # torchvision: 1.498 GFLOPS
