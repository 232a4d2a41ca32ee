"""NASNet-A: parity with Keras 3 (torch backend) on Keras-saved files with random weights
(NASNetMobile, with and without the top), with timm's nasnetalarge on its
state dict, parameter counts, weight tags, the anatomy and the cells on their own.

Keras 3 refuses ``NASNetMobile`` on the torch backend ("not available ... due to an
outstanding bug"); its builder ``keras.src.applications.nasnet.NASNet`` with Mobile's
arguments (4 @ 1056, stem 32, no skip_reduction) is the same graph and runs. The reference
models are built at 32x32, Keras' minimum: the reduction cells then see 15, 8, 4 and 2
pixels, odd and even, so both of TF SAME's paddings ((1, 1) and (0, 1)) are exercised.

Keras' NASNetLarge is not built here: at 32x32 it costs about 30 s on 2 cores (its build
alone 11-15 s), beyond this file's share of the suite. Its move table is Mobile's
(``weights.keras.nasnet.nasnet_moves``) with N = 6, its wiring (skip_reduction, stem 96) is
checked against timm's nasnetalarge, and its counts against Keras' published ones below.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from conftest import n_params, randomize_bn  # noqa: E402

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
from keras.src.applications import nasnet as keras_nasnet  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402
from keras_reference import _randomize_bn, assert_close, calibrate_bn, images, our_out  # noqa: E402

import nets  # noqa: E402
import weights  # noqa: E402
from nets.blocks import (  # noqa: E402
    FactorizedReduce,
    NASNetNormalCell,
    NASNetReductionCell,
    SamePool2d,
)
from nets.summary import count  # noqa: E402

# Keras' model.summary() totals (keras.io's table: 5,326,716 and 88,949,818), its trainable
# parameters (= ours) and the BatchNorm moving statistics.
KERAS_COUNTS = {
    "keras_nasnet_mobile": (5_326_716, 5_289_978, 36_738),
    "keras_nasnet_large": (88_949_818, 88_753_150, 196_668),
}
# Keras' NASNet arguments for Mobile and Large (keras.applications.NASNetMobile/Large).
KERAS_ARGS = {
    "keras_nasnet_mobile": dict(
        penultimate_filters=1056, num_blocks=4, stem_block_filters=32, skip_reduction=False
    ),
    "keras_nasnet_large": dict(
        penultimate_filters=4032, num_blocks=6, stem_block_filters=96, skip_reduction=True
    ),
}
SIZE = 32


def keras_nasnet_h5(tmp_path, arch: str, *, include_top: bool = True, seed: int = 0):
    """Keras' NASNet with random weights (BatchNorm statistics too) saved as the legacy .h5."""
    keras.utils.set_random_seed(seed)
    top = dict(classifier_activation=None) if include_top else dict(pooling="avg")
    model = keras_nasnet.NASNet(
        (SIZE, SIZE, 3), include_top=include_top, weights=None, **KERAS_ARGS[arch], **top
    )
    _randomize_bn(model, seed)
    calibrate_bn(model, SIZE, keras_nasnet.preprocess_input)
    path = tmp_path / f"{arch}{'' if include_top else '_notop'}.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return model, str(path)


def check_keras_parity(tmp_path, arch: str, *, notop: bool = True) -> None:
    """Logits with the top; with ``notop``, also the pooled features of the same file without
    its classifier layer: Keras' include_top=False file holds exactly the other layers (its
    pooling has no weights), so one Keras model and one Keras forward pass serve both."""
    x = images(SIZE)
    ref, path = keras_nasnet_h5(tmp_path, arch)
    ours = nets.create_model(arch, weights=path)
    pooled = keras.Model(ref.inputs, [ref.output, ref.layers[-2].output])  # logits, GAP
    pre = keras_nasnet.preprocess_input(x.copy())
    logits, features = (torch.as_tensor(keras.ops.convert_to_numpy(t)) for t in pooled(pre))
    assert_close(our_out(ours, "tf", x), logits)
    totals = count(ours)
    assert totals.total == ref.count_params() == KERAS_COUNTS[arch][0]
    assert totals.trainable == KERAS_COUNTS[arch][1]
    assert n_params(ours) == weights.get_tag(f"{arch}.keras_in1k").num_params
    if notop:
        with h5py.File(path, "a") as f:  # the notop file: every layer but the classifier
            del f["predictions"]
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
            f.attrs["layer_names"] = [n for n in names if n != "predictions"]
        ours = nets.create_model(arch, weights=path, include_top=False, pooling="avg")
        assert_close(our_out(ours, "tf", x), features)
        assert n_params(ours) == weights.get_tag(f"{arch}.keras_notop_in1k").num_params
        with pytest.raises(weights.IncompatibleCheckpointError, match="notop"):
            nets.create_model(arch, weights=path)


@pytest.mark.parity("keras_nasnet_mobile")
def test_keras_nasnet_mobile(tmp_path):
    check_keras_parity(tmp_path, "keras_nasnet_mobile")


@pytest.mark.slow
@pytest.mark.parity("keras_nasnet_large")
def test_keras_nasnet_large(tmp_path):
    # The top only: the notop path is the same code, checked on Mobile above.
    check_keras_parity(tmp_path, "keras_nasnet_large", notop=False)


# -- timm ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_timm_nasnetalarge_checkpoint_gives_timm_logits_and_taps(tmp_path):
    # At 32 the cells see 15, 8, 4 and 2 pixels: both TF SAME paddings, and borders where
    # the -inf padding of timm's max-pools matters. One forward pass on each side.
    torch.manual_seed(0)
    ref = randomize_bn(timm.create_model("nasnetalarge", pretrained=False)).eval()
    path = tmp_path / "nasnetalarge.pth"
    torch.save(ref.state_dict(), path)
    ours = nets.create_model("nasnetalarge", weights=str(path)).eval()
    assert n_params(ours) == n_params(ref) == weights.get_tag("nasnetalarge.tf_in1k").num_params
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = nets.feature_extractor(ours, stages=(0, 1, 2, 3))(x)
        final, taps = ref.forward_intermediates(x, indices=[1, 2, 3, 4])
        torch.testing.assert_close(ours.forward_head(maps[3]), ref.forward_head(final))
    # timm's taps 1-3 are the ReLU the next cell begins with; ours the cell outputs before
    # it. Its last tap (after the final ReLU) is our last stage's output itself.
    for ours_map, tap in zip(maps[:3], taps[:3], strict=True):
        torch.testing.assert_close(ours_map.relu(), tap)
    torch.testing.assert_close(maps[3], taps[3])


def test_timm_tag_follows_timms_pretrained_cfg():
    tag = weights.get_tag("nasnetalarge.tf_in1k")
    cfg = timm.models.get_pretrained_cfg("nasnetalarge.tf_in1k")
    assert weights.default_tag("nasnetalarge") == tag.name
    assert tag.url == cfg.url and tag.url.endswith(tag.file_name)
    prep = tag.preprocessing
    assert prep.input_size == cfg.input_size[-1] == nets.get_spec("nasnetalarge").input_size
    assert prep.resize_size == round(331 / cfg.crop_pct) == 363
    assert prep.interpolation == cfg.interpolation == "bicubic"
    assert prep.mean == tuple(cfg.mean) and prep.std == tuple(cfg.std) == (0.5, 0.5, 0.5)


def test_keras_tags_carry_kerass_files_and_figures():
    for arch, size, md5 in (
        ("keras_nasnet_mobile", 224, "020fb642bf7360b370c678b08e0adf61"),
        ("keras_nasnet_large", 331, "11577c9a518f0070763c2b964a382f17"),
    ):
        tag = weights.get_tag(f"{arch}.keras_in1k")
        assert tag.md5 == md5 and tag.url.startswith(keras_nasnet.BASE_WEIGHTS_PATH)
        assert tag.preprocessing.input_size == size == nets.get_spec(arch).input_size
        assert tag.preprocessing.mean == (0.5, 0.5, 0.5)  # mode "tf": [-1, 1]
        assert weights.default_tag(arch) == tag.name
    assert weights.get_tag("keras_nasnet_mobile.keras_notop_in1k").url.endswith("no-top.h5")


def test_summary_keras_counts_as_keras():
    from nets.summary import keras_variant

    for keras_name, arch in (
        ("NASNetMobile", "keras_nasnet_mobile"),
        ("NASNetLarge", "keras_nasnet_large"),
    ):
        assert keras_variant(keras_name) == (arch, keras_name)
        with torch.device("meta"):
            totals = count(nets.create_model(arch))
        assert (totals.total, totals.trainable) == KERAS_COUNTS[arch][:2]


# -- anatomy and the cells on their own ----------------------------------------------------------
def test_anatomy_of_the_mobile_network():
    model = nets.create_model("keras_nasnet_mobile", include_top=False, pooling=None).eval()
    assert [f.channels for f in model.feature_info] == [44, 264, 528, 1056]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    assert [len(s) for s in model.stages] == [1, 5, 5, 5]  # 4 @ 1056
    # Which cell adjusts prev how: reductions where prev is twice as large.
    assert model.stages[0][0].adjust is None  # the first cell reads the stem's output
    assert isinstance(model.stages[1][1].adjust, FactorizedReduce)
    assert isinstance(model.stages[2][1].adjust, FactorizedReduce)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = nets.feature_extractor(model, stages=(0, 1, 2, 3))(x)
        out = model(x)
    # 64 -> 31 (unpadded stem) -> 16 -> 8 -> 4 -> 2 (TF SAME: ceil(n / 2)).
    assert [tuple(m.shape[1:]) for m in maps] == [
        (44, 16, 16),
        (264, 8, 8),
        (528, 4, 4),
        (1056, 2, 2),
    ]
    torch.testing.assert_close(out, maps[3])
    assert (out >= 0).all()  # the last stage ends with Keras' ReLU
    with pytest.raises(nets.InputSizeError, match="32x32"):
        model(torch.randn(1, 3, 31, 32))


def test_keras_and_timm_variants_differ_only_in_the_max_pool_padding():
    with torch.device("meta"):
        keras_cell = nets.create_model("keras_nasnet_large").stages[2][0]
        timm_cell = nets.create_model("nasnetalarge").stages[2][0]
    assert keras_cell.left2.pad_value == 0.0 and timm_cell.left2.pad_value == float("-inf")
    assert keras_cell.conv1x1.bn.momentum == pytest.approx(0.0003)
    assert timm_cell.conv1x1.bn.momentum == 0.1


def test_same_pool_pads_like_keras_and_tf():
    # Keras' ZeroPadding2D(correct_pad) + MaxPooling2D(3, 2, "valid") on negative inputs: a
    # padded zero wins at the border; with -inf (TF's SAME) it never does.
    x = -torch.rand(1, 2, 8, 8) - 1
    zero_pad = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))  # correct_pad on an even size
    pool = keras.layers.MaxPooling2D(3, 2, padding="valid")
    ref = pool(zero_pad(keras.ops.convert_to_tensor(x.permute(0, 2, 3, 1))))
    ref = torch.as_tensor(keras.ops.convert_to_numpy(ref)).permute(0, 3, 1, 2)
    torch.testing.assert_close(SamePool2d("max", 3, 2, 0.0)(x), ref)
    tf_same = SamePool2d("max", 3, 2, float("-inf"))(x)
    assert (tf_same < 0).all() and (ref[..., -1, :] == 0).all()
    with pytest.raises(ValueError, match="zeros"):
        SamePool2d("avg", 3, 2, float("-inf"))


def test_cells_on_their_own():
    normal = NASNetNormalCell(24, 16, 8, adjust="reduce").eval()
    x, prev = torch.randn(1, 24, 7, 7), torch.randn(1, 16, 13, 13)
    before = (x.clone(), prev.clone())
    with torch.no_grad():
        out = normal(x, prev)
    assert out.shape == (1, 48, 7, 7)  # six blocks' worth of 8 channels
    torch.testing.assert_close((x, prev), before)  # no ReLU overwrote an input
    reduction = NASNetReductionCell(48, 24, 16).eval()
    with torch.no_grad():
        assert reduction(out, x).shape == (1, 64, 4, 4)  # four of 16; ceil(7 / 2)
    with pytest.raises(ValueError, match="needs an adjust"):
        NASNetNormalCell(24, 16, 8, adjust=None)


def test_multiply_adds_match_the_published_table():
    # tensorflow.org's tf.keras.applications.nasnet table: 564 M (4 @ 1056 at 224) and 23.8 B
    # (6 @ 4032 at 331) multiply-adds; counted on the meta device.
    for arch, size, published, unit in (
        ("keras_nasnet_mobile", 224, 564, 1e6),
        ("keras_nasnet_large", 331, 238, 1e8),
    ):
        with torch.device("meta"):
            macs = nets.count_macs(nets.create_model(arch), (1, 3, size, size))
        assert round(macs / unit) == published, (arch, macs)
