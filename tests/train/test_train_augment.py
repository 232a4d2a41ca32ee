"""train: ``--augment auto`` decided from the images, and the in-memory image cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import nets
import train
from train.augment import (
    EXPLICIT,
    BatchNormalize,
    ImageStats,
    choose_augment,
    eval_geometry,
    inspect_images,
    resolve_augment,
    train_geometry,
)
from train.datasets import eval_transform, load_data
from train.memory_cache import image_data

LENET = nets.create_model("lenet5").pretrained_cfg.preprocessing
LITE0 = nets.create_model("efficientnet_lite0").pretrained_cfg.preprocessing


def digit_folder(root, size=28, per_class=6, classes=(0, 1, 2)):
    """The bundled digits as ``size`` x ``size`` grayscale PNGs, one folder per digit."""
    images, labels = train.load_digits_arrays()
    for c in classes:
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == c)[:per_class]:
            train.datasets.digits_image(images[i]).resize((size, size)).save(
                root / str(c) / f"{i}.png"
            )
    return root


def photo_folder(root, per_class=3, mode="RGB"):
    """500x375 JPEGs of random noise, three classes."""
    rng = np.random.default_rng(0)
    for c in ("cat", "cup", "rocket"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / c / f"{k}.jpg")
    return root


def kinds(transform) -> list[type]:
    return [type(t) for t in transform.transforms]


def only(transform, kind):
    (found,) = [t for t in transform.transforms if isinstance(t, kind)]
    return found


def test_small_grayscale_folder_gets_the_light_affine_without_flips(tmp_path):
    data = load_data(str(digit_folder(tmp_path / "d")), val_split=0.5)
    stats = inspect_images(data.train)
    assert (stats.width, stats.height, stats.grayscale) == (28, 28, True)
    aug = resolve_augment("auto", stats, min(data.counts("train")))
    assert aug.name == "light" and "small images" in aug.reason and "no flip" in aug.reason
    assert "28x28 grayscale (median of 9 sampled), 3 in the smallest class" in aug.reason
    geometry = train_geometry(LENET, aug)
    assert v2.RandomHorizontalFlip not in kinds(geometry)
    assert v2.RandomResizedCrop not in kinds(geometry)
    affine = only(geometry, v2.RandomAffine)
    assert affine.degrees == [-10.0, 10.0] and affine.translate == (0.08, 0.08)
    assert affine.scale == (0.9, 1.1)
    assert only(geometry, v2.CenterCrop).size == (32, 32)
    out = geometry(torch.zeros(1, 28, 28, dtype=torch.uint8))
    assert out.shape == (1, 32, 32) and out.dtype == torch.uint8


def test_photo_folder_keeps_the_standard_crop_and_flip(tmp_path):
    data = load_data(str(photo_folder(tmp_path / "p")), val_split=0.34)
    stats = inspect_images(data.train)
    assert (stats.width, stats.height, stats.grayscale) == (500, 375, False)
    aug = resolve_augment("auto", stats, min(data.counts("train")))
    assert aug == EXPLICIT["standard"].__class__(**{**EXPLICIT["standard"].__dict__,
                                                   "reason": aug.reason})  # fmt: skip
    geometry = train_geometry(LITE0, aug)
    crop = only(geometry, v2.RandomResizedCrop)
    assert crop.size == (224, 224) and crop.scale == (0.25, 1.0)
    assert only(geometry, v2.RandomHorizontalFlip).p == 0.5
    assert v2.RandomAffine not in kinds(geometry)


def test_large_grayscale_is_not_flipped_and_large_sets_crop_down_to_8_percent(tmp_path):
    data = load_data(str(photo_folder(tmp_path / "g", mode="L")), val_split=0.34)
    aug = resolve_augment("auto", inspect_images(data.train), 2)
    assert (aug.geometry, aug.flip, aug.min_scale) == ("resized-crop", False, 0.25)
    assert v2.RandomHorizontalFlip not in kinds(train_geometry(LITE0, aug))
    many = choose_augment(inspect_images(data.train), 1000)
    assert many.min_scale == 0.08 and "crops to 8%" in many.name
    assert only(train_geometry(LITE0, many), v2.RandomResizedCrop).scale == (0.08, 1.0)


def test_small_colour_images_get_the_affine_and_flips():
    cifar = ImageStats(sampled=48, width=32, height=32, grayscale=False, mean_pixels=1024.0)
    aug = choose_augment(cifar, 5000)
    assert (aug.name, aug.geometry, aug.flip) == ("light + flip", "affine", True)
    geometry = train_geometry(LITE0, aug)
    assert only(geometry, v2.RandomHorizontalFlip).p == 0.5
    assert v2.RandomResizedCrop not in kinds(geometry)


def test_bundled_digits_get_light_as_before():
    data = load_data("digits")
    stats = inspect_images(data.train)
    assert (stats.width, stats.height, stats.grayscale) == (8, 8, True)
    aug = resolve_augment("auto", stats, min(data.counts("train")))
    assert (aug.name, aug.geometry, aug.flip) == ("light", "affine", False)
    assert kinds(train_geometry(LENET, aug)) == kinds(train_geometry(LENET, EXPLICIT["light"]))


def test_validation_pixels_equal_the_eval_transform(tmp_path):
    """Validation in the trainer (uint8 geometry, batch normalisation) sees exactly what
    ``train eval`` and ``predict`` see (``weights.transforms`` per image)."""
    data = load_data(str(photo_folder(tmp_path / "p", per_class=2)), val_split=0.5)
    path = data.val[0][0]
    image = Image.open(path).convert("RGB")
    ours = BatchNormalize(LITE0, 3)(eval_geometry(LITE0)(v2.functional.pil_to_tensor(image))[None])
    torch.testing.assert_close(ours[0], eval_transform(LITE0, 3)(image), rtol=0, atol=0)


def batches_of(images, seed: int, epochs: int = 2, batch_size: int = 5) -> list:
    """The training batches of ``epochs`` epochs, each reseeded as ``fit`` reseeds it."""
    out = []
    for epoch in range(epochs):
        torch.manual_seed(seed + epoch)
        gen = torch.Generator().manual_seed(seed * 7919 + epoch)
        loader = torch.utils.data.DataLoader(
            images.train,
            batch_size=batch_size,
            shuffle=True,
            generator=gen,
            collate_fn=images.collate,
        )
        out += list(loader)
    return out


@pytest.mark.parametrize("augment", ["light", "standard"])
def test_the_memory_cache_gives_the_disk_path_batches(tmp_path, augment):
    root = digit_folder(tmp_path / "d", size=40)
    (root / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    data = load_data(str(root), val_split=0.3)
    stats = inspect_images(data.train)
    aug = resolve_augment(augment, stats, 4)
    # The cache is decoded in a loader process, as on a machine with more cores.
    memory = image_data(data, LENET, 1, aug, stats=stats, cache_memory=1.0, workers=1)
    disk = image_data(data, LENET, 1, aug, stats=stats, cache_memory=0, workers=0)
    assert memory.cached and memory.train.cache is not None and "caching: decoded" in memory.note
    assert not disk.cached and disk.train.cache is None and "streaming" in disk.note
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        a, b = batches_of(memory, seed=3), batches_of(disk, seed=3)
    assert len(a) == len(b) == 2 * -(-len(data.train) // 5)  # two epochs, batches of 5
    for (xa, ya, sa), (xb, yb, sb) in zip(a, b, strict=True):
        assert xa.dtype == torch.float32 and torch.equal(xa, xb)
        assert torch.equal(ya, yb) and sa == sb
    assert any("broken.png" in name for _, _, names in a for name in names)
    # Per-sample randomness: one image eight times in a batch comes out eight ways.
    memory.train.items = [data.train[0]] * 8
    memory.train.cache = [memory.train.cache[0]] * 8
    x, _, _ = batches_of(memory, seed=3, epochs=1, batch_size=8)[0]
    assert len({tuple(v.flatten().tolist()) for v in x}) == 8


def test_a_folder_over_the_budget_streams_from_disk(tmp_path):
    data = load_data(str(digit_folder(tmp_path / "d")), val_split=0.5)
    stats = inspect_images(data.train)
    tiny = 1e-6  # GiB: about 1 KiB, less than two 28x28 images
    aug = EXPLICIT["light"]
    estimated = image_data(data, LENET, 1, aug, stats=stats, cache_memory=tiny, workers=0)
    assert not estimated.cached and estimated.train.cache is None
    assert (
        "streaming 18 images from disk" in estimated.note
        and "over --cache-memory" in estimated.note
    )
    # No estimate (no header readable): decoding starts and stops at the budget.
    decoded = image_data(data, LENET, 1, aug, stats=None, cache_memory=tiny, workers=0)
    assert not decoded.cached and decoded.train.cache is None and "outgrew" in decoded.note
    x, y = decoded.train[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.uint8


def test_the_run_says_what_it_chose_and_caches(tmp_path, capsys):
    root = digit_folder(tmp_path / "d", per_class=5)
    res = train.fit(model="lenet5", data=str(root), strategy="scratch", epochs=1, num_workers=0,
                    progress=False, out=str(tmp_path / "run"), val_split=0.4)  # fmt: skip
    out = capsys.readouterr().out
    assert "defaults for scratch (train.config.DEFAULTS): lr 0.003 (adamw), 1 warm-up" in out
    assert "augment: light (" in out and "28x28 grayscale" in out
    assert "caching: decoded 15 images once into memory" in out
    assert res["augment"] == "light" and res["images_in_memory"] is True
    assert res["schedule"] == {"epochs": 1, "lr": 0.003, "warmup_epochs": 1.0}
