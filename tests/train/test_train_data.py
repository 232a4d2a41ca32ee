"""train: data sources, the bundled digits, and the one-line errors of bad data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import train
from train.__main__ import main
from train.datasets import digits_image, load_data


def write_digit_folder(root, classes=(0, 1, 2), per_class=6):
    """A real image folder: the bundled digits saved as 32x32 PNGs in class folders."""
    images, labels = train.load_digits_arrays()
    for c in classes:
        folder = root / f"digit{c}"
        folder.mkdir(parents=True, exist_ok=True)
        idx = np.flatnonzero(labels == c)[:per_class]
        for i in idx:
            digits_image(images[i]).resize((32, 32)).save(folder / f"{i}.png")
    return root


def test_bundled_digits_equal_scikit_learn():
    sklearn = pytest.importorskip("sklearn.datasets")
    ref = sklearn.load_digits()
    images, labels = train.load_digits_arrays()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    np.testing.assert_array_equal(images, ref.images.astype(np.uint8))
    np.testing.assert_array_equal(images.astype(np.float64), ref.images)
    np.testing.assert_array_equal(labels, ref.target)


def test_digits_split_is_stratified_and_repeatable():
    a = load_data("digits", val_split=0.2, seed=0)
    b = load_data("digits", val_split=0.2, seed=0)
    assert len(a.train) + len(a.val) == 1797
    assert a.fingerprint == b.fingerprint
    counts = a.counts("val")
    assert all(34 <= c <= 38 for c in counts)  # 20% of each class (174..183 images)
    assert load_data("digits", seed=1).fingerprint != a.fingerprint


def test_folder_csv_and_train_val_layouts(tmp_path):
    root = write_digit_folder(tmp_path / "flat")
    split = load_data(str(root), val_split=0.5)
    assert split.classes == ["digit0", "digit1", "digit2"]
    assert split.counts("train") == [3, 3, 3] and split.counts("val") == [3, 3, 3]

    rows = ["path,label"] + [f"{p},{split.classes[y]}" for p, y in split.train + split.val]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    from_csv = load_data(str(tmp_path / "data.csv"), val_split=0.5)
    assert from_csv.classes == split.classes and len(from_csv.train) == 9

    write_digit_folder(tmp_path / "tv" / "train")
    write_digit_folder(tmp_path / "tv" / "val", per_class=2)
    tv = load_data(str(tmp_path / "tv"))
    assert tv.counts("train") == [6, 6, 6] and tv.counts("val") == [2, 2, 2]


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("empty_class", "has no images"),
        ("one_class", "has only one class"),
        ("csv_missing", "does not exist"),
        ("nothing", "is neither 'digits'"),
    ],
)
def test_bad_data_is_a_one_line_error(tmp_path, capsys, make, message):
    if make == "empty_class":
        root = write_digit_folder(tmp_path / "d", classes=(0, 1))
        (root / "empty").mkdir()
        data = str(root)
    elif make == "one_class":
        data = str(write_digit_folder(tmp_path / "d", classes=(3,)))
    elif make == "csv_missing":
        root = write_digit_folder(tmp_path / "d", classes=(0, 1), per_class=2)
        files = sorted(root.rglob("*.png"))
        lines = [f"{f},{f.parent.name}" for f in files] + ["nope/missing.png,digit0"]
        (tmp_path / "d.csv").write_text("\n".join(lines))
        data = str(tmp_path / "d.csv")
    else:
        data = str(tmp_path / "does-not-exist")
    code, err = run_cli(capsys, "fit", "--data", data, "--strategy", "scratch", "--out",
                        str(tmp_path / "run"))  # fmt: skip
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    if make == "csv_missing":
        assert "d.csv:5" in err[0] and "missing.png" in err[0]


def corrupt_folder(tmp_path):
    root = write_digit_folder(tmp_path / "d", classes=(0, 1), per_class=8)
    (root / "digit0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.new("L", (32, 32)).save(root / "digit1" / "trunc.png")
    data = (root / "digit1" / "trunc.png").read_bytes()
    (root / "digit1" / "trunc.png").write_bytes(data[: len(data) // 2])
    return root


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    root = corrupt_folder(tmp_path)
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        res = train.fit(
            model="lenet5", data=str(root), strategy="scratch", epochs=1, num_workers=0,
            val_split=0.5, out=str(tmp_path / "run"), progress=False,
        )  # fmt: skip
    # Each corrupt file is in one split: counted once in training or in validation.
    assert res["skipped_images"] == 2
    assert res["history"][0]["skipped"] == 2


def test_strict_stops_at_a_corrupt_image(tmp_path, capsys):
    root = corrupt_folder(tmp_path)
    code, err = run_cli(capsys, "fit", "--model", "lenet5", "--data", str(root), "--strategy",
                        "scratch", "--epochs", "1", "--num-workers", "0", "--strict",
                        "--val-split", "0.5", "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 2
    assert len(err) >= 1 and err[-1].startswith("error: unreadable image") and "--strict" in err[-1]


def test_help_shows_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--strategy", "--unfreeze-from", "--backbone-lr-mult", "--freeze-bn",
                 "--val-split", "--resume", "--channels-last", "--compile", "--amp"):  # fmt: skip
        assert flag in text
    assert "(default: digits)" in text and "(default: auto)" in text


def test_split_folders_are_recognised_and_named(tmp_path, capsys):
    for held in ("test", "valid", "Validation"):
        root = tmp_path / held
        write_digit_folder(root / "train")
        write_digit_folder(root / held, per_class=2)
        split = load_data(str(root))
        assert split.classes == ["digit0", "digit1", "digit2"]  # never "test" vs "train"
        assert split.counts("val") == [2, 2, 2] and split.validation == f"{held}/"
    # val/ is validation; test/ is left for eval, and said so.
    root = write_digit_folder(tmp_path / "three" / "train")
    write_digit_folder(tmp_path / "three" / "val", per_class=2)
    write_digit_folder(tmp_path / "three" / "test", per_class=1)
    split = load_data(str(tmp_path / "three"))
    assert split.validation == "val/ (test/ left out)" and split.counts("val") == [2, 2, 2]
    res = train.fit(model="lenet5", data=str(tmp_path / "three"), strategy="scratch", epochs=1,
                    num_workers=0, progress=False, out=str(tmp_path / "run"))  # fmt: skip
    assert res["validation"] == "val/ (test/ left out)" and res["val_images"] == 6
    assert "(val/ (test/ left out))" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (("val", "test"), "holds split folders (test/, val/) where class folders"),
        (("train", "val", "valid"), "has val/ and valid/: keep one validation folder"),
    ],
)
def test_split_folder_mistakes_are_one_line_errors(tmp_path, capsys, layout, message):
    for name in layout:
        write_digit_folder(tmp_path / "d" / name, per_class=2)
    code, err = run_cli(capsys, "fit", "--data", str(tmp_path / "d"), "--strategy", "scratch",
                        "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_eval_scores_the_whole_folder_it_is_given(tmp_path, capsys):
    """A held-out folder is scored whole (not the run's --val-split of it), a folder with
    test/ is scored on test/, and --split run-val reproduces the run's validation split."""
    data = write_digit_folder(tmp_path / "data", per_class=10)
    out = tmp_path / "run"
    train.fit(model="lenet5", data=str(data), strategy="scratch", epochs=2, num_workers=0,
              progress=False, out=str(out), val_split=0.2)  # fmt: skip
    best = str(out / "best.safetensors")
    heldout = write_digit_folder(tmp_path / "heldout", classes=(0, 1, 2), per_class=12)
    ev = train.evaluate_checkpoint(best, str(heldout))
    assert ev["count"] == 36 and "every image in" in ev["scored"]
    assert ev["report"].startswith("scored 36 of 36 images: every image in")

    write_digit_folder(tmp_path / "split" / "train", per_class=3)
    write_digit_folder(tmp_path / "split" / "test", per_class=4)
    ev = train.evaluate_checkpoint(best, str(tmp_path / "split"))
    assert ev["count"] == 12 and ev["scored"].endswith("test'")

    ev = train.evaluate_checkpoint(best, str(data), split="run-val")
    assert ev["count"] == 6 and "validation split" in ev["scored"]

    # A held-out folder without one of the classes: that class has no images, not 0%.
    partial = write_digit_folder(tmp_path / "partial", classes=(0, 2), per_class=3)
    assert main(["eval", "--checkpoint", best, "--data", str(partial)]) == 0
    text = capsys.readouterr().out
    assert "scored 6 of 6 images" in text
    assert "digit1  no images" in text and "digit1  0.0%" not in text
    unknown = write_digit_folder(tmp_path / "unknown", classes=(0, 7), per_class=2)
    code, err = run_cli(capsys, "eval", "--checkpoint", best, "--data", str(unknown))
    assert code == 2 and "classes the model does not know: digit7" in err[0], err


def test_unreadable_images_are_counted_once_over_epochs(tmp_path):
    root = corrupt_folder(tmp_path)
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        res = train.fit(model="lenet5", data=str(root), strategy="scratch", epochs=3,
                        num_workers=0, val_split=0.5, out=str(tmp_path / "run"),
                        progress=False)  # fmt: skip
    assert res["skipped_images"] == 2
    assert [h["skipped"] for h in res["history"]] == [2, 2, 2]


def test_a_class_without_validation_images_says_so(tmp_path, capsys):
    root = write_digit_folder(tmp_path / "d", classes=(0, 1), per_class=6)
    write_digit_folder(root, classes=(2,), per_class=1)  # one image: none left to validate
    (root / "digit2").rename(root / "rare")
    res = train.fit(model="lenet5", data=str(root), strategy="scratch", epochs=1,
                    num_workers=0, progress=False, out=str(tmp_path / "run"))  # fmt: skip
    assert res["per_class"]["rare"] is None
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["per_class"]["rare"] is None
    assert "rare    no validation images" in capsys.readouterr().out
