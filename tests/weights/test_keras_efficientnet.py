"""Keras' EfficientNetB0 .. B7: parity with Keras 3 (torch backend) on Keras-saved legacy .h5
files with random weights, the preprocessing read from the file, counts, identification.

Each parity test builds ``keras.applications.EfficientNetB<n>(weights=None)`` with random
weights, BatchNorm statistics set from a batch of other images (``calibrate``: random
statistics let the signal die out) and its Normalization layer given non-trivial mean and
variance (so a preprocessing that ignored the file would show), saves it as the legacy
.h5 the ImageNet files are, loads that file with ``create_model`` and compares on the same
0..255 images, each side with its own pipeline: Keras' model holds its preprocessing (its
``preprocess_input`` is a pass-through); ours is a plain network fed ``(x / 255 - mean) / std``
with the mean/std the loaded weights carry (the file's metadata: what ``weights.transforms``
and ``classify`` use). The include_top=False file is the same file without its classifier
layer (Keras' notop file holds exactly the other layers), compared with Keras' pooled
features from the same forward pass; B0's notop file is also made by a Keras notop model, in
the test of the published files' rule. Tolerance: 1e-4 of the largest output magnitude.

Sizes: the smallest input Keras allows (32) for B1 .. B7; B0 at 40, where the stride-2 convs
meet odd maps (5 and 3), on which Keras' correct_pad and TF's SAME pad (k // 2, k // 2).
Keras' model building dominates the time (B7: seconds even at 32); B4 .. B7 are marked slow.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import n_params  # noqa: E402

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
from keras.src.applications import efficientnet as keras_efficientnet  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402
from keras_reference import _randomize_bn, assert_close, calibrate_bn, images  # noqa: E402

import nets  # noqa: E402
import weights  # noqa: E402
import weights.keras as wk  # noqa: E402
from nets.summary import count  # noqa: E402
from weights.io import read_keras_h5  # noqa: E402
from weights.keras import conversion as keras_format  # noqa: E402

# keras.applications.EfficientNetB<n>(weights=None): count_params() and the sum of its
# trainable weights' sizes (Keras 3.15.1, with the top and with include_top=False,
# pooling="avg"); the non-trainable rest is BatchNorm's moving statistics plus the
# Normalization layer's mean, variance and count (3 + 3 + 1). Ours = Keras' trainable.
# B0 with the top and without is checked live below, each size's top in its parity test.
KERAS_COUNTS = {  # arch: ((total, trainable) with the top, (total, trainable) without)
    "keras_efficientnet_b0": ((5_330_571, 5_288_548), (4_049_571, 4_007_548)),
    "keras_efficientnet_b1": ((7_856_239, 7_794_184), (6_575_239, 6_513_184)),
    "keras_efficientnet_b2": ((9_177_569, 9_109_994), (7_768_569, 7_700_994)),
    "keras_efficientnet_b3": ((12_320_535, 12_233_232), (10_783_535, 10_696_232)),
    "keras_efficientnet_b4": ((19_466_823, 19_341_616), (17_673_823, 17_548_616)),
    "keras_efficientnet_b5": ((30_562_527, 30_389_784), (28_513_527, 28_340_784)),
    "keras_efficientnet_b6": ((43_265_143, 43_040_704), (40_960_143, 40_735_704)),
    "keras_efficientnet_b7": ((66_658_687, 66_347_960), (64_097_687, 63_786_960)),
}
NORMALIZATION_WEIGHTS = 3 + 3 + 1  # Keras' Normalization: mean, variance, count
# A user's own Normalization constants (not the published ones): Keras divides by
# sqrt(variance) and nothing more.
USER_MEAN = (0.45, 0.5, 0.4)
USER_VARIANCE = (0.05, 0.08, 0.12)


def set_normalization(model, mean, variance) -> None:
    layer = next(lay for lay in model.layers if isinstance(lay, keras.layers.Normalization))
    layer.set_weights(
        [np.asarray(mean, "float32"), np.asarray(variance, "float32"), np.asarray(1000, "int64")]
    )


def save_h5(model, path) -> str:
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def keras_efficientnet_h5(tmp_path, b: int, size: int, *, include_top=True, seed=0):
    """EfficientNetB<b>(weights=None) with random weights and the user's Normalization
    constants, saved as the legacy .h5; returns (model, path)."""
    keras.utils.set_random_seed(seed)
    top = dict(classifier_activation=None) if include_top else dict(pooling="avg")
    app = getattr(keras.applications, f"EfficientNetB{b}")
    model = app(weights=None, include_top=include_top, input_shape=(size, size, 3), **top)
    _randomize_bn(model, seed)
    set_normalization(model, USER_MEAN, USER_VARIANCE)
    calibrate_bn(model, size)  # the model normalises 0..255 input itself
    name = f"efficientnetb{b}{'' if include_top else '_notop'}.h5"
    return model, save_h5(model, tmp_path / name)


def ours_out(model, x: np.ndarray, mean=None, std=None) -> torch.Tensor:
    """What a user of ours does: 0..255 -> [0, 1] -> the loaded weights' mean/std."""
    p = model.pretrained_cfg["preprocessing"]
    mean, std = (
        torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)
        for v in (mean or p.mean, std or p.std)
    )
    t = (torch.from_numpy(x).permute(0, 3, 1, 2) / 255.0 - mean) / std
    with torch.no_grad():
        return model.eval()(t)


def matching(path) -> list[str]:
    """Every keras.applications model whose signature a file matches (exactly one, or the
    order of identify's search would matter)."""
    sd, _ = read_keras_h5(path)
    sd = keras_format.normalise(sd)
    layers = keras_format.layer_names(sd)
    return [n for n, m in keras_format.MODELS.items() if m.signature.matches(sd, layers)]


def check_parity(tmp_path, b: int, size: int) -> str:
    """Returns the notop file's path."""
    arch = f"keras_efficientnet_b{b}"
    x = images(size)
    ref, path = keras_efficientnet_h5(tmp_path, b, size)
    both = keras.Model(ref.inputs, [ref.output, ref.get_layer("avg_pool").output])
    pre = keras_efficientnet.preprocess_input(x.copy())  # a pass-through: 0..255 in
    logits, features = (torch.as_tensor(keras.ops.convert_to_numpy(t)) for t in both(pre))
    assert (logits[0] - logits[1]).abs().max() > 0.02 * logits.abs().max()  # the input shows

    assert matching(path) == [f"EfficientNetB{b}"]
    ours = nets.create_model(arch, weights=path)
    # The file's own constants, as Keras uses them for a weights=None model.
    p = ours.pretrained_cfg["preprocessing"]
    assert p.mean == pytest.approx(USER_MEAN, rel=1e-6)
    assert p.std == pytest.approx(tuple(np.sqrt(USER_VARIANCE)), rel=1e-6)
    assert p.input_size == nets.get_spec(arch).input_size
    assert_close(ours_out(ours, x), logits)
    totals = count(ours)
    trainable = sum(int(np.prod(w.shape)) for w in ref.trainable_weights)
    assert totals.trainable == trainable == KERAS_COUNTS[arch][0][1]
    assert totals.total + NORMALIZATION_WEIGHTS == ref.count_params() == KERAS_COUNTS[arch][0][0]
    assert n_params(ours) == weights.get_tag(f"{arch}.keras_in1k").num_params
    del ours

    with h5py.File(path, "a") as f:  # the notop file: every layer but the classifier
        del f["predictions"]
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        f.attrs["layer_names"] = [n for n in names if n != "predictions"]
    assert matching(path) == [f"EfficientNetB{b}"]
    ours = nets.create_model(arch, weights=path, include_top=False, pooling="avg")
    assert_close(ours_out(ours, x), features)
    assert n_params(ours) == weights.get_tag(f"{arch}.keras_notop_in1k").num_params
    with pytest.raises(weights.IncompatibleCheckpointError, match="notop"):
        nets.create_model(arch, weights=path)
    return path


# -- parity, size by size --------------------------------------------------------------------
@pytest.mark.parity("keras_efficientnet_b0")
def test_b0(tmp_path):
    path = check_parity(tmp_path, 0, 40)
    # The notop B0 file for B1, or for torchvision's layout: the one-line error says where
    # it loads.
    with pytest.raises(
        weights.CheckpointFormatError, match="EfficientNetB0.*'keras_efficientnet_b0'.*not"
    ) as err:
        nets.create_model("keras_efficientnet_b1", weights=path, include_top=False)
    assert "\n" not in str(err.value)
    with pytest.raises(weights.CheckpointFormatError, match="EfficientNetB0"):
        nets.create_model("efficientnet_b0", weights=path)
    # Converted to our format, the file keeps its own preprocessing (not the tag's).
    from nets.__main__ import main

    out = tmp_path / "b0_notop.safetensors"
    assert main(["convert", path, "--arch", "keras_efficientnet_b0", "-o", str(out)]) == 0
    p = weights.Preprocessing.from_metadata(weights.read_checkpoint(out)[1])
    assert p.mean == pytest.approx(USER_MEAN) and p.std == pytest.approx(np.sqrt(USER_VARIANCE))


@pytest.mark.parity("keras_efficientnet_b1", "keras_efficientnet_b2", "keras_efficientnet_b3")
@pytest.mark.parametrize("b", [1, 2, 3])
def test_b1_b3(tmp_path, b):
    check_parity(tmp_path, b, 32)


@pytest.mark.slow
@pytest.mark.parity(*(f"keras_efficientnet_b{b}" for b in (4, 5, 6, 7)))
@pytest.mark.parametrize("b", [4, 5, 6, 7])
def test_b4_b7(tmp_path, b):
    check_parity(tmp_path, b, 32)


def test_published_files_rule_matches_keras_imagenet_model(tmp_path, monkeypatch):
    # A file with the published constants (mean = ImageNet's, variance = ImageNet's std,
    # tensorflow/tensorflow#49930) in the model Keras builds for its ImageNet files:
    # EfficientNetB0(weights="imagenet"), which adds Rescaling(1 / sqrt(IMAGENET_STDDEV_RGB)).
    # Its download and loading are stubbed out (no network); the model's own random weights,
    # with the published constants, are then saved as the file, as a user's fine-tuned copy
    # of the ImageNet weights would be. Ours: the tag's preprocessing.
    size, x = 40, images(40)
    monkeypatch.setattr(keras_efficientnet.file_utils, "get_file", lambda *a, **k: "stub.h5")
    monkeypatch.setattr(keras.Model, "load_weights", lambda self, *a, **k: None)
    keras.utils.set_random_seed(2)
    ref = keras.applications.EfficientNetB0(
        weights="imagenet", include_top=False, input_shape=(size, size, 3), pooling="avg"
    )
    monkeypatch.undo()
    assert sum(isinstance(lay, keras.layers.Rescaling) for lay in ref.layers) == 2
    _randomize_bn(ref, 2)
    set_normalization(ref, keras_format.EFFICIENTNET_MEAN_RGB, keras_format.IMAGENET_STDDEV_RGB)
    calibrate_bn(ref, size)
    path = save_h5(ref, tmp_path / "efficientnetb0_notop.h5")
    features = torch.as_tensor(keras.ops.convert_to_numpy(ref(x)))
    # Keras' own counts without the top, B0 (the recorded table's source).
    trainable = sum(int(np.prod(w.shape)) for w in ref.trainable_weights)
    assert (ref.count_params(), trainable) == KERAS_COUNTS["keras_efficientnet_b0"][1]

    tag = weights.get_tag("keras_efficientnet_b0.keras_notop_in1k")
    meta = keras_format.file_metadata(read_keras_h5(path)[0])
    assert meta["keras_normalization"] == "published" and meta["keras_top"] == "False"
    from_file = weights.Preprocessing.from_metadata(meta)
    assert from_file == weights.get_tag("keras_efficientnet_b0.keras_in1k").preprocessing
    assert from_file == tag.preprocessing
    ours = nets.create_model("keras_efficientnet_b0", weights=path, include_top=False)
    assert ours.pretrained_cfg["preprocessing"] == tag.preprocessing
    assert_close(ours_out(ours, x), features)
    # Without Keras' extra Rescaling (std = sqrt(variance) only) the features would differ.
    plain = ours_out(ours, x, std=tuple(float(v) ** 0.5 for v in keras_format.IMAGENET_STDDEV_RGB))
    assert (plain - features).abs().max() > 1e-2 * features.abs().max()


def test_tag_preprocessing_is_keras_arithmetic():
    # Keras: x / 255, (x - mean) / sqrt(variance), * 1 / sqrt(IMAGENET_STDDEV_RGB), with the
    # published variance = IMAGENET_STDDEV_RGB; ours: (x / 255 - mean) / std.
    x = images(8)
    mean = np.asarray(keras_format.EFFICIENTNET_MEAN_RGB, "float32")
    var = np.asarray(keras_efficientnet.IMAGENET_STDDEV_RGB, "float32")
    keras_way = (x / 255 - mean) / np.sqrt(var) / np.sqrt(var)
    assert tuple(keras_efficientnet.IMAGENET_STDDEV_RGB) == keras_format.IMAGENET_STDDEV_RGB
    for b in range(8):
        for kind in ("keras", "keras_notop"):
            tag = weights.get_tag(f"keras_efficientnet_b{b}.{kind}_in1k")
            assert wk.mode_of(tag.name) == "efficientnet"
            p = tag.preprocessing
            assert p.input_size == (224, 240, 260, 300, 380, 456, 528, 600)[b]
            assert p.interpolation == "bilinear" and p.resize_size == round(p.input_size / 0.875)
            ours = (x / 255 - np.asarray(p.mean)) / np.asarray(p.std)
            np.testing.assert_allclose(ours, keras_way, rtol=1e-5, atol=1e-5)
            assert "Normalization" in tag.notes and "49930" in tag.notes
    # Keras' preprocess_input is a pass-through; ours for this mode is what its model does.
    np.testing.assert_array_equal(keras_efficientnet.preprocess_input(x.copy()), x)
    np.testing.assert_allclose(
        wk.preprocess_input(x, "efficientnet"), keras_way, rtol=1e-5, atol=1e-5
    )


def test_counts_tags_and_summary(capsys):
    from nets.__main__ import main

    for arch, ((total, trainable), (total_notop, trainable_notop)) in KERAS_COUNTS.items():
        with torch.device("meta"):
            with_top = count(nets.create_model(arch))
            without = count(nets.create_model(arch, include_top=False))
        assert with_top.trainable == trainable == n_params_tag(arch, "keras")
        assert without.trainable == trainable_notop == n_params_tag(arch, "keras_notop")
        assert with_top.total + NORMALIZATION_WEIGHTS == total
        assert without.total + NORMALIZATION_WEIGHTS == total_notop
        top = weights.get_tag(f"{arch}.keras_in1k")
        b = arch[-1]
        assert top.url == f"https://storage.googleapis.com/keras-applications/efficientnetb{b}.h5"
        assert top.md5 == keras_efficientnet.WEIGHTS_HASHES[f"b{b}"][0]
        notop = weights.get_tag(f"{arch}.keras_notop_in1k")
        assert notop.url.endswith(f"efficientnetb{b}_notop.h5")
        assert notop.md5 == keras_efficientnet.WEIGHTS_HASHES[f"b{b}"][1]
        assert weights.default_tag(arch) == top.name
    assert main(["summary", "EfficientNetB0", "--keras"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 5,330,571" in out and "Trainable params: 5,288,548" in out
    assert "Non-trainable params: 42,023" in out and "keras.applications.EfficientNetB0" in out


def n_params_tag(arch: str, kind: str) -> int:
    return weights.get_tag(f"{arch}.{kind}_in1k").num_params


def test_keras_architecture_constants():
    # Ours follows Keras' builder: the arguments of each size (read from Keras' source), the
    # block count, eps 1e-3, SE to int(block input * 0.25) with biased convs.
    from weights.keras.efficientnet import efficientnet_blocks

    for b in range(8):
        arch = f"keras_efficientnet_b{b}"
        width, depth, size, dropout = keras_efficientnet_args(b)
        assert nets.get_spec(arch).input_size == size
        with torch.device("meta"):
            m = nets.create_model(arch)
        assert m.head.drop.p == dropout
        assert {mod.eps for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)} == {1e-3}
        blocks = [blk for stage in m.stages for n, blk in stage.named_children() if n.isdigit()]
        assert len(blocks) == len(efficientnet_blocks(depth))
        for blk in blocks:
            expand = getattr(blk, "expand", None)
            in_chs = (expand or blk.depthwise).conv.in_channels
            assert blk.attn.reduce.out_channels == max(1, int(in_chs * 0.25))
            assert blk.attn.reduce.bias is not None and blk.attn.expand.bias is not None
        # Keras' top conv: round_filters(1280) at the width coefficient.
        assert m.stages[-1].conv_head.conv.out_channels == round_filters(1280, width)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Keras' round_filters (efficientnet.py), restated to check ours against."""
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * filters else new)


def keras_efficientnet_args(b: int) -> tuple[float, float, int, float]:
    """(width, depth, size, dropout) as keras.applications.EfficientNetB<b> passes them."""
    import inspect

    src = inspect.getsource(getattr(keras_efficientnet, f"EfficientNetB{b}"))
    args = src.split("return EfficientNet(", 1)[1].split(",")[:4]
    width, depth, size, dropout = (float(a.strip()) for a in args)
    return width, depth, int(size), dropout


def test_no_signature_collides():
    # The EfficientNet signatures match none of the other applications' layer names (each
    # one's move table and signature layers, as a file of it would hold them), whatever the
    # widths; the other way round, each parity test checks that its file matches one model.
    ours = [n for n in keras_format.MODELS if n.startswith("EfficientNet")]
    for name, m in keras_format.MODELS.items():
        if name in ours:
            continue
        names = {mv.keras for mv in m.moves} | set(m.signature.layers)
        for width in {*(keras_format.MODELS[n].signature.widths["top_conv/kernel"] for n in ours)}:
            sd = {f"{n}/kernel": torch.zeros(1, 1, 1, width) for n in names}
            layers = keras_format.layer_names(sd)
            assert not [n for n in ours if keras_format.MODELS[n].signature.matches(sd, layers)]
