"""nets.visualize: the numbers behind the pictures (filter tiles are the weights, Grad-CAM
peaks where the evidence is, CAM mass of the real Lite0 weights lies on the object) and the
``python -m nets show`` command line with its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import common
import nets
import weights as wts
from nets import visualize as V
from nets.base import ClassifierHead, Network

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHELSEA = os.path.join(REPO, "samples", "chelsea.jpg")
COFFEE = os.path.join(REPO, "samples", "coffee.jpg")


def run_cli(*args: str, cwd: str = REPO) -> subprocess.CompletedProcess:
    """``python -m nets ...`` in a subprocess, as a user runs it (about 10 s each here)."""
    return subprocess.run(
        [sys.executable, "-m", "nets", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


def cli(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same command line in this process (``nets.__main__.main``), without paying for a
    new interpreter and torch import per call."""
    from nets.__main__ import main

    capsys.readouterr()
    code = main(["show", *args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


# -- a network whose answer is known ------------------------------------------------------------
class SquareNet(Network):
    """Stage 0: a 2x2 stride-2 conv with two channels, "bright" = ReLU(mean RGB - 0.5) and
    "dark" = ReLU(0.5 - mean RGB); stage 1: a 2x2 max-pool. Class 0 ("square") reads the
    pooled bright channel, class 1 ("background") the dark one."""

    def __init__(self) -> None:
        super().__init__(in_chans=3, min_input_size=8)
        conv = nn.Conv2d(3, 2, 2, stride=2)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0] = 1 / 12  # the mean of 3 channels x 2x2 pixels
            conv.weight[1] = -1 / 12
            conv.bias.copy_(torch.tensor([-0.5, 0.5]))
        self.stem = nn.Identity()
        self._set_stages([nn.Sequential(conv, nn.ReLU()), nn.MaxPool2d(2)], [2, 2], [2, 4])
        self.head = ClassifierHead(2, num_classes=2)
        with torch.no_grad():
            self.head.fc.weight.copy_(torch.eye(2) * 4)
            self.head.fc.bias.zero_()
        self.first_conv = "stages.0.0"
        self.arch = "squarenet"
        self.pretrained_cfg = {"class_names": ["square", "background"]}


def square_image(size: int = 64, top: int = 4, left: int = 4, side: int = 16) -> torch.Tensor:
    """A dark image (0.1) with a bright square (0.9), as a 3xHxW tensor."""
    x = torch.full((3, size, size), 0.1)
    x[:, top : top + side, left : left + side] = 0.9
    return x


def test_grad_cam_matches_its_definition_on_a_known_network():
    model = SquareNet()
    x = square_image()
    cams = V.grad_cam(model, x, top_k=2)
    assert [c.name for c in cams] == ["background", "square"]  # 240 dark pixels vs 16 bright
    square = V.grad_cam(model, x, target="square")[0]
    # Stage 1 is 16x16: d(logit 0)/dA^0 = 4/256 everywhere, channel 1 has alpha 0, so the map is
    # 4/256 * A^0, and A^0 = max-pooled ReLU(0.9 - 0.5) = 0.4 on the square's 4x4 cells.
    expected = np.zeros((16, 16), dtype=np.float32)
    expected[1:5, 1:5] = 0.4 * 4 / 256
    np.testing.assert_allclose(square.heatmap, expected, rtol=1e-5, atol=1e-8)
    assert square.stage == 1 and square.index == 0
    # Upsampled to 64x64: the peak (1.0) lies inside the square, the far corner is 0.
    peak = np.unravel_index(square.mask.argmax(), square.mask.shape)
    assert 4 <= peak[0] < 20 and 4 <= peak[1] < 20
    assert square.mask.max() == pytest.approx(1.0) and square.mask[40:, 40:].max() == 0.0
    # Bilinear upsampling (x4) blurs the edge by half a cell: 2 pixels around the square.
    assert square.mask[4:20, 4:20].sum() / square.mask.sum() == pytest.approx(225 / 256)
    assert square.mask[2:22, 2:22].sum() == pytest.approx(square.mask.sum())
    # The background class lights up everything but the square.
    background = V.grad_cam(model, x, target=1)[0]
    # 1.0 up to float32 rounding of the normalisation (0.99999994 on an AVX-512 VNNI host)
    assert background.mask[8:16, 8:16].max() == 0.0
    assert background.mask[40:, 40:].min() == pytest.approx(1.0, abs=1e-6)
    # At stage 0 (32x32) the same: alpha_0 = (4/256) spread over 4x4 windows -> 4/1024 each.
    s0 = V.grad_cam(model, x, target="square", stage=0)[0]
    expected0 = np.zeros((32, 32), dtype=np.float32)
    expected0[2:10, 2:10] = 0.4 * 4 / 1024
    np.testing.assert_allclose(s0.heatmap, expected0, rtol=1e-5, atol=1e-8)
    # Probabilities are the softmax of the logits, and no parameter gradient was left behind.
    with torch.no_grad():
        probs = model(x[None]).softmax(1)[0]
    assert square.probability == pytest.approx(float(probs[0]))
    assert all(p.grad is None for p in model.parameters())


def test_square_in_another_corner_moves_the_peak():
    model = SquareNet()
    cam = V.grad_cam(model, square_image(top=44, left=44), target="square")[0]
    peak = np.unravel_index(cam.mask.argmax(), cam.mask.shape)
    assert 44 <= peak[0] < 60 and 44 <= peak[1] < 60
    assert cam.mask[:20, :20].max() == 0.0


def test_feature_maps_are_the_stage_outputs_ranked_by_mean():
    model = SquareNet()
    x = square_image()
    rows = V.feature_maps(model, x, top_k=2)
    assert [(r.stage, r.reduction, r.channels) for r in rows] == [(0, 2, 2), (1, 4, 2)]
    with torch.no_grad():
        outputs = nets.feature_extractor(model, stages=(0, 1))(x[None])
    for row, out in zip(rows, outputs, strict=True):
        assert list(row.indices) == [1, 0]  # dark covers 15/16 of the image
        np.testing.assert_array_equal(row.maps, out[0, row.indices].numpy())
        np.testing.assert_allclose(row.means, out[0, row.indices].mean((1, 2)).numpy())
    # Stage 0: the dark channel is 0.4 on 1024 - 64 cells, the bright one 0.4 on 64.
    np.testing.assert_allclose(rows[0].means, [0.4 * 960 / 1024, 0.4 * 64 / 1024], rtol=1e-5)
    only_last = V.feature_maps(model, x, top_k=1, stages=[-1])
    assert (
        len(only_last) == 1 and only_last[0].stage == 1 and only_last[0].maps.shape == (1, 16, 16)
    )


def test_an_in_place_op_after_a_stage_does_not_change_its_maps():
    # Stage 0 without its ReLU, stage 1 starting with an in-place one: the maps of stage 0
    # must be its own output (negative where dark), not what the next stage made of it.
    model = SquareNet()
    model.stages[0] = model.stages[0][0]
    model.stages[1] = nn.Sequential(nn.ReLU(inplace=True), nn.MaxPool2d(2))
    x = square_image()
    stage0 = V.feature_maps(model, x, top_k=2)[0]  # stage 1 runs after it
    assert stage0.maps.min() == pytest.approx(-0.4)  # 0.1 - 0.5 in the dark cells
    cam = V.grad_cam(model, x, target="square", stage=0)[0]
    # d(logit 0)/dA^0 is 4/256 at the one cell of each 2x2 window the max-pool picks, only on
    # the square's 16 windows (the ReLU is shut in the dark): alpha_0 = 16 * 4/256 / 1024.
    expected = np.zeros((32, 32), dtype=np.float32)
    expected[2:10, 2:10] = 0.4 * (16 * 4 / 256) / 1024
    np.testing.assert_allclose(cam.heatmap, expected, rtol=1e-5, atol=1e-9)


# -- filters ----------------------------------------------------------------------------------
def test_grid_shape_is_chosen_from_the_count():
    shapes = {n: V.grid_shape(n) for n in (6, 8, 16, 32, 64, 96, 7)}
    assert shapes == {6: (2, 3), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 96: (8, 12),
                      7: (3, 3)}  # fmt: skip


def _check_tiles_are_the_weights(grid: V.FilterGrid, weight: torch.Tensor) -> None:
    w = weight.detach().float().numpy()
    np.testing.assert_array_equal(grid.weight, w)
    back = grid.tiles * (grid.high - grid.low)[:, None, None, None] + grid.low[:, None, None, None]
    np.testing.assert_allclose(back, w.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
    assert grid.tiles.min() >= 0 and grid.tiles.max() <= 1
    # The grid picture holds the tiles at their places, one pixel apart.
    n, kh, kw, _ = grid.tiles.shape
    picture = grid.image(pad=1)
    for i in (0, n // 2, n - 1):
        r, c = divmod(i, grid.cols)
        y, x = 1 + r * (kh + 1), 1 + c * (kw + 1)
        np.testing.assert_array_equal(picture[y : y + kh, x : x + kw], grid.tiles[i])


@pytest.fixture(scope="module")
def torchvision_files(module_dir):
    """AlexNet, ResNet-18 and DenseNet-121 with random weights, saved in torchvision's key
    layout: the files the course's comparison is drawn from, without downloading them."""
    folder = module_dir
    files = {}
    for i, name in enumerate(("alexnet", "resnet18", "densenet121")):
        torch.manual_seed(i)
        ref = torchvision.models.get_model(name)
        path = folder / f"{name}.pth"
        torch.save(ref.state_dict(), path)
        first = ref.features[0] if name != "resnet18" else ref.conv1
        files[name] = (str(path), first.weight.detach().clone())
    return files


def test_filters_are_the_first_conv_weights_of_torchvision_files(torchvision_files):
    for name, (path, weight) in torchvision_files.items():
        model = V.load_model(name, path)
        grid = V.filters(model)
        assert grid.mode == "rgb" and "each scaled to its own range" in grid.note
        assert (grid.rows, grid.cols) == (8, 8)
        _check_tiles_are_the_weights(grid, weight)
        # Each tile uses its kernel's whole range: its min is 0 and its max 1.
        assert np.allclose(grid.tiles.reshape(64, -1).min(1), 0)
        assert np.allclose(grid.tiles.reshape(64, -1).max(1), 1)
    shared = V.filters(
        V.load_model("resnet18", torchvision_files["resnet18"][0]), shared_scale=True
    )
    weight = torchvision_files["resnet18"][1]
    assert np.all(shared.low == float(weight.min())) and np.all(shared.high == float(weight.max()))
    _check_tiles_are_the_weights(shared, weight)


def test_filters_of_keras_weights_come_out_rgb(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    h5py = pytest.importorskip("h5py")
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    ref = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, ref)
    kernel = torch.from_numpy(np.asarray(ref.get_layer("block1_conv1").get_weights()[0]))
    model = nets.create_model("vgg16", weights=str(path), include_top=False)
    grid = V.filters(model)
    # Keras' kernel is (kh, kw, in, out) with its inputs in BGR (Caffe) order: the red tile
    # channel must hold Keras' input channel 2, the blue one channel 0.
    back = grid.tiles * (grid.high - grid.low)[:, None, None, None] + grid.low[:, None, None, None]
    bgr = kernel.permute(3, 0, 1, 2).numpy()  # (out, kh, kw, in)
    np.testing.assert_allclose(back[..., 0], bgr[..., 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back[..., 2], bgr[..., 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back[..., 1], bgr[..., 1], rtol=1e-5, atol=1e-6)


def test_filters_of_grey_and_depthwise_first_convs_say_what_is_shown():
    lenet = nets.create_model("lenet5")
    grid = V.filters(lenet)
    assert grid.mode == "grey" and "one input channel" in grid.note
    assert (grid.rows, grid.cols) == (2, 3) and grid.tiles.shape == (6, 5, 5, 3)
    w = lenet.get_submodule(lenet.first_conv).weight.detach().numpy()
    back = grid.tiles[..., 0] * (grid.high - grid.low)[:, None, None] + grid.low[:, None, None]
    np.testing.assert_allclose(back, w[:, 0], rtol=1e-5, atol=1e-6)
    assert np.array_equal(grid.tiles[..., 0], grid.tiles[..., 2])

    model = SquareNet()
    model.stages[0][0] = nn.Conv2d(3, 6, 2, stride=2, groups=3)
    grid = V.filters(model)
    assert grid.mode == "grey" and grid.note.startswith("depthwise")
    constant = V.filters(SquareNet())  # each kernel is constant: mid-grey, still invertible
    assert np.allclose(constant.tiles, 0.5) and np.allclose(constant.low + 0.5, [1 / 12, -1 / 12])


# -- the real Lite0 weights on the sample photos ------------------------------------------------
# Boxes in the whole photo at the input scale (336x224, --no-crop), read off the photos:
# Chelsea's head (everything left of the blurred background on the right) and her face
# (eyes to nose); the espresso cup alone and the cup with its saucer.
BOXES = {
    CHELSEA: {"head": (0, 0, 280, 224), "face": (90, 55, 270, 215)},
    COFFEE: {"cup": (95, 10, 235, 150), "cup and saucer": (45, 30, 270, 224)},
}


def cam_share(mask: np.ndarray, box: tuple[int, int, int, int]) -> tuple[float, float]:
    """The share of the map's mass inside ``box`` (x0, y0, x1, y1), and of the area."""
    x0, y0, x1, y1 = box
    return float(mask[y0:y1, x0:x1].sum() / mask.sum()), (x1 - x0) * (y1 - y0) / mask.size


@pytest.fixture(scope="module")
def lite0():
    return V.load_model("efficientnet_lite0", "imagenet")


def test_lite0_cam_mass_lies_on_the_object(lite0):
    shares = {}
    for photo, boxes in BOXES.items():
        cam = V.grad_cam(lite0, photo, crop=False)[0]
        assert cam.mask.shape == (224, 336) and cam.heatmap.shape == (7, 11)
        for what, box in boxes.items():
            shares[what] = cam_share(cam.mask, box)
        shares[photo] = cam.name
    print({k: (round(v[0], 3), round(v[1], 3)) if isinstance(v, tuple) else v
           for k, v in shares.items()})  # fmt: skip
    assert shares[CHELSEA] in ("tiger cat", "Egyptian cat", "tabby")
    assert shares[COFFEE] == "espresso"
    # Measured: head 91.4% of the mass on 83% of the area, face 48.3% on 38%; cup 63.9% on
    # 26%, cup and saucer 83.1% on 58%.
    assert shares["head"][0] > 0.88 and shares["face"][0] > shares["face"][1] + 0.05
    assert shares["cup"][0] > 0.55 and shares["cup"][0] > 2 * shares["cup"][1]
    assert shares["cup and saucer"][0] > 0.78


# -- bad input --------------------------------------------------------------------------------
def test_bad_input_is_a_specific_error():
    model = SquareNet()
    with pytest.raises(V.VisualizeError, match=r"stage 2 is out of range: squarenet has 2 stages"):
        V.grad_cam(model, square_image(), stage=2)
    with pytest.raises(V.VisualizeError, match="stage -3 is out of range"):
        V.feature_maps(model, square_image(), stages=[-3])
    with pytest.raises(V.VisualizeError, match="top_k must be a positive integer, got 0"):
        V.grad_cam(model, square_image(), top_k=0)
    with pytest.raises(V.VisualizeError, match="class 'squares' is not one of .*names: square"):
        V.grad_cam(model, square_image(), target="squares")
    with pytest.raises(V.VisualizeError, match="class index 5 is out of range 0..1"):
        V.grad_cam(model, square_image(), target=5)
    linear_stem = SquareNet()
    linear_stem.stem = nn.Linear(4, 4)
    linear_stem.first_conv = "stem"
    with pytest.raises(V.VisualizeError, match="no conv stem: its first_conv 'stem' is a Linear"):
        V.filters(linear_stem)
    with pytest.raises(V.VisualizeError, match="has no convolution"):
        V.filters(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    headless = nets.create_model("lenet5", include_top=False)
    with pytest.raises(V.VisualizeError, match="needs the classifier"):
        V.grad_cam(headless, torch.zeros(1, 32, 32))
    with pytest.raises(nets.InputSizeError, match="at least 8x8"):
        V.grad_cam(model, torch.zeros(3, 4, 4))


def test_save_helpers_write_pngs_atomically_or_nothing(tmp_path):
    model = SquareNet()
    x = square_image()
    for save, args in (
        (V.save_filters, ()),
        (V.save_feature_maps, (x,)),
        (V.save_grad_cam, (x,)),
    ):
        out = tmp_path / f"{save.__name__}.png"
        assert save(model, *args, out) == out and png_size(out)[0] > 100
    with pytest.raises(common.WriteError, match="folder .*missing' does not exist"):
        V.save_filters(model, tmp_path / "missing" / "f.png")
    with pytest.raises(common.WriteError, match="must be a .png file"):
        V.save_filters(model, tmp_path / "f.jpg")
    with pytest.raises(V.VisualizeError):
        V.save_grad_cam(model, x, tmp_path / "bad.png", stage=5)
    assert not (tmp_path / "missing").exists() and not (tmp_path / "bad.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- the command line -------------------------------------------------------------------------
def test_cli_filters_side_by_side_from_torchvision_files(torchvision_files, tmp_path, capsys):
    out = tmp_path / "course.png"
    names = list(torchvision_files)
    paths = [torchvision_files[n][0] for n in names]
    proc = cli(capsys, "filters", "--models", *names, "--weights", *paths, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "alexnet: 64 filters 11x11x3" in proc.stdout
    assert "resnet18: 64 filters 7x7x3" in proc.stdout
    assert "densenet121: 64 filters 7x7x3" in proc.stdout
    width, height = png_size(out)
    assert width > 2.5 * height  # three panels side by side
    bad = ["--weights", paths[0], paths[1], "-o", str(tmp_path / "x.png")]
    proc = cli(capsys, "filters", "--models", *names, *bad)
    assert_one_line_error(proc, "one value for all models or one per model: got 2 for 3")


def test_cli_draws_all_three_for_a_trainer_checkpoint(tmp_path, capsys):
    from train.checkpoint import export_model

    torch.manual_seed(0)
    classes = [f"digit {i}" for i in range(10)]
    model = nets.create_model("lenet5")
    pre = wts.Preprocessing(input_size=32, resize_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    ckpt = tmp_path / "best.safetensors"
    export_model(model, ckpt, classes=classes, preprocessing=pre)
    image = tmp_path / "seven.png"
    digit = np.zeros((32, 32), dtype=np.uint8)
    digit[6:9, 8:24] = 255
    digit[9:26, 19:22] = 255
    Image.fromarray(digit, "L").save(image)

    loaded = V.load_model(None, str(ckpt))
    assert loaded.arch == "lenet5" and list(loaded.pretrained_cfg["class_names"]) == classes
    cams = V.grad_cam(loaded, str(image), stage=1, top_k=2)
    with torch.no_grad():
        x = V.prepare_image(loaded, str(image)).x
        probs = loaded(x).softmax(1)[0]
    assert x.shape == (1, 1, 32, 32)
    assert [c.name for c in cams] == [classes[i] for i in probs.topk(2).indices]

    for kind, extra in (("filters", []), ("features", [str(image)]), ("cam", [str(image)])):
        out = tmp_path / f"{kind}.png"
        proc = cli(capsys, kind, *extra, "--weights", str(ckpt), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert png_size(out)[0] > 100
    assert (
        "lenet5: 6 filters 5x5x1"
        in cli(capsys, "filters", "--weights", str(ckpt), "-o", str(tmp_path / "f2.png")).stdout
    )
    proc = run_cli("show", "cam", str(image), "--weights", str(ckpt), "--class", "digit 7",
                   "--stage", "1", "-o", str(tmp_path / "seven_cam.png"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"digit 7 ({100 * float(probs[7]):.1f}%), stage 1")


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    out = tmp_path / "out.png"
    cases = [
        (["cam", CHELSEA, "--weights", "none", "--model", "lenet5", "--stage", "3"],
         ["stage 3 is out of range: lenet5 has 3 stages (0..2, or -3..-1)"]),
        (["features", CHELSEA, "--weights", "none", "--model", "lenet5", "--stages", "0", "7"],
         ["stage 7 is out of range"]),
        (["cam", str(not_image), "--weights", "none", "--model", "lenet5"],
         ["notes.jpg", "is not an image"]),
        (["cam", str(tmp_path / "absent.jpg"), "--model", "lenet5", "--weights", "none"],
         ["absent.jpg", "does not exist"]),
        (["cam", CHELSEA, "--model", "lenet5", "--weights", "none", "--class", "nine"],
         ["class 'nine' is not one of the model's classes"]),
        (["filters", "--models", "zfnet"], ["no ImageNet weights are registered for 'zfnet'"]),
        (["filters", "--models", "resnet5"], ["resnet5"]),
    ]  # fmt: skip
    for args, fragments in cases:
        proc = cli(capsys, *args, "-o", str(out))
        assert_one_line_error(proc, *fragments)
        assert not out.exists()
    missing = tmp_path / "missing" / "deeper" / "out.png"
    proc = cli(capsys, "filters", "--models", "lenet5", "--weights", "none", "-o", str(missing))
    assert_one_line_error(proc, "missing/deeper' does not exist")
    assert not (tmp_path / "missing").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.jpg"]


def test_every_registered_model_has_a_conv_stem_and_stage_anatomy():
    # The pictures need only first_conv, stages and feature_info; checked on the meta
    # device (shapes only) for every model, so `nets show` draws all three for each.
    for name in nets.list_models():
        with torch.device("meta"):
            model = nets.create_model(name)
        conv_name, conv = V.first_conv(model)
        assert conv.in_channels == model.in_chans, name
        assert len(model.feature_info) == len(model.stages), name
