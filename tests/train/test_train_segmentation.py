"""train --task segmentation (issue 17): joint augmentation, Dice + cross-entropy, IoU,
an end-to-end fit/predict/eval/resume, the strategies on a U-Net, and every bad input as
one line with exit code 2 and nothing written.

Fast by design: 32x32 images, a handful of them, ``unet_lenet5`` (92k parameters)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_line
from conftest import run_main as run
from PIL import Image
from torchvision import tv_tensors

import nets
import weights as wts
from train import checkpoint as ckpt
from train.__main__ import main
from train.errors import TrainError
from train.segmentation import (
    DiceCELoss,
    SegMeter,
    iou_from_confusion,
    joint_transform,
    load_seg_data,
    seg_augment,
    soft_dice_loss,
)
from train.shapes import SHAPE_CLASSES, write_segmentation_folder
from train.strategy import (
    apply_freezing,
    build_model,
    choose_segmentation_strategy,
    has_default_weights,
    param_groups,
    starting_weights,
)


@pytest.fixture(scope="module")
def shapes(module_dir) -> Path:
    root = write_segmentation_folder(module_dir, n_train=8, n_val=4, size=32, seed=1)
    # Unlabelled pixels in one training mask: 255 is the ignore index, never an error.
    mask_path = root / "train" / "masks" / "train0000.png"
    mask = np.array(Image.open(mask_path))
    mask[:4, :4] = 255
    Image.fromarray(mask, "P").save(mask_path)
    return root


def tiny_folder(root: Path, n: int = 2, size: int = 16) -> Path:
    """``n`` image/mask pairs and two classes, for the bad-input cases to spoil."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.new("RGB", (size, size), (i * 40, 90, 20)).save(root / "images" / f"im{i}.png")
        mask = np.zeros((size, size), np.uint8)
        mask[: size // 2] = 1
        Image.fromarray(mask, "L").save(root / "masks" / f"im{i}.png")
    (root / "classes.txt").write_text("background\nthing\n")
    return root


# -- augmentation --------------------------------------------------------------------------
@pytest.mark.parametrize("choice", ["standard", "light"])
def test_joint_augmentation_keeps_image_and_mask_aligned(choice):
    """The mask is the image's own pixels: class k is painted as the corner k of a square
    in (red, green), (40 or 200, 40 or 200), in random blocks. After the random crop/flip
    (or affine), every image pixel that the bilinear resize did not blend (it sits on a
    corner; a blend of corners lies between them, never on another) must decode to the
    mask's class there. A flip or crop applied to one and not the other breaks that."""
    g = np.random.default_rng(0)
    blocks = g.integers(0, 4, (6, 6))
    classes = np.kron(blocks, np.ones((8, 8), dtype=np.int64))  # 48x48, 8x8 blocks
    red, green = 40 + 160 * (classes & 1), 40 + 160 * (classes >> 1)
    pixels = np.stack([red, green, np.zeros_like(red)]).astype(np.uint8)
    image = tv_tensors.Image(torch.from_numpy(pixels))
    mask = tv_tensors.Mask(torch.from_numpy(classes))
    plain = wts.Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    transform = joint_transform(plain, 32, seg_augment(choice), 255, 3)
    torch.manual_seed(0)
    outputs = []
    for _ in range(12):
        x, y = transform(image, mask)
        assert x.shape == (3, 32, 32) and y.shape == (32, 32) and y.dtype == torch.int64
        bits = (x[:2] * 255 - 40) / 160  # (2, H, W): each 0 or 1 where unblended
        decoded = bits[0].round().long() + 2 * bits[1].round().long()
        pure = (bits - bits.round()).abs().amax(0) < 0.01
        labelled = y != 255  # the affine's border: unlabelled, not background
        if choice == "light":
            assert torch.all(x[0][~labelled] == 0)  # the image's fill where the mask is 255
        check = pure & labelled
        assert check.float().mean() > 0.4  # most of the map is checked, not a few pixels
        assert torch.equal(decoded[check], y[check])
        assert set(y.unique().tolist()) <= {0, 1, 2, 3, 255}  # nearest: no blended labels
        outputs.append(y)
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])  # per-sample draws


# -- loss and metrics ----------------------------------------------------------------------
def test_dice_ce_ignores_unlabelled_pixels():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :3] = 255
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    loss_fn = DiceCELoss(dice_weight=0.5, ignore_index=255)
    loss = loss_fn(logits, target)
    loss.backward()
    # No gradient reaches an unlabelled pixel, and changing its logits changes nothing.
    assert torch.all(logits.grad[:, :, :3] == 0)
    assert logits.grad[:, :, 3:].abs().sum() > 0
    other = logits.detach().clone()
    other[:, :, :3] = torch.randn(2, 3, 3, 8) * 10
    torch.testing.assert_close(loss_fn(other, target), loss.detach())
    # Only unlabelled pixels: zero, not NaN (which would stop the run as divergence).
    empty = loss_fn(logits, torch.full_like(target, 255))
    assert empty.item() == 0.0
    # A confident, right prediction has a Dice loss near 0; the weight scales it.
    perfect = torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2) * 50.0
    assert soft_dice_loss(perfect, target, 255) < 1e-3
    ce_only = DiceCELoss(dice_weight=0.0, ignore_index=255)(logits, target)
    dice = soft_dice_loss(logits, target, 255)
    torch.testing.assert_close(loss.detach(), (ce_only + 0.5 * dice).detach())


def test_iou_from_a_known_confusion_matrix():
    confusion = torch.tensor([[3, 1, 0], [1, 2, 0], [0, 0, 0]])
    r = iou_from_confusion(confusion)
    assert r["iou"][0] == pytest.approx(3 / 5)  # 3 hits, 1 missed, 1 falsely claimed
    assert r["iou"][1] == pytest.approx(2 / 4)
    assert r["iou"][2] is None  # neither present nor predicted: unknown, not 0
    assert r["miou"] == pytest.approx((0.6 + 0.5) / 2)
    assert r["pixel_acc"] == pytest.approx(5 / 7)


def test_meter_counts_labelled_pixels_only():
    target = torch.tensor([[[0, 1], [255, 1]]])
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1] = 1.0  # predicts class 1 everywhere
    meter = SegMeter(2, 255)
    meter.update(logits, target, 1.0)
    r = meter.result()
    assert r["confusion"] == [[0, 1], [0, 2]]
    assert r["pixels"] == 3 and r["pixel_acc"] == pytest.approx(2 / 3)
    assert r["iou"] == [0.0, pytest.approx(2 / 3)]


# -- end to end ----------------------------------------------------------------------------
def test_fit_predict_eval_and_resume(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["fit", "--task", "segmentation", "--model", "unet_lenet5", "--data", str(shapes),
            "--strategy", "scratch", "--batch-size", "4", "--no-progress", "--out", str(out),
            "--input-size", "32"]  # fmt: skip
    assert main([*args, "--epochs", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and metrics["classes"] == list(SHAPE_CLASSES)
    assert 0.0 <= metrics["miou"] <= 1.0 and set(metrics["iou"]) == set(SHAPE_CLASSES)
    assert metrics["val_pixels"] == 4 * 32 * 32  # every validation pixel is labelled
    assert metrics["val_images"] == 4
    # U-Nets' steps went either way in channels_last on the CPU (0.92-1.28x): contiguous there.
    assert metrics["channels_last"] is False
    for name in ("segmentation.png", "miou.png", "loss.png", "best.safetensors"):
        assert (out / name).is_file(), name
    assert "mean IoU" in capsys.readouterr().out

    # Resume: the checkpoint holds the task; a second epoch continues the first.
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and "val_miou" in log[1]
    state = ckpt.load_checkpoint(out / ckpt.CHECKPOINT)
    assert state["config"]["task"] == "segmentation" and state["epoch"] == 2
    with pytest.raises(TrainError, match="is segmentation, not classification"):
        ckpt.check_resume(state, "unet_lenet5", list(SHAPE_CLASSES), task="classification")

    # predict: a palette PNG at the image's own size (not the training size).
    odd = tmp_path / "odd.png"
    Image.open(shapes / "val" / "images" / "val0000.png").resize((45, 29)).save(odd)
    masks = tmp_path / "masks"
    capsys.readouterr()
    assert main(["predict", str(odd), "--checkpoint", str(out / "best.safetensors"),
                 "--masks", str(masks), "--output", str(tmp_path / "p.csv")]) == 0  # fmt: skip
    written = Image.open(masks / "odd.png")
    assert written.mode == "P" and written.size == (45, 29)
    assert set(np.unique(np.array(written))) <= set(range(len(SHAPE_CLASSES)))
    assert "odd.png" in (tmp_path / "p.csv").read_text()

    # eval reproduces the (resumed) run's final figures from the exported weights.
    metrics = json.loads((out / "metrics.json").read_text())
    assert main(["eval", "--checkpoint", str(out / "best.safetensors"),
                 "--data", str(shapes)]) == 0  # fmt: skip
    assert f"mean IoU {metrics['miou']:.2%}" in capsys.readouterr().out


# -- strategies ----------------------------------------------------------------------------
def test_feature_extract_freezes_the_encoder_and_trains_the_decoder():
    torch.manual_seed(0)
    model = build_model("unet_lenet5", 3, None, aux=False)
    freezing = apply_freezing(model, "feature-extract", head_bn_trains=True)
    freezing.set_train_mode(model, True)
    encoder = {k: v.clone() for k, v in model.stages.state_dict().items()}
    decoder = {k: v.clone() for k, v in model.head.state_dict().items()}
    groups = param_groups(model, 0.1, 0.0, 0.1, pretrained=True)
    opt = torch.optim.SGD(groups, lr=0.1)
    x, y = torch.randn(2, 1, 32, 32), torch.randint(0, 3, (2, 32, 32))
    DiceCELoss()(model(x), y).backward()
    opt.step()
    for k, v in model.stages.state_dict().items():  # weights and BatchNorm statistics
        torch.testing.assert_close(v, encoder[k], msg=k)
    changed = [k for k, v in model.head.state_dict().items() if not torch.equal(v, decoder[k])]
    assert any(k.startswith("fc.") for k in changed)
    assert any(k.startswith("decoder.") and k.endswith("weight") for k in changed)
    # The decoder's BatchNorms learn their statistics: they start from nothing.
    assert any(k.endswith("running_mean") for k in changed)


def test_unet_weights_are_the_encoders():
    assert has_default_weights("unet_efficientnet_lite0")
    assert not has_default_weights("unet")
    assert starting_weights("unet_efficientnet_lite0", "fine-tune", None) == "imagenet"
    with pytest.raises(TrainError, match="its encoder 'lenet5'"):
        starting_weights("unet_lenet5", "feature-extract", None)
    # The real Lite0 ImageNet weights (offline) land in the U-Net's stages, strictly.
    model = build_model("unet_efficientnet_lite0", 4, "imagenet", aux=False)
    ref = nets.create_model("efficientnet_lite0", weights="imagenet")
    torch.testing.assert_close(model.stages.state_dict(), ref.stages.state_dict())
    assert model.head.fc.out_channels == 4


def test_auto_never_probes_a_unet():
    assert choose_segmentation_strategy(200, has_weights=False)[0] == "scratch"
    assert choose_segmentation_strategy(200, has_weights=True)[0] == "feature-extract"
    assert choose_segmentation_strategy(5000, has_weights=True)[0] == "fine-tune"


# -- bad input -----------------------------------------------------------------------------
def _fit(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return ["fit", "--task", "segmentation", "--model", "unet_lenet5", "--data", str(data),
            "--strategy", "scratch", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "out"), *extra]  # fmt: skip


def _spoil_mask(root: Path, array: np.ndarray, mode: str) -> Path:
    path = root / "masks" / "im1.png"
    Image.fromarray(array, mode).save(path)
    return path


@pytest.mark.parametrize(
    "spoil, needles",
    [
        ("size", ["im1.png", "is 16x12 but its image", "is 16x16"]),
        ("index", ["im1.png", "class index 7", "names 2 classes (0..1; 255 = ignore)"]),
        ("rgb", ["im1.png", "is an RGB image, not class indices", "palette PNG"]),
        ("missing", ["im1.png", "has no mask"]),
    ],
)
def test_bad_masks_are_one_line_naming_the_file(tmp_path, capsys, spoil, needles):
    root = tiny_folder(tmp_path / "data")
    if spoil == "size":
        _spoil_mask(root, np.zeros((12, 16), np.uint8), "L")
    elif spoil == "index":
        values = np.zeros((16, 16), np.uint8)
        values[0, 0], values[1, 1] = 7, 255  # 255 is fine, 7 is not
        _spoil_mask(root, values, "L")
    elif spoil == "rgb":
        _spoil_mask(root, np.zeros((16, 16, 3), np.uint8), "RGB")
    else:
        (root / "masks" / "im1.png").unlink()
    one_line(*run(capsys, *_fit(tmp_path, root)), *needles)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_a_palette_mask_is_class_indices(tmp_path):
    root = tiny_folder(tmp_path / "data")
    values = np.zeros((16, 16), np.uint8)
    values[8:] = 1
    p = Image.fromarray(values, "P")
    p.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    p.save(root / "masks" / "im1.png")
    data = load_seg_data(str(root))
    assert data.counts("train") + data.counts("val") == [1, 1, 1, 1]  # both classes, 2 masks


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--model", "resnet18"],
         ["--task segmentation needs a U-Net (unet or unet_<model>), got resnet18"]),
        (["--model", "unet_resnet05"], ["unknown model 'resnet05'"]),
        (["--strategy", "linear-probe"], ["linear-probe makes no sense for segmentation"]),
        (["--task", "classification"], ["unet_lenet5 is a segmentation network"]),
        (["--task", "classification", "--model", "lenet5", "--input-size", "64"],
         ["--input-size is for --task segmentation", "got 64"]),
        (["--max-per-class", "3"], ["--max-per-class", "leave it out"]),
        (["--normalize-on-device"], ["--normalize-on-device is for classification"]),
        (["--task", "detection"], ["--task"]),
    ],
)  # fmt: skip
def test_bad_options_are_one_line(tmp_path, capsys, argv, needles):
    root = tiny_folder(tmp_path / "data")
    args = _fit(tmp_path, root) + argv
    if argv[0] == "--task" and argv[1] == "detection":
        with pytest.raises(SystemExit) as exc:  # argparse's choices: its own usage + exit 2
            main(args)
        assert exc.value.code == 2
        return
    one_line(*run(capsys, *args), *needles)
    assert not (tmp_path / "out").exists()


def test_no_classes_file(tmp_path, capsys):
    root = tiny_folder(tmp_path / "data")
    (root / "classes.txt").unlink()
    one_line(*run(capsys, *_fit(tmp_path, root)), "has no classes.txt")


def test_shapes_is_generated_once_into_the_cache(tmp_path, monkeypatch, capsys):
    import train.shapes
    from train.shapes import shapes_folder

    monkeypatch.setenv(wts.store.CACHE_ENV, str(tmp_path / "cache"))
    small = lambda root: write_segmentation_folder(root, n_train=3, n_val=2, size=32)  # noqa: E731
    monkeypatch.setattr(train.shapes, "write_segmentation_folder", small)
    root = shapes_folder()
    assert "generated the shapes segmentation set" in capsys.readouterr().out
    assert root.parent.parent == tmp_path / "cache"
    assert len(list((root / "train" / "masks").iterdir())) == 3
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary left
    assert shapes_folder() == root and capsys.readouterr().out == ""  # the second: as is
    data = load_seg_data("shapes")
    assert data.classes == list(SHAPE_CLASSES) and len(data.val) == 2


def test_a_folder_without_splits_is_split_by_seeded_fraction(tmp_path):
    root = tiny_folder(tmp_path / "data", n=5)
    a = load_seg_data(str(root), val_split=0.4, seed=3)
    assert (len(a.train), len(a.val)) == (3, 2)
    assert not {i for i, _ in a.train} & {i for i, _ in a.val}
    assert all(Path(i).stem == Path(m).stem for i, m in a.train + a.val)
    b = load_seg_data(str(root), val_split=0.4, seed=3)
    assert a.val == b.val and "seed 3" in a.validation


@pytest.mark.slow
def test_two_process_segmentation_counts_every_pixel_once(shapes, tmp_path):
    """torchrun with two CPU processes (gloo): the confusion matrices of both ranks are
    summed, so every validation pixel is scored exactly once and rank 0 alone writes."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2", "-m", "train", "fit", "--task", "segmentation", "--model", "unet_lenet5",
            "--data", str(shapes), "--strategy", "scratch", "--batch-size", "2", "--epochs", "1",
            "--input-size", "32", "--num-workers", "0", "--no-progress",
            "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 process(es) on cpu" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["val_images"] == 4 and metrics["val_pixels"] == 4 * 32 * 32
    assert 0.0 <= metrics["miou"] <= 1.0
    assert len((out / "log.jsonl").read_text().splitlines()) == 1  # rank 0 only
