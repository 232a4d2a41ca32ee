"""train: every bad option, CSV and output folder is one line on stderr and exit code 2,
and nothing half-written is left behind (issue 18).

Fast by design: tiny 8x8 PNG folders written in tmp_path, and errors that fire before any
training. Read-only folders are tested with chmod where that binds (not as root), and
always by making the file system refuse the write, so each case is proven either way.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_line
from conftest import run_main as run
from PIL import Image

import common.files
import train
from train.datasets import load_data

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def png_folder(root: Path, classes=("cat", "dog"), per_class: int = 4, seed: int = 0) -> Path:
    """One sub-folder of distinct 8x8 grey PNGs per class."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / c / f"{c}{i}.png")
    return root


def leftovers(folder: Path) -> list[str]:
    """Files a failed run left: anything at all, half-written temporaries included."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


FIT = ("fit", "--model", "lenet5", "--strategy", "scratch", "--num-workers", "0",
       "--no-progress")  # fmt: skip


def fit_cli(capsys, data: str, out: Path, *extra: str) -> tuple[int, list[str]]:
    return run(capsys, *FIT, "--data", data, "--out", str(out), *extra)


# -- options: section 1 and 2 --------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "0", "--batch-size must be a positive integer, got 0"),
        ("--batch-size", "-4", "--batch-size must be a positive integer, got -4"),
        ("--lr", "-0.1", "--lr must be a positive number, got -0.1"),
        ("--lr", "0", "--lr must be a positive number, got 0.0"),
        ("--epochs", "0", "--epochs must be a positive integer, got 0 (omit it for the default"),
        ("--weight-decay", "-1", "--weight-decay must be a number >= 0, got -1.0"),
        ("--num-workers", "-2", "--num-workers must be an integer >= 0, got -2"),
        ("--accum-steps", "0", "--accum-steps must be a positive integer, got 0"),
        ("--val-split", "1.5", "--val-split must be a fraction between 0 and 1, got 1.5"),
        ("--max-per-class", "0", "--max-per-class must be a positive integer, got 0"),
        ("--label-smoothing", "1", "--label-smoothing must be a number in [0, 1), got 1.0"),
        ("--momentum", "nan", "--momentum must be a number in [0, 1), got nan"),
        ("--device", "gpu", "--device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("--cache-memory", "-1", "--cache-memory must be a number of GiB >= 0, got -1.0 (0: "),
        ("--warmup-epochs", "-1", "--warmup-epochs must be a number of epochs >= 0, got -1.0"),
    ],
)
def test_a_bad_option_is_one_line_before_any_work(tmp_path, capsys, option, value, message):
    out = tmp_path / "run"
    code, err = fit_cli(capsys, "digits", out, option, value)
    one_line(code, err, message)
    assert not out.exists()


def test_the_api_validates_the_same_way(tmp_path):
    with pytest.raises(train.TrainError, match="--epochs must be a positive integer, got 0"):
        train.fit(model="lenet5", data="digits", epochs=0, out=str(tmp_path / "r"))
    with pytest.raises(train.TrainError, match="--strategy must be one of auto, "):
        train.fit(model="lenet5", data="digits", strategy="finetune", out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_momentum_zero_is_plain_sgd(tmp_path):
    res = train.fit(model="lenet5", data="digits", strategy="scratch", epochs=1, max_per_class=3,
                    optimizer="sgd", momentum=0.0, num_workers=0, progress=False,
                    out=str(tmp_path / "r"))  # fmt: skip
    assert res["epochs_run"] == 1


# -- CSV files -----------------------------------------------------------------------------
def csv_of(folder: Path, name: str = "data.csv", header: str | None = "path,label") -> Path:
    rows = [header] if header else []
    rows += [f"{p.parent.name}/{p.name},{p.parent.name}" for p in sorted(folder.rglob("*.png"))]
    path = folder / name
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_a_latin1_csv_is_one_line_naming_the_file_and_encoding(tmp_path, capsys, monkeypatch):
    folder = png_folder(tmp_path / "d")
    Image.new("L", (8, 8), 7).save(folder / "cat" / "café.png")  # a UTF-8 file name on disk
    text = csv_of(folder).read_text(encoding="utf-8")
    (folder / "latin1.csv").write_bytes(text.encode("latin-1"))
    monkeypatch.setattr("train.datasets._locale_encoding", lambda: "UTF-8")
    out = tmp_path / "run"
    code, err = fit_cli(capsys, str(folder / "latin1.csv"), out)
    one_line(code, err, "latin1.csv", "is not UTF-8 text (line ", "byte 0xe9", "save it as UTF-8")
    assert not out.exists()

    # Where the machine's own encoding reads it, it is read, with a warning.
    monkeypatch.setattr("train.datasets._locale_encoding", lambda: "latin-1")
    with pytest.warns(UserWarning, match="is not UTF-8 .*read as latin-1"):
        data = load_data(str(folder / "latin1.csv"), val_split=0.4)
    assert any(p.endswith("café.png") for p, _ in data.train + data.val)


@pytest.mark.parametrize(
    "header", ["filename,label", "image,class", "Path,Target", "FILEPATH,category", "label,file"]
)
def test_a_csv_header_with_common_column_names_is_read(tmp_path, header):
    folder = png_folder(tmp_path / "d")
    path = csv_of(folder, header=header)
    if header.startswith("label"):  # the columns swapped, as the header says
        lines = path.read_text().splitlines()
        swapped = [",".join(reversed(line.split(","))) for line in lines[1:]]
        path.write_text("\n".join([lines[0], *swapped]) + "\n")
    data = load_data(str(path), val_split=0.5)
    assert data.classes == ["cat", "dog"] and len(data.train) + len(data.val) == 8


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path):
    folder = png_folder(tmp_path / "d")
    path = csv_of(folder)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_data(str(path), val_split=0.5).classes == ["cat", "dog"]
    path.write_bytes(b"\xef\xbb\xbf" + csv_of(folder, header=None).read_bytes())
    assert load_data(str(path), val_split=0.5).classes == ["cat", "dog"]


def test_an_unknown_csv_header_is_one_line(tmp_path, capsys):
    folder = png_folder(tmp_path / "d")
    path = csv_of(folder, header="picture,kind")
    code, err = fit_cli(capsys, str(path), tmp_path / "run")
    one_line(code, err, "data.csv:1: 'picture,kind' is neither an image row nor a header",
             "path/file/filename/image/img/filepath", "label/class/target/category")  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_a_csv_image_under_two_labels_names_both_rows(tmp_path, capsys):
    folder = png_folder(tmp_path / "d")
    path = csv_of(folder)
    path.write_text(path.read_text() + "./cat/cat0.png,dog\n")
    code, err = fit_cli(capsys, str(path), tmp_path / "run")
    one_line(code, err, "data.csv:2 and ", "data.csv:10 give the image 'cat/cat0.png' two labels",
             "('cat' and 'dog')")  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_csv_duplicates_are_dropped_with_a_count_and_never_split(tmp_path):
    folder = png_folder(tmp_path / "d")
    path = csv_of(folder)
    extra = "cat/cat0.png,cat\ncat/cat0.png,cat\n./dog/dog1.png,dog\n"
    path.write_text(path.read_text() + extra)
    for seed in range(5):  # any split: each image once, in one split only
        with pytest.warns(UserWarning, match="lists 3 image.s. more than once"):
            data = load_data(str(path), val_split=0.5, seed=seed)
        files = [os.path.realpath(p) for p, _ in data.train + data.val]
        assert len(files) == len(set(files)) == 8


def test_one_image_in_both_splits_is_one_line(tmp_path, capsys):
    root = tmp_path / "d"
    png_folder(root / "train")
    png_folder(root / "val", per_class=1, seed=1)
    (root / "val" / "cat" / "again.png").symlink_to(root / "train" / "cat" / "cat2.png")
    code, err = fit_cli(capsys, str(root), tmp_path / "run")
    one_line(code, err, "are the same image, once for training and once for validation")
    assert not (tmp_path / "run").exists()


# -- unreadable classes --------------------------------------------------------------------
def broken_class_folder(tmp_path: Path) -> Path:
    folder = png_folder(tmp_path / "d", classes=("cat", "dog", "owl"))
    for f in (folder / "owl").iterdir():
        f.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    return folder


def test_a_class_with_no_readable_images_is_an_error_naming_it(tmp_path, capsys):
    folder = broken_class_folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the per-image "skipping" warnings
        code, err = fit_cli(capsys, str(folder), tmp_path / "run", "--epochs", "2",
                            "--val-split", "0.5")  # fmt: skip
    one_line(code, err, "class 'owl' has no readable training images (all 2 skipped",
             "--allow-missing-classes")  # fmt: skip
    assert leftovers(tmp_path / "run") == []  # stopped before the first checkpoint


@pytest.mark.filterwarnings("ignore:skipping unreadable image")
def test_allow_missing_classes_trains_on_and_counts_per_class(tmp_path, capsys):
    folder = broken_class_folder(tmp_path)
    with pytest.warns(UserWarning) as caught:
        res = train.fit(model="lenet5", data=str(folder), strategy="scratch", epochs=1,
                        val_split=0.5, num_workers=0, progress=False,
                        allow_missing_classes=True, out=str(tmp_path / "run"))  # fmt: skip
    said = " ".join(str(w.message) for w in caught)
    for which in ("training", "validation"):
        assert f"class 'owl' has no readable {which} images (all 2 skipped" in said
        assert "going on without them (--allow-missing-classes)" in said
    assert res["skipped_images"] == 4 and res["skipped_per_class"] == {"owl": 4}
    assert "warning: 4 unreadable image(s) were skipped (owl: 4)" in capsys.readouterr().out


# -- unwritable folders ---------------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    """Make a folder refuse new files as a read-only file system does, for root too: every
    file the project creates goes through tempfile.mkstemp in common.files."""
    refused: list[Path] = []
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and any(Path(dir) == r or r in Path(dir).parents for r in refused):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(common.files.tempfile, "mkstemp", mkstemp)
    return refused.append


@pytest.fixture
def chmod_read_only():
    """chmod a folder read-only; skipped as root, where the mode does not bind."""
    if AS_ROOT:
        pytest.skip("running as root: chmod does not make a folder read-only")
    made: list[Path] = []

    def make(folder: Path) -> None:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        made.append(folder)

    yield make
    for folder in made:
        folder.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("how", ["chmod", "patched"])
def test_a_read_only_out_is_one_line_before_the_run(tmp_path, capsys, request, how):
    out = tmp_path / "run"
    out.mkdir()
    request.getfixturevalue("chmod_read_only" if how == "chmod" else "read_only")(out)
    code, err = fit_cli(capsys, "digits", out, "--max-per-class", "3")
    line = one_line(code, err, f"--out: cannot write to folder '{out}'")
    if how == "patched":
        assert "Read-only file system" in line
    assert leftovers(out) == []


def test_a_read_only_parent_of_a_new_out_is_one_line(tmp_path, capsys, read_only):
    read_only(tmp_path / "ro")
    (tmp_path / "ro").mkdir()
    code, err = fit_cli(capsys, "digits", tmp_path / "ro" / "run")
    one_line(code, err, f"--out: cannot create folder '{tmp_path / 'ro' / 'run'}'")


def test_a_write_refused_mid_run_is_one_line_without_a_part_file(tmp_path, capsys, monkeypatch):
    # The folder passes the check, then refuses log.jsonl (as a disk that fills or a mount
    # that turns read-only would): one line naming the file and its folder, no traceback.
    real = tempfile.mkstemp

    def mkstemp(*args, prefix="", **kwargs):
        if prefix.startswith(".log.jsonl"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(common.files.tempfile, "mkstemp", mkstemp)
    out = tmp_path / "run"
    code, err = fit_cli(capsys, "digits", out, "--max-per-class", "3", "--epochs", "1")
    one_line(code, err, f"cannot write '{out / 'log.jsonl'}': folder '{out}' is not writable",
             "Read-only file system")  # fmt: skip
    assert not [f for f in leftovers(out) if f.endswith(".part")]


@pytest.mark.parametrize("how", ["chmod", "patched"])
def test_predict_into_a_read_only_folder_is_one_line(tmp_path, capsys, request, how):
    folder = png_folder(tmp_path / "d")
    ro = tmp_path / "ro"
    ro.mkdir()
    request.getfixturevalue("chmod_read_only" if how == "chmod" else "read_only")(ro)
    checkpoint = tmp_path / "best.safetensors"
    checkpoint.write_bytes(b"never read: the output is checked first")
    code, err = run(capsys, "predict", str(folder), "--checkpoint", str(checkpoint),
                    "--output", str(ro / "predictions.csv"))  # fmt: skip
    one_line(code, err, f"--output: cannot write to folder '{ro}'")
    assert leftovers(ro) == []


def test_weights_convert_into_a_read_only_folder_is_one_line(tmp_path, capsys, read_only):
    from nets.__main__ import main as nets_main

    src = tmp_path / "lenet.pth"
    torch.save({"w": torch.zeros(1)}, src)
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    code = nets_main(["convert", str(src), "--arch", "lenet5", "-o", str(ro / "x.safetensors")])
    err = capsys.readouterr().err.strip().splitlines()
    one_line(code, err, f"-o/--output: cannot write to folder '{ro}'", "Read-only file system")
    assert leftovers(ro) == []


# -- CUDA out of memory (simulated: the CPU run raises what CUDA would) --------------------
def test_out_of_memory_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import train.loop as loop

    real = loop.compute_loss
    calls = {"n": 0}

    def oom(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "compute_loss", oom)
    out = tmp_path / "oom"
    # 10 per class: 80 training images, two batches of 64 per epoch; epoch 2 runs out.
    code, err = fit_cli(capsys, "digits", out, "--epochs", "3", "--max-per-class", "10")
    one_line(code, err, "out of GPU memory at epoch 2, step 1 with --batch-size 64",
             "try a smaller one (--batch-size 32)", "--batch-size 32 --accum-steps 2",
             f"the last checkpoint is kept: {out / 'checkpoint.pt'} (epoch 1)")  # fmt: skip
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not [f for f in leftovers(out) if f.endswith(".part")]


# -- a run owns its --out (section 2 of the command-line sweep) ------------------------------
def test_a_folder_lock_is_exclusive_and_released(tmp_path):
    from train.lock import LOCK, lock_folder

    out = tmp_path / "new" / "run"
    held = lock_folder(out)
    assert (out / LOCK).read_text().strip() == str(os.getpid())
    # A second hold through the same function (another open file, as another run's) fails.
    with pytest.raises(train.TrainError) as refused:
        lock_folder(out)
    assert str(refused.value) == (
        f"--out '{out}' is in use by another run (process {os.getpid()}), which holds its "
        f"lock {LOCK}: wait for it to end, or pass another --out"
    )
    held.release()
    # Released: the lock file is gone, and so are the folders taking it created (empty).
    assert not (tmp_path / "new").exists()
    again = lock_folder(out)
    (out / "kept.txt").write_text("a run's file")
    again.release()
    assert sorted(p.name for p in out.iterdir()) == ["kept.txt"]


def test_a_second_run_into_a_held_folder_is_refused_before_writing(tmp_path, capsys):
    from train.lock import LOCK, lock_folder

    out = tmp_path / "run"
    held = lock_folder(out)  # what a first run, still training, holds
    try:
        for extra in ((), ("--overwrite",)):
            code, err = fit_cli(capsys, "digits", out, "--max-per-class", "3", *extra)
            one_line(code, err, f"--out '{out}' is in use by another run", "wait for it to end")
            assert leftovers(out) == [LOCK]  # nothing of the refused run
    finally:
        held.release()


def test_a_run_held_by_another_process_is_refused_and_a_killed_ones_lock_is_taken_over(
    tmp_path, capsys
):
    """Two real processes: one holds --out (as a run does), the fit here is refused, naming
    the process; killed (SIGKILL, as a crash), its lock is gone with it, and a run into the
    folder, which holds only the stale lock file, trains."""
    import subprocess
    import sys

    from train.lock import LOCK

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from train.lock import lock_folder; "
         "lock_folder(sys.argv[1]); print('held', flush=True); time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = fit_cli(capsys, "digits", out, "--max-per-class", "3", "--epochs", "1")
        one_line(code, err, f"--out '{out}' is in use by another run (process {holder.pid})")
    finally:
        holder.kill()
        holder.wait()
    assert leftovers(out) == [LOCK]  # a crash leaves the file, not the lock
    code, err = fit_cli(capsys, "digits", out, "--max-per-class", "3", "--epochs", "1")
    assert code == 0, err
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1]
    assert LOCK not in leftovers(out)  # released at the end of the run


# -- a given weights file is read or refused --------------------------------------------------
def test_scratch_with_a_weights_file_is_refused(tmp_path, capsys):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": ')  # truncated
    out = tmp_path / "run"
    for given in (str(cut), "imagenet"):
        code, err = fit_cli(capsys, "digits", out, "--weights", given)
        one_line(code, err, f"--strategy scratch trains from random weights, so --weights "
                 f"{given} would be ignored", "leave --weights out")  # fmt: skip
    assert not out.exists()
    # "none" is scratch's own meaning: accepted, as before.
    from train.config import TrainConfig, validate

    validate(TrainConfig(model="lenet5", strategy="scratch", weights="none"))
    validate(TrainConfig(model="lenet5", strategy="scratch", weights="None"))


# -- file names that are not UTF-8 -------------------------------------------------------------
def non_utf8_folder(root: Path) -> Path:
    """A class folder named b'caf\\xe9' (Latin-1, not UTF-8) beside 'dog', 6 PNGs each, two
    of them with non-UTF-8 file names."""
    root.mkdir(parents=True)
    try:
        os.mkdir(os.fsencode(root) + b"/caf\xe9")
    except OSError as exc:  # macOS and some file systems refuse such names
        pytest.skip(f"the file system refuses a non-UTF-8 name ({exc.strerror})")
    rng = np.random.default_rng(0)
    for cls, names in ((b"caf\xe9", [b"caf\xe9%d.png" % i for i in range(6)]),
                       (b"dog", [b"dog%d.png" % i for i in range(6)])):  # fmt: skip
        folder = os.fsencode(root) + b"/" + cls
        os.makedirs(folder, exist_ok=True)
        for name in names:
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(os.fsdecode(folder + b"/" + name), format="PNG")
    return root


def test_a_non_utf8_class_folder_trains_with_an_escaped_name_and_says_so(tmp_path, capsys):
    data = non_utf8_folder(tmp_path / "d")
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"not valid UTF-8: the class is named with backslash "
                      r"escapes \('caf\\xe9'\)"):  # fmt: skip
        code, err = fit_cli(capsys, str(data), out, "--epochs", "1", "--val-split", "0.5")
    assert code == 0, err
    # The whole report, the confusion matrix included (it died drawing it before).
    for name in ("confusion.png", "accuracy.png", "metrics.json", "best.safetensors"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["classes"] == ["caf\\xe9", "dog"]

    # predict: the CSV is written, the names escaped as the rows and the warning say.
    csv_path = tmp_path / "predictions.csv"
    with pytest.warns(UserWarning, match=r"6 image file name\(s\) are not valid UTF-8"):
        code, err = run(capsys, "predict", str(data), "--checkpoint", str(out / "best.safetensors"),
                        "--output", str(csv_path))  # fmt: skip
    assert code == 0, err
    rows = csv_path.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 13 and rows[1].startswith(f"{data}/caf\\xe9/caf\\xe90.png,")

    # eval on the same folder: the escaped class names match the model's.
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        ev = train.evaluate_checkpoint(str(out / "best.safetensors"), str(data))
    assert ev["count"] == 12


# -- what eval and the reports say ---------------------------------------------------------------
@pytest.fixture(scope="module")
def three_class_run(module_dir):
    """One short run on a flat folder of three classes (split 50/50 by the run itself)."""
    import contextlib
    import io

    data = png_folder(module_dir / "three", classes=("ant", "bee", "cow"), per_class=4)
    out = module_dir / "three-run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train.fit(model="lenet5", data=str(data), strategy="scratch", epochs=1, num_workers=0,
                  val_split=0.5, progress=False, out=str(out))  # fmt: skip
    return data, out, printed.getvalue()


def test_top5_is_reported_only_for_more_than_five_classes(three_class_run):
    from train.report import Meter

    _, out, printed = three_class_run
    metrics = json.loads((out / "metrics.json").read_text())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert "top5" not in metrics and "val_top5" not in log[0] and "top-5" not in printed
    assert "top1" in metrics and "val_top1" in log[0] and "top-1" in printed
    logits, target = torch.randn(4, 6), torch.tensor([0, 1, 2, 5])
    for n, has in ((5, False), (6, True)):  # 6 classes and more: the keys as they were
        meter = Meter(n)
        meter.update(logits[:, :n], target.clamp(max=n - 1), 1.0)
        assert ("top5" in meter.result()) is has, n


def test_eval_on_the_runs_training_folder_warns(three_class_run, capsys):
    data, out, _ = three_class_run
    best = str(out / "best.safetensors")
    code, err = run(capsys, "eval", "--checkpoint", best, "--data", str(data))
    assert code == 0
    warning = ("warning: 6 of the 12 images scored are images the run trained on (its --data "
               f"{data}): the figures overstate")  # fmt: skip
    assert len(err) == 1 and err[0].startswith(warning) and "--split run-val" in err[0]
    ev = train.evaluate_checkpoint(best, str(data))
    assert ev["training_images_scored"] == 6 and ev["report"].startswith(warning)
    # Only what the run held out: no warning.
    ev = train.evaluate_checkpoint(best, str(data), split="run-val")
    assert ev["training_images_scored"] == 0 and "warning" not in ev
    assert "warning" not in ev["report"] and ev["count"] == 6
