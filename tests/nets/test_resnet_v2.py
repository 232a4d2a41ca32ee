"""ResNet v2 (nets.models.resnet_v2, nets.PreActBottleneck) and Keras' ResNet50V2/101V2/152V2 and
ResNet101/152 files: the block's shortcuts, the stages, and parity of logits with Keras 3
(torch backend) on Keras-saved files with random weights (tests/weights/test_keras.py's helpers and
tolerance), at 32x32, Keras' smallest input, to keep the suite's time.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("keras")
pytest.importorskip("h5py")

from keras_reference import check_parity  # noqa: E402

import nets  # noqa: E402
import weights  # noqa: E402
from nets.blocks import PreActBottleneck  # noqa: E402


# -- the block ----------------------------------------------------------------------------------
def _zero_residual(block: PreActBottleneck) -> PreActBottleneck:
    torch.nn.init.zeros_(block.conv3.conv.weight)
    torch.nn.init.zeros_(block.conv3.conv.bias)
    return block.eval()


def test_preact_bottleneck_shortcuts():
    torch.manual_seed(0)
    x = torch.randn(2, 64, 9, 9)  # negative values: nothing may clip the shortcut
    # Channels change: a 1x1 conv of the pre-activated input (BN-ReLU), with the stride.
    widen = _zero_residual(PreActBottleneck(64, 64, 2))
    assert widen.downsample is not None and widen.pool is None
    with torch.no_grad():
        pre = widen.preact(x)
        assert pre.min() >= 0
        torch.testing.assert_close(widen(x), widen.downsample(pre))
        assert widen(x).shape == (2, 256, 5, 5)
    # Same channels at a stride: the raw input, subsampled (a 1x1 max-pool), not activated;
    # on the grid of the strided 3x3 conv (padding 1), odd sizes included.
    strided = _zero_residual(PreActBottleneck(256, 64, 2))
    y = torch.randn(2, 256, 9, 9)
    assert strided.downsample is None and strided.pool is not None
    with torch.no_grad():
        torch.testing.assert_close(strided(y), y[..., ::2, ::2])
        assert strided.conv2(strided.conv1(strided.preact(y))).shape[-2:] == (5, 5)
    # Otherwise identity, and no activation after the addition.
    same = _zero_residual(PreActBottleneck(256, 64))
    assert same.downsample is None and same.pool is None
    with torch.no_grad():
        torch.testing.assert_close(same(y), y)
    # The numeric conventions are the caller's: eps, momentum, biases.
    blk = PreActBottleneck(64, 64, bias=False, eps=1.001e-5, momentum=0.01)
    assert blk.conv3.conv.bias is None and blk.downsample.conv.bias is None
    assert blk.preact.bn.eps == 1.001e-5 and blk.conv1.bn.momentum == 0.01
    assert blk.conv1.conv.bias is None and blk.conv2.conv.bias is None


def test_stages_begin_at_each_stride_2_block():
    with torch.device("meta"):
        model = nets.create_model("resnet50_v2")
    info = [(f.channels, f.reduction) for f in model.feature_info]
    assert info == [(256, 4), (512, 8), (1024, 16), (2048, 32)]
    # Keras' conv2 has 3 blocks, the last one strided: ours has 2 in stage 0, and stage 1
    # starts with that block (256 -> 256 channels, a pooled shortcut), then conv3's 3 unstrided.
    assert [len([m for m in s if isinstance(m, PreActBottleneck)]) for s in model.stages] == [
        2,
        1 + 3,
        1 + 5,
        1 + 3,
    ]
    first = model.stages[1][0]
    assert (first.in_chs, first.out_chs, first.stride) == (256, 256, 2) and first.pool is not None
    assert model.stages[3][-3].stride == 1  # conv5 has no stride (then norm, act)
    # The post BN-ReLU closes the last stage, so its features are normalised.
    assert isinstance(model.stages[3].norm, torch.nn.BatchNorm2d)
    out = nets.create_model("resnet50_v2").eval()(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 1000)


# -- parity with Keras -----------------------------------------------------------------------------
@pytest.mark.parity("resnet50_v2")
def test_resnet50_v2(tmp_path):
    check_parity(tmp_path, "ResNet50V2", "resnet_v2", "resnet50_v2", "tf", 32)
    # Its file is told from ResNet50's (the same block names; no conv1_bn, a post_bn).
    path = tmp_path / "ResNet50V2_notop.h5"  # the file check_parity wrote (keras_h5's name)
    with pytest.raises(weights.CheckpointFormatError, match="ResNet50V2.*resnet50_v2"):
        nets.create_model("keras_resnet50", weights=path)


@pytest.mark.parity("resnet101_v2", "resnet152_v2", "keras_resnet101", "keras_resnet152")
@pytest.mark.slow
@pytest.mark.parametrize(
    "app, module, arch, mode",
    [
        ("ResNet101V2", "resnet_v2", "resnet101_v2", "tf"),
        ("ResNet152V2", "resnet_v2", "resnet152_v2", "tf"),
        ("ResNet101", "resnet", "keras_resnet101", "caffe"),
        ("ResNet152", "resnet", "keras_resnet152", "caffe"),
    ],
)
def test_deeper_resnets(tmp_path, app, module, arch, mode):
    # With the top only: the notop files are the same tables less "predictions" (checked on
    # ResNet50V2 here and ResNet50 in test_keras.py).
    # ResNet152 (caffe mode, 0..255-scale input) with calibrated BatchNorm: float32 itself
    # is 1.5e-4 of the logits away from float64 (ours in float32 against ours in float64,
    # measured: 1.5e-4; Keras against ours in float64: 1.4e-4), so 1e-4 would test rounding.
    # ResNet101 takes the same 0..255-scale input: 1.16e-4 of the logits between Keras and
    # ours was measured on an AVX-512 VNNI host (below 1e-4 on the hosts before it).
    tol = 3e-4 if mode == "caffe" else 1e-4
    check_parity(tmp_path, app, module, arch, mode, 32, notop=False, tol=tol)


def test_tags():
    for arch, keras_name in (("resnet50_v2", "ResNet50V2"), ("keras_resnet152", "ResNet152")):
        tag = weights.get_tag(f"{arch}.keras_in1k")
        assert weights.default_tag(arch) == tag.name  # no other source has weights for it
        assert tag.md5 and tag.url.endswith("_weights_tf_dim_ordering_tf_kernels.h5")
        assert keras_name in tag.notes
    v2 = weights.get_tag("resnet101_v2.keras_notop_in1k")
    assert v2.preprocessing.mean == (0.5, 0.5, 0.5) and v2.preprocessing.std == (0.5, 0.5, 0.5)
    assert (v2.top1, v2.top5) == (77.2, 93.8)
    assert v2.url.endswith("resnet/resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert weights.get_tag("keras_resnet101.keras_in1k").preprocessing.std == (1 / 255,) * 3


def test_summary_keras_counts(capsys):
    from nets.__main__ import main

    # The deeper ones' counts are in test_keras.KERAS_COUNTS (cheaper, on the meta device).
    assert main(["summary", "ResNet50V2", "--keras"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 25,613,800" in out and "Non-trainable params: 45,440" in out
    assert "keras.applications.ResNet50V2" in out
    listed = nets.list_models()  # what `python -m nets list` prints
    assert {"resnet50_v2", "resnet101_v2", "resnet152_v2"} <= set(listed)
    assert {"keras_resnet101", "keras_resnet152"} <= set(listed)
