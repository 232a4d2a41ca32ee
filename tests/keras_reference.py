"""Keras 3 (torch backend) as the reference for our Keras conversions: random keras.applications
models saved in the legacy HDF5 layout of the ImageNet files, and the parity check of our
model loaded from such a file. Used by the Keras tests of every family.

Importing this module skips the importing test module where Keras or h5py is missing.
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

import nets  # noqa: E402
import weights  # noqa: E402
import weights.keras as wk  # noqa: E402
from nets.summary import count  # noqa: E402
from weights.keras import conversion as keras_format  # noqa: E402


def _randomize_bn(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            values = []
            for w in layer.weights:
                n = w.shape[0]
                if "moving_variance" in w.path:
                    values.append(rng.uniform(0.75, 1.25, n))
                elif "moving_mean" in w.path:
                    values.append(rng.uniform(-0.2, 0.2, n))
                elif "gamma" in w.path:
                    values.append(rng.uniform(0.75, 1.25, n))
                else:
                    values.append(rng.uniform(-0.1, 0.1, n))
            layer.set_weights([v.astype("float32") for v in values])


def calibrate_bn(model, size: int, preprocess=None) -> None:
    """BatchNorm's moving statistics from a batch of 32 other random images (momentum 0, a
    training-mode pass; gamma and beta stay random), the variances then widened by 10%.

    With statistics drawn at random, the signal of deep networks (EfficientNet, the
    MobileNets, Inception, Xception) dies out over their blocks: every image gives the same
    logits to 1e-6, and a wrong preprocessing or a swapped early layer would pass. At exactly
    one batch's statistics some are chaotic instead: float32 rounding grows to 1e-2 of the
    logits. 10% wider keeps the images apart (``assert_close`` checks it) and the rounding at
    1e-6. (The same for torch models: conftest.calibrate_bn.)"""
    norms = [lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization)]
    if not norms:
        return
    for layer in norms:
        layer.momentum = 0.0
    x = images(size, n=32, seed=5)
    model(preprocess(x) if preprocess else x, training=True)
    for layer in norms:
        layer.momentum = 0.99
        weights_ = layer.get_weights()
        weights_[-1] = weights_[-1] * 1.1  # the moving variance is the last of them
        layer.set_weights(weights_)


def keras_h5(
    tmp_path, app: str, *, size: int, include_top: bool = True, seed: int = 0, module: str = ""
):
    """keras.applications.<app> with random weights, BatchNorm statistics measured on images
    preprocessed as keras.applications.<module> does, saved as the legacy .h5 the ImageNet
    files are; returns (model, path)."""
    keras.utils.set_random_seed(seed)
    kwargs = dict(weights=None, include_top=include_top, input_shape=(size, size, 3))
    if include_top:
        kwargs["classifier_activation"] = None  # logits, as ours return
    else:
        kwargs["pooling"] = "avg"
    model = getattr(keras.applications, app)(**kwargs)
    _randomize_bn(model, seed)
    pre = getattr(keras.applications, module).preprocess_input if module else None
    calibrate_bn(model, size, pre)
    path = tmp_path / f"{app}{'' if include_top else '_notop'}.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return model, str(path)


def images(size: int, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def keras_out(model, app_module: str, x: np.ndarray) -> torch.Tensor:
    pre = getattr(keras.applications, app_module).preprocess_input
    out = model(pre(x.copy()), training=False)
    return torch.as_tensor(keras.ops.convert_to_numpy(out))


def our_out(model, mode: str, x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(wk.preprocess_input(x, mode)).permute(0, 3, 1, 2)  # NHWC -> NCHW
    with torch.no_grad():
        return model.eval()(t)


def assert_close(ours: torch.Tensor, ref: torch.Tensor, tol: float = 1e-4) -> None:
    assert ours.shape == ref.shape
    scale = ref.abs().max().item()
    assert scale > 0
    err = (ours - ref).abs().max().item()
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"
    # The images must give outputs far apart beyond the tolerance: with random BatchNorm
    # statistics a deep network's signal can die out, leaving logits that do not depend on
    # the input, and a wrong preprocessing or layout would then pass unseen.
    if len(ref) > 1:
        spread = (ref[0] - ref[1]).abs().max().item()
        assert spread > 100 * tol * scale, f"images differ by {spread:.3g}, scale {scale:.3g}"


def check_parity(tmp_path, app, module, arch, mode, size, *, top=True, notop=True, tol=1e-4):
    x = images(size)
    if top:
        ref, path = keras_h5(tmp_path, app, size=size, module=module)
        ours = nets.create_model(arch, weights=path)
        assert_close(our_out(ours, mode, x), keras_out(ref, module, x), tol)
        totals = count(ours)
        assert totals.total == ref.count_params()
        assert totals.trainable == sum(int(np.prod(w.shape)) for w in ref.trainable_weights)
        # The file's preprocessing mode reaches the model (and so `classify`).
        assert ours.pretrained_cfg["preprocessing"].mean == keras_format.MODES[mode][0]
        del ref, ours
    if notop:
        ref, path = keras_h5(tmp_path, app, size=size, include_top=False, seed=1, module=module)
        ours = nets.create_model(arch, weights=path, include_top=False, pooling="avg")
        assert_close(our_out(ours, mode, x), keras_out(ref, module, x), tol)
        with pytest.raises(weights.IncompatibleCheckpointError, match="notop"):
            nets.create_model(arch, weights=path)
