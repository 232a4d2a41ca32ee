"""train: data sources, the bundled digits, and the one-line errors of bad data."""

from __future__ import annotations

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
