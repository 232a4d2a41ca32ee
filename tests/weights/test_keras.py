"""Keras HDF5 ImageNet weights: parity of logits with Keras 3 (torch backend) for every
keras.applications model we convert, the Keras workflow helpers, counts and error paths.

Each parity test builds the Keras model with random weights (seeded, BatchNorm statistics
randomised too), writes it in the legacy HDF5 layout the ImageNet files use, loads that file
with ``create_model`` and compares the outputs on the same images, each side preprocessed
with its own ``preprocess_input``. Tolerance: 1e-4 of the largest output magnitude; the two
sides run the same float32 operations in different memory layouts and orders of summation.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402
from keras_reference import (  # noqa: E402
    check_parity,
    images,
    keras_h5,
)

import nets  # noqa: E402
import weights  # noqa: E402
import weights.keras as wk  # noqa: E402
from nets.summary import count  # noqa: E402
from weights.keras import conversion as keras_format  # noqa: E402
from weights.keras import tensors as keras_tensors  # noqa: E402

# REFERENCE.md's Keras table: (total, trainable, non-trainable), and what we count.
KERAS_COUNTS = {
    "vgg16": (138_357_544, 138_357_544, 0),
    "keras_resnet50": (25_636_712, 25_583_592, 53_120),
    "keras_mobilenet": (4_253_864, 4_231_976, 21_888),
    "keras_mobilenet_v2": (3_538_984, 3_504_872, 34_112),
    "keras_densenet121": (8_062_504, 7_978_856, 83_648),
    "keras_inception_v3": (23_851_784, 23_817_352, 34_432),
    "keras_xception": (22_910_480, 22_855_952, 54_528),
    "keras_inception_resnet_v2": (55_873_736, 55_813_192, 60_544),
}
# ResNet v2 and Keras' deeper ResNets: keras.applications.<App>(weights=None).count_params()
# and its trainable weights (Keras 3.15); the parity tests are in tests/nets/test_resnet_v2.py.
KERAS_COUNTS.update(
    {
        "resnet50_v2": (25_613_800, 25_568_360, 45_440),
        "resnet101_v2": (44_675_560, 44_577_896, 97_664),
        "resnet152_v2": (60_380_648, 60_236_904, 143_744),
        "keras_resnet101": (44_707_176, 44_601_832, 105_344),
        "keras_resnet152": (60_419_944, 60_268_520, 151_424),
    }
)


# -- parity, model by model ----------------------------------------------------------------------
@pytest.mark.parity("vgg16")
@pytest.mark.slow
def test_vgg16_with_top_at_224(tmp_path):
    # The top needs Keras' 7x7x512 Flatten, so 224: this checks the fc1 (h, w, c) -> (c, h, w)
    # permutation and the BGR fold on real-sized tensors.
    check_parity(tmp_path, "VGG16", "vgg16", "vgg16", "caffe", 224, notop=False)


@pytest.mark.parity("vgg16", "vgg19")
def test_vgg16_vgg19_notop(tmp_path):
    check_parity(tmp_path, "VGG16", "vgg16", "vgg16", "caffe", 64, top=False)
    check_parity(tmp_path, "VGG19", "vgg19", "vgg19", "caffe", 64, top=False)


@pytest.mark.parity("keras_mobilenet")
def test_mobilenet(tmp_path):
    check_parity(tmp_path, "MobileNet", "mobilenet", "keras_mobilenet", "tf", 128)


@pytest.mark.parity("keras_resnet50")
def test_resnet50(tmp_path):
    check_parity(tmp_path, "ResNet50", "resnet50", "keras_resnet50", "caffe", 96)


@pytest.mark.parity("keras_mobilenet_v2")
def test_mobilenet_v2(tmp_path):
    check_parity(tmp_path, "MobileNetV2", "mobilenet_v2", "keras_mobilenet_v2", "tf", 96)


@pytest.mark.parity("keras_densenet121")
def test_densenet121(tmp_path):
    check_parity(tmp_path, "DenseNet121", "densenet", "keras_densenet121", "torch", 64)


@pytest.mark.parity("keras_densenet169", "keras_densenet201")
@pytest.mark.slow
@pytest.mark.parametrize("app", ["DenseNet169", "DenseNet201"])
def test_densenet169_201(tmp_path, app):
    arch = f"keras_{app.lower()}"
    check_parity(tmp_path, app, "densenet", arch, "torch", 64, notop=False)


@pytest.mark.parity("keras_inception_v3")
def test_inception_v3(tmp_path):
    # 75 is Keras' minimum: the last grid is 1x1.
    check_parity(tmp_path, "InceptionV3", "inception_v3", "keras_inception_v3", "tf", 75)


@pytest.mark.parity("keras_xception")
@pytest.mark.slow
def test_xception_at_71(tmp_path):
    # 71 is Keras' minimum: 71 -> 35 -> 33, then the four 3x3/2 max-pools see 33, 17, 9, 5,
    # all odd, where TF's "same" pool pads (1, 1) like a symmetric one.
    check_parity(tmp_path, "Xception", "xception", "keras_xception", "tf", 71, notop=False)


@pytest.mark.parity("keras_xception")
def test_xception(tmp_path):
    # 107 -> 53 -> 51: the pools see 51, 26, 13, 7; on 26 TF's "same" pads (0, 1), which the
    # symmetric padding of legacy_xception would get wrong (see test_max_pool_same_is_tfs).
    check_parity(tmp_path, "Xception", "xception", "keras_xception", "tf", 107)


@pytest.mark.parity("keras_inception_resnet_v2")
@pytest.mark.slow
def test_inception_resnet_v2(tmp_path):
    # 75 is Keras' minimum: the last grid is 1x1.
    check_parity(
        tmp_path,
        "InceptionResNetV2",
        "inception_resnet_v2",
        "keras_inception_resnet_v2",
        "tf",
        75,
    )


def test_max_pool_same_is_tfs():
    # Keras' MaxPooling2D(3, 2, padding="same") on odd and even sizes, negative inputs (so a
    # zero padding would win the max); the symmetric nn.MaxPool2d(3, 2, 1) differs on even.
    from nets.blocks import MaxPool2dSame

    pool = keras.layers.MaxPooling2D(3, 2, padding="same")
    for size in (7, 8):
        x = -torch.rand(1, 3, size, size) - 1
        ref = torch.as_tensor(
            keras.ops.convert_to_numpy(pool(keras.ops.convert_to_tensor(x.permute(0, 2, 3, 1))))
        ).permute(0, 3, 1, 2)
        torch.testing.assert_close(MaxPool2dSame(3, 2)(x), ref)
        symmetric = torch.nn.MaxPool2d(3, 2, 1)(x)
        assert symmetric.shape == ref.shape
        assert torch.equal(symmetric, ref) == (size % 2 == 1)


# -- layouts, explicitly ---------------------------------------------------------------------------
def test_kernel_layout_changes():
    hwio = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    oihw = keras_tensors.conv_kernel(hwio)
    assert oihw.shape == (5, 4, 2, 3) and oihw[4, 3, 1, 2] == hwio[1, 2, 3, 4]
    dw = keras_tensors.depthwise_kernel(hwio)  # (kh, kw, C=4, m=5) -> (20, 1, kh, kw)
    assert dw.shape == (20, 1, 2, 3) and dw[3 * 5 + 2, 0, 1, 0] == hwio[1, 0, 3, 2]
    dense = torch.randn(6, 7)
    assert torch.equal(keras_tensors.dense_kernel(dense), dense.t())
    # fc1 after a channels-last Flatten of a 2x2x3 map: Keras input index (h*2 + w)*3 + c.
    fc1 = torch.randn(12, 5)
    ours = keras_tensors.flatten_dense_kernel(fc1, channels=3)
    for c in range(3):
        for h in range(2):
            for w in range(2):
                assert torch.equal(ours[:, c * 4 + h * 2 + w], fc1[(h * 2 + w) * 3 + c])
    with pytest.raises(weights.CheckpointFormatError, match="square grid"):
        keras_tensors.flatten_dense_kernel(torch.randn(10, 5), channels=3)
    with pytest.raises(weights.CheckpointFormatError, match="4 dimensions"):
        keras_tensors.conv_kernel(torch.randn(3, 3))
    rgb = keras_tensors.bgr_to_rgb(oihw[:, :3])
    assert torch.equal(rgb[:, 0], oihw[:, 2]) and torch.equal(rgb[:, 2], oihw[:, 0])


# -- the Keras workflow ----------------------------------------------------------------------------
def test_preprocess_input_modes_match_keras():
    from keras.applications import imagenet_utils

    x = images(8)
    for mode in ("tf", "torch"):
        ref = imagenet_utils.preprocess_input(x.copy(), mode=mode)
        np.testing.assert_allclose(wk.preprocess_input(x, mode), ref, rtol=1e-5, atol=1e-5)
    ref = imagenet_utils.preprocess_input(x.copy(), mode="caffe")  # BGR
    np.testing.assert_allclose(wk.preprocess_input(x, "caffe", bgr=True), ref, atol=1e-4)
    np.testing.assert_allclose(wk.preprocess_input(x, "caffe"), ref[..., ::-1], atol=1e-4)
    # Tensors and channels-first work too, and give the same numbers.
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    out = wk.preprocess_input(t, "caffe", data_format="channels_first")
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.permute(0, 2, 3, 1).numpy(), ref[..., ::-1], atol=1e-4)
    # Each mode equals its tag's mean/std on [0, 1] input (what weights.transforms applies).
    for tag in (
        "vgg16.keras_in1k",
        "keras_mobilenet_v2.keras_in1k",
        "keras_densenet121.keras_in1k",
    ):
        mode = wk.mode_of(tag)
        p = weights.get_tag(tag).preprocessing
        mean, std = torch.tensor(p.mean), torch.tensor(p.std)
        via_tag = (torch.from_numpy(x) / 255 - mean) / std
        torch.testing.assert_close(via_tag, torch.from_numpy(wk.preprocess_input(x, mode)))
    with pytest.raises(ValueError, match="mode must be"):
        wk.preprocess_input(x, "bgr")


def test_decode_predictions_gives_wnid_name_score():
    preds = torch.zeros(2, 1000)
    preds[0, 0], preds[0, 282], preds[1, 999] = 0.7, 0.2, 0.9
    out = wk.decode_predictions(preds, top=2)
    assert out[0][0] == ("n01440764", "tench", pytest.approx(0.7))
    assert out[0][1][:2] == ("n02123159", "tiger cat")
    assert out[1][0][0] == "n15075141" and len(wk.wnids()) == len(set(wk.wnids())) == 1000
    assert wk.decode_predictions(preds.numpy(), top=1)[1][0][1] == "toilet tissue"
    with pytest.raises(ValueError, match=r"\(N, 1000\)"):
        wk.decode_predictions(torch.zeros(10))


def test_keras_counts_and_tags():
    for arch, (total, trainable, frozen) in KERAS_COUNTS.items():
        with torch.device("meta"):
            totals = count(nets.create_model(arch))
        assert (totals.total, totals.trainable, totals.non_trainable) == (total, trainable, frozen)
    for name, m in keras_format.MODELS.items():
        top, notop = weights.get_tag(f"{m.arch}.keras_in1k"), f"{m.arch}.keras_notop_in1k"
        # EfficientNet's files are under keras.applications' other bucket (m.base_url).
        base = m.base_url or keras_format.KERAS_BASE_URL
        assert top.url == base + m.weights_dir + m.file
        assert weights.get_tag(notop).url.endswith(
            ("_notop.h5", "_no_top.h5", "-no-top.h5", "_no_top_v2.h5")
        )
        assert wk.mode_of(top.name) == m.mode and top.source == "keras"
        with torch.device("meta"):
            assert count(nets.create_model(m.arch)).trainable == top.num_params
            with_top = nets.create_model(m.arch, include_top=False)
        assert count(with_top).trainable == weights.get_tag(notop).num_params
        if m.arch.startswith("keras_"):
            assert weights.default_tag(m.arch) == top.name, name
    assert weights.default_tag("vgg16") == "vgg16.tv_in1k"  # torchvision's stays the default


def test_summary_keras_flag(capsys):
    from nets.__main__ import main

    assert main(["summary", "MobileNet", "--keras"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 4,253,864" in out
    assert "Trainable params: 4,231,976" in out
    assert "Non-trainable params: 21,888" in out
    assert "keras.applications.MobileNet" in out
    assert main(["summary", "resnet50", "--keras"]) == 0
    assert "Total params: 25,636,712" in capsys.readouterr().out
    for name, total in (("Xception", "22,910,480"), ("InceptionResNetV2", "55,873,736")):
        assert main(["summary", name, "--keras"]) == 0
        out = capsys.readouterr().out
        assert f"Total params: {total}" in out and f"keras.applications.{name}" in out


# -- error paths ---------------------------------------------------------------------------------
def test_hdf5_is_recognised_by_content_and_foreign_files_are_refused(tmp_path):
    _, path = keras_h5(tmp_path, "MobileNet", size=32, include_top=False)
    renamed = tmp_path / "weights.bin"
    os.rename(path, renamed)
    assert weights.sniff_format(renamed) == "hdf5"
    # A Keras file of another model: the message names the model and where it loads.
    with pytest.raises(weights.CheckpointFormatError, match="MobileNet.*keras_mobilenet"):
        nets.create_model("keras_resnet50", weights=renamed)
    with pytest.raises(weights.CheckpointFormatError, match="MobileNet"):
        nets.create_model("resnet50", weights=renamed)
    # A Keras model we have no conversion for.
    keras.utils.set_random_seed(0)
    other = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="my_dense")], name="mine"
    )
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, other)
    with pytest.raises(weights.CheckpointFormatError, match="no conversion for.*my_dense"):
        nets.create_model("vgg16", weights=path)
    # An HDF5 file that is not a Keras weights file.
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(weights.CheckpointFormatError, match="layer_names"):
        nets.create_model("vgg16", weights=path)
