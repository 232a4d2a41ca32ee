"""Keras' MobileNetV3Large / MobileNetV3Small .h5 files -> nets.models.mobilenet_v3's keras_* archs.

Parity of outputs with Keras 3 (torch backend) on Keras-saved legacy .h5 files with random
weights (BatchNorm statistics randomised), for every configuration Keras publishes ImageNet
files for (large and small x alpha 1.0 / 0.75 / minimalistic), with and without the top,
each side preprocessed by its own pipeline: Keras gets 0-255 images (its model rescales them
with its Rescaling layer; its ``preprocess_input`` passes them through), ours the tag's
mean/std on [0, 1] images, what a user's ``weights.transforms`` gives. Tolerance and helpers
are tests/weights/test_keras.py's. The reference models are built at 32x32, Keras' minimum (the
strided convs see 16, 8, 4, 2: even sizes, where Keras' correct_pad is TF's SAME), and one
at 33x33, odd sizes everywhere.

Also: parameter counts against Keras' (total and trainable, with and without the top),
``identify`` telling each configuration from every other, a file of one configuration refused
by another's arch, the names tf.keras 2 wrote into the published files, the tags, and
``python -m nets summary <arch> --keras``.
"""

from __future__ import annotations

import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402
from keras_reference import _randomize_bn, assert_close, calibrate_bn, images, keras_out, our_out  # noqa: E402

import nets  # noqa: E402
import weights  # noqa: E402
import weights.keras as wk  # noqa: E402
from nets.summary import count  # noqa: E402
from weights.io import read_keras_h5  # noqa: E402
from weights.keras import conversion as keras_format  # noqa: E402

# arch: (keras.applications name, its arguments)
CONFIGS = {
    "keras_mobilenet_v3_large": ("MobileNetV3Large", dict(alpha=1.0, minimalistic=False)),
    "keras_mobilenet_v3_large_075": ("MobileNetV3Large", dict(alpha=0.75, minimalistic=False)),
    "keras_mobilenet_v3_large_minimalistic": (
        "MobileNetV3Large",
        dict(alpha=1.0, minimalistic=True),
    ),
    "keras_mobilenet_v3_small": ("MobileNetV3Small", dict(alpha=1.0, minimalistic=False)),
    "keras_mobilenet_v3_small_075": ("MobileNetV3Small", dict(alpha=0.75, minimalistic=False)),
    "keras_mobilenet_v3_small_minimalistic": (
        "MobileNetV3Small",
        dict(alpha=1.0, minimalistic=True),
    ),
}
# keras.applications.<App>(weights=None, **args, include_top=...) in Keras 3.15:
# count_params() and its trainable weights, with the top, then without it (the BatchNorm
# moving statistics, total - trainable, are the same with and without the top). The parity
# tests check these against the live Keras models too.
KERAS_COUNTS = {
    "keras_mobilenet_v3_large": ((5_507_432, 5_483_032), (2_996_352, 2_971_952)),
    "keras_mobilenet_v3_large_075": ((4_012_616, 3_993_528), (1_808_736, 1_789_648)),
    "keras_mobilenet_v3_large_minimalistic": ((3_948_688, 3_924_288), (1_437_608, 1_413_208)),
    "keras_mobilenet_v3_small": ((2_554_968, 2_542_856), (939_120, 927_008)),
    "keras_mobilenet_v3_small_075": ((2_051_552, 2_041_872), (583_160, 573_480)),
    "keras_mobilenet_v3_small_minimalistic": ((2_056_848, 2_044_736), (441_000, 428_888)),
}
SIZE = 32  # Keras' minimum input


def keras_v3_h5(tmp_path, arch: str, *, size: int = SIZE, include_top: bool = True, seed=0):
    """Keras' model of ``arch`` with random weights, saved in the legacy .h5 layout of the
    ImageNet files; returns (model, path)."""
    app, args = CONFIGS[arch]
    keras.utils.set_random_seed(seed)
    kwargs = dict(weights=None, include_top=include_top, input_shape=(size, size, 3), **args)
    if include_top:
        kwargs["classifier_activation"] = None  # logits, as ours return
    else:
        kwargs["pooling"] = "avg"
    model = getattr(keras.applications, app)(**kwargs)
    _randomize_bn(model, seed)
    calibrate_bn(model, size)  # the model rescales 0..255 input itself
    path = tmp_path / f"{arch}{'' if include_top else '_notop'}_{size}.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return model, str(path)


@pytest.fixture(scope="module")
def keras_files(module_dir):
    """``keras_files(arch, include_top)`` -> (Keras model, path), built once per module: the
    parity test's files serve the other tests too (a Keras build costs 0.3-1 s)."""
    made: dict[tuple[str, bool], tuple] = {}

    def get(arch: str, include_top: bool = True):
        if (arch, include_top) not in made:
            made[arch, include_top] = keras_v3_h5(
                module_dir, arch, include_top=include_top, seed=int(include_top)
            )
        return made[arch, include_top]

    return get


def keras_trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def matching(state_dict) -> list[str]:
    """Every keras.applications model whose signature the file matches (exactly one)."""
    sd = keras_format.normalise(state_dict)
    layers = keras_format.layer_names(sd)
    return [n for n, m in keras_format.MODELS.items() if m.signature.matches(sd, layers)]


# -- parity, every published configuration ------------------------------------------------------
@pytest.mark.parity(*CONFIGS)
@pytest.mark.parametrize("arch", list(CONFIGS))
def test_parity_with_keras(keras_files, arch):
    name = next(n for n, m in keras_format.MODELS.items() if m.arch == arch)
    x = images(SIZE)  # 0-255 RGB, channels last
    (top_total, top_trainable), (notop_total, notop_trainable) = KERAS_COUNTS[arch]
    for include_top in (True, False):
        ref, path = keras_files(arch, include_top)
        state_dict = read_keras_h5(path)[0]
        assert matching(state_dict) == [name]  # recognised, by this signature only
        assert keras_format.has_top(state_dict) == include_top
        ours = nets.create_model(arch, weights=path, include_top=include_top, pooling="avg")
        # Keras: raw 0-255 into the model (Rescaling inside, preprocess_input a pass-through);
        # ours: the "tf" mode, which is the tag's and the file's mean/std.
        assert_close(our_out(ours, "tf", x), keras_out(ref, "mobilenet_v3", x))
        assert ours.pretrained_cfg["preprocessing"].mean == keras_format.MODES["tf"][0]
        totals = count(ours)
        counts = (top_total, top_trainable) if include_top else (notop_total, notop_trainable)
        assert (totals.total, totals.trainable) == counts
        assert (ref.count_params(), keras_trainable(ref)) == counts
        del ours
    # The notop file (the last one written) does not load into a model with the top.
    with pytest.raises(weights.IncompatibleCheckpointError, match="notop"):
        nets.create_model(arch, weights=path)


def test_parity_at_an_odd_size(tmp_path):
    # 33 -> 17 -> 9 -> 5 -> 3 -> 2: every strided depthwise conv (3x3 and 5x5) sees an odd
    # size, where Keras' correct_pad (for a known input size) and TF's SAME pad both sides.
    arch = "keras_mobilenet_v3_small"
    x = images(33)
    ref, path = keras_v3_h5(tmp_path, arch, size=33)
    ours = nets.create_model(arch, weights=path)
    assert_close(our_out(ours, "tf", x), keras_out(ref, "mobilenet_v3", x))


def _tf_keras_name(layer: str) -> str:
    """A Keras 3 layer name -> the name tf.keras 2 gave it (with slashes), as in the
    published files (tf.keras' mobilenet_v3.py: ``Conv/BatchNorm``, ``expanded_conv_3/
    squeeze_excite/Conv_1``, ``Logits``)."""
    top = {"conv": "Conv", "conv_bn": "Conv/BatchNorm", "conv_1": "Conv_1",
           "conv_1_bn": "Conv_1/BatchNorm", "conv_2": "Conv_2", "logits": "Logits"}  # fmt: skip
    if layer in top:
        return top[layer]
    m = re.fullmatch(
        r"(expanded_conv(?:_\d+)?)_(expand|depthwise|project|squeeze_excite)(.*)", layer
    )
    assert m, layer
    block, part, rest = m.groups()
    rest = {"": "", "_bn": "/BatchNorm", "_conv": "/Conv", "_conv_1": "/Conv_1"}[rest]
    return f"{block}/{part}{rest}"


def test_tf_keras_2_names_of_the_published_files(tmp_path, keras_files):
    # The ImageNet files were written by tf.keras 2 with its layer names (slashes, nested HDF5
    # groups, ``:0`` suffixes, DepthwiseConv2D's ``depthwise_kernel``); the same tensors under
    # those names give the same model.
    arch = "keras_mobilenet_v3_small_075"
    _, path = keras_files(arch)
    sd, _ = read_keras_h5(path)
    layers: dict[str, dict[str, np.ndarray]] = {}
    for key, t in sd.items():
        layer, leaf = key.rsplit("/", 1)
        if layer.endswith("depthwise"):
            leaf = "depthwise_kernel"
        layers.setdefault(_tf_keras_name(layer), {})[leaf] = t.numpy()
    old = tmp_path / "tf_keras.h5"
    with h5py.File(old, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        for layer, tensors in layers.items():
            group = f.require_group(layer)
            names = [f"{layer}/{leaf}:0" for leaf in tensors]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, tensors.values(), strict=True):
                group[name] = value
    assert "Conv_1/BatchNorm/gamma" in read_keras_h5(str(old))[0]
    assert matching(read_keras_h5(str(old))[0]) == ["MobileNetV3Small(alpha=0.75)"]
    x = torch.randn(2, 3, SIZE, SIZE)
    new_model = nets.create_model(arch, weights=path).eval()
    old_model = nets.create_model(arch, weights=str(old)).eval()
    with torch.no_grad():
        torch.testing.assert_close(old_model(x), new_model(x), rtol=0, atol=0)


def test_a_file_of_one_configuration_is_refused_by_another(keras_files):
    _, path = keras_files("keras_mobilenet_v3_large_minimalistic", include_top=False)
    with pytest.raises(
        weights.CheckpointFormatError,
        match=re.escape(
            "holds keras.applications.MobileNetV3Large(minimalistic=True), which loads into "
            "'keras_mobilenet_v3_large_minimalistic', not 'keras_mobilenet_v3_large'"
        ),
    ) as err:
        nets.create_model("keras_mobilenet_v3_large", weights=path, include_top=False)
    assert "\n" not in str(err.value)
    with pytest.raises(weights.CheckpointFormatError, match=r"MobileNetV3Large\(minimal"):
        nets.create_model("mobilenet_v3_large", weights=path, include_top=False)


# -- the architecture's Keras options ------------------------------------------------------------
def test_keras_widths_activations_and_padding():
    from nets.blocks import Conv2dSame, SqueezeExcite

    with torch.device("meta"):
        keras_075 = nets.create_model("keras_mobilenet_v3_large_075")
        tv_075 = nets.create_model("mobilenet_v3_large", width_mult=0.75)
        mini = nets.create_model("keras_mobilenet_v3_small_minimalistic")
    # Keras expands the scaled input by the table's ratio (16 * 4 = 64), torchvision scales
    # the table's expanded width (64 * 0.75 = 48); Keras keeps the head's 1280 below alpha 1.
    assert keras_075.stages[1][0].expand.conv.out_channels == 64
    assert tv_075.stages[1][0].expand.conv.out_channels == 48
    assert (keras_075.head.fc1.out_features, tv_075.head.fc1.out_features) == (1280, 960)
    assert keras_075.stem.conv.out_channels == 16
    assert isinstance(keras_075.stem.conv, Conv2dSame)
    assert isinstance(keras_075.stages[2][0].depthwise.conv, Conv2dSame)  # 5x5/2
    assert keras_075.stages[2][0].depthwise.bn.momentum == 0.001
    # Minimalistic: no SE, 3x3 depthwise kernels, ReLU everywhere (no hardswish at all).
    assert not any(isinstance(m, SqueezeExcite) for m in mini.modules())
    assert not any(isinstance(m, torch.nn.Hardswish) for m in mini.modules())
    kernels = {m.kernel_size for n, m in mini.named_modules() if n.endswith("depthwise.conv")}
    assert kernels == {(3, 3)}
    with pytest.raises(ValueError, match="width_rule"):
        nets.create_model("mobilenet_v3_small", width_rule="tf")


# -- counts, tags, the Keras workflow ------------------------------------------------------------
def test_counts_and_tags():
    for arch, ((total, trainable), (notop_total, notop_trainable)) in KERAS_COUNTS.items():
        with torch.device("meta"):
            top = count(nets.create_model(arch))
            notop = count(nets.create_model(arch, include_top=False))
        assert (top.total, top.trainable) == (total, trainable)
        assert (notop.total, notop.trainable) == (notop_total, notop_trainable)
        tag = weights.get_tag(f"{arch}.keras_in1k")
        assert weights.default_tag(arch) == tag.name
        assert tag.num_params == trainable and tag.top5 is None
        assert weights.get_tag(f"{arch}.keras_notop_in1k").num_params == notop_trainable
        assert tag.preprocessing.mean == tag.preprocessing.std == (0.5, 0.5, 0.5)
        assert wk.mode_of(tag.name) == "tf" and "Rescaling" in tag.notes
    from keras.src.applications import mobilenet_v3 as km

    # Keras' file names and MD5s: its WEIGHTS_HASHES, one configuration each.
    assert len(km.WEIGHTS_HASHES) == len(CONFIGS)
    for model_name, (md5, notop_md5) in km.WEIGHTS_HASHES.items():
        top = next(
            t
            for t in map(weights.get_tag, weights.list_tags("keras_mobilenet_v3*"))
            if t.file_name == f"weights_mobilenet_v3_{model_name}.h5"
        )
        assert top.md5 == md5 and top.url == km.BASE_WEIGHT_PATH + top.file_name
        notop = weights.get_tag(top.name.replace(".keras_in1k", ".keras_notop_in1k"))
        assert notop.md5 == notop_md5
        assert notop.url == km.BASE_WEIGHT_PATH + f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"
    # The docstring's top-1 per checkpoint.
    assert weights.get_tag("keras_mobilenet_v3_large.keras_in1k").top1 == 75.6
    assert weights.get_tag("keras_mobilenet_v3_small_minimalistic.keras_in1k").top1 == 61.9


def test_preprocessing_is_kerass_rescaling_layer():
    x = images(8)
    # Keras' preprocess_input for MobileNetV3 passes input through; its model rescales with
    # Rescaling(1 / 127.5, offset=-1): our "tf" mode, and the tag's mean/std on [0, 1].
    from keras.applications import mobilenet_v3 as km

    np.testing.assert_array_equal(km.preprocess_input(x.copy()), x)
    inside = keras.ops.convert_to_numpy(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x))
    np.testing.assert_allclose(wk.preprocess_input(x, "tf"), inside, rtol=1e-6, atol=1e-6)
    p = weights.get_tag("keras_mobilenet_v3_small.keras_in1k").preprocessing
    via_tag = (torch.from_numpy(x) / 255 - torch.tensor(p.mean)) / torch.tensor(p.std)
    torch.testing.assert_close(via_tag, torch.from_numpy(inside))


def test_summary_keras_counts_as_keras(capsys):
    from nets.__main__ import main
    from nets.summary import keras_variant

    assert keras_variant("MobileNetV3Small") == ("keras_mobilenet_v3_small", "MobileNetV3Small")
    assert main(["summary", "MobileNetV3Small", "--keras"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 2,554,968" in out
    assert "Trainable params: 2,542,856" in out
    assert "Non-trainable params: 12,112" in out
    assert "keras.applications.MobileNetV3Small" in out
    assert main(["summary", "keras_mobilenet_v3_large_075", "--keras"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 4,012,616" in out
    assert "keras.applications.MobileNetV3Large(alpha=0.75)" in out
    assert main(["list", "keras_mobilenet_v3*"]) == 0
    listed = capsys.readouterr().out
    assert all(arch in listed for arch in CONFIGS)


def test_block_tables_agree_with_the_models(keras_files):
    # The loading path reads our grouping of Keras' blocks into stages from the model's keys;
    # the tables (by_resolution of Keras' strides) serve a conversion without a model, and
    # must say the same; that conversion gives the same state dict.
    from weights.keras import mobilenet_v3, record
    from weights.layouts import block_prefixes

    for arch in CONFIGS:
        size = "large" if "large" in arch else "small"
        with torch.device("meta"):
            keys = list(nets.create_model(arch).state_dict())
        table = record.by_resolution(mobilenet_v3.MOBILENET_V3_STRIDES[size])
        assert block_prefixes(keys, record.DEPTHWISE) == table, arch
    arch = "keras_mobilenet_v3_small_075"
    _, path = keras_files(arch)
    converted = keras_format.convert(arch, read_keras_h5(path)[0])
    loaded = nets.create_model(arch, weights=path).state_dict()
    assert converted.keys() == {k for k in loaded if "num_batches_tracked" not in k}
    for key, value in converted.items():
        torch.testing.assert_close(value, loaded[key], rtol=0, atol=0)
