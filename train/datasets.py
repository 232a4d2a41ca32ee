"""Data sources (image folder, CSV, the bundled digits), splits, transforms and loaders.

A source becomes two lists of ``(item, label)`` pairs and the class names; an item is a
file path, or for ``digits`` an 8x8 array. Unreadable images are skipped with a warning
and counted (``--strict`` stops the run instead).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import locale
import os
import random
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

import weights as wts
from nets.errors import NetsError
from nets.images import load_image

from .errors import TrainError

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)  # fmt: skip
DIGITS = "digits"


# Sub-folder names that mean a split, not a class (compared without case). Validation
# takes the first of VAL_NAMES present, else test/; evaluation prefers test/.
TRAIN_NAME = "train"
VAL_NAMES = ("val", "valid", "validation")
TEST_NAME = "test"
SPLIT_NAMES = (TRAIN_NAME, *VAL_NAMES, TEST_NAME)


@dataclass
class DataSplit:
    train: list[tuple[object, int]]
    val: list[tuple[object, int]]
    classes: list[str]
    fingerprint: str  # identifies the data and the split, for the feature cache
    kind: str  # "digits", "folder" or "csv"
    validation: str = ""  # where the validation images come from, in words

    def label_of(self, which: str = "train") -> dict[str, int]:
        """Each image's label, by the name the loader reports an unreadable image under
        (its path); empty for the bundled digits, which are never unreadable."""
        if self.kind == DIGITS:
            return {}
        return {str(item): label for item, label in getattr(self, which)}

    def counts(self, which: str = "train") -> list[int]:
        items = self.train if which == "train" else self.val
        out = [0] * len(self.classes)
        for _, label in items:
            out[label] += 1
        return out


# -- the bundled digits --------------------------------------------------------------------
def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits (uint8, 0..16) and their labels, as scikit-learn ships them."""
    with resources.files("train").joinpath("data", "digits.npz").open("rb") as f:
        data = np.load(f)
        return data["images"].copy(), data["labels"].astype(np.int64)


def digits_image(array: np.ndarray) -> Image.Image:
    """An 8x8 digit (0..16) as an 8-bit grayscale image (0..255)."""
    return Image.fromarray((array.astype(np.float32) * (255.0 / 16.0) + 0.5).astype(np.uint8), "L")


# -- sources -------------------------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise TrainError(f"image folder {str(root)!r} has no class sub-folders")
    names = {p.name.lower() for p in folders}
    if names <= set(SPLIT_NAMES):
        found = ", ".join(f"{p.name}/" for p in folders)
        raise TrainError(
            f"image folder {str(root)!r} holds split folders ({found}) where class folders "
            "were expected: give a folder with train/ and val/ (or valid/, validation/, test/) "
            "beside it, each holding one sub-folder per class"
        )
    return folders


def split_folders(root: Path) -> dict[str, Path]:
    """The split sub-folders of ``root`` by lower-case name (``train``, ``val``, ...)."""
    found: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        name = p.name.lower()
        if p.is_dir() and name in SPLIT_NAMES:
            if name in found:
                raise TrainError(
                    f"image folder {str(root)!r} has both {found[name].name}/ and {p.name}/"
                )
            found[name] = p
    return found


def _validation_folder(root: Path, splits: dict[str, Path]) -> Path | None:
    vals = [splits[n] for n in VAL_NAMES if n in splits]
    if len(vals) > 1:
        both = " and ".join(f"{p.name}/" for p in vals)
        raise TrainError(
            f"image folder {str(root)!r} has {both}: keep one validation folder (rename or "
            "move the other)"
        )
    if vals:
        return vals[0]
    return splits.get(TEST_NAME)


def display_name(name: str | os.PathLike) -> str:
    """``name`` as text any file, picture or terminal takes: a file name that is not valid
    UTF-8 (its bytes arrive as surrogates, which neither matplotlib nor a UTF-8 file can
    write) has its bad bytes as backslash escapes (``caf\\xe9``); other names are unchanged."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _class_names(root: Path, folders: list[Path]) -> list[str]:
    """The class names of ``folders``, those not valid UTF-8 escaped (``display_name``)
    with a warning that says so: every run, report, checkpoint and prediction then names
    the class the same way, and ``eval`` on the same folder finds the same names."""
    names = [display_name(p.name) for p in folders]
    escaped = [n for p, n in zip(folders, names, strict=True) if n != p.name]
    if escaped:
        shown = ", ".join(f"'{n}'" for n in escaped[:3]) + (" ..." if len(escaped) > 3 else "")
        warnings.warn(
            f"{len(escaped)} class folder name(s) in '{display_name(root)}' are not valid "
            f"UTF-8: the class is named with backslash escapes ({shown}) in the run's "
            "reports, checkpoints and predictions",
            stacklevel=4,
        )
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise TrainError(
                f"image folder '{display_name(root)}' has two class folders named "
                f"'{twice[0]}' once the one that is not valid UTF-8 is escaped: rename one"
            )
    return names


def _scan_folder(root: Path, classes: list[str] | None = None) -> tuple[list, list[str]]:
    folders = _class_folders(root)
    names = _class_names(root, folders)
    if classes is not None and names != classes:
        raise TrainError(
            f"{str(root)!r} has classes {names}, but the training folder has {classes}"
        )
    items = []
    for label, folder in enumerate(folders):
        files = _images_in(folder)
        if not files:
            raise TrainError(f"class folder {str(folder)!r} has no images")
        items += [(str(p), label) for p in files]
    return items, names


# Header names of the two CSV columns (compared without case), as spreadsheets and other
# tools name them.
PATH_COLUMNS = ("path", "file", "filename", "image", "img", "filepath")
LABEL_COLUMNS = ("label", "class", "target", "category")


def _locale_encoding() -> str:
    return locale.getpreferredencoding(False)


def _csv_text(path: Path) -> str:
    """The CSV as text: UTF-8 (a byte-order mark, as Excel writes, is dropped), else the
    locale's encoding with a warning, else one line naming the file and the encodings."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainError(f"CSV {str(path)!r} cannot be read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        where = f"line {line}, byte 0x{raw[exc.start]:02x}"
    fallback = _locale_encoding()
    tried = "UTF-8"
    if codecs.lookup(fallback).name != "utf-8":
        try:
            text = raw.decode(fallback)
        except UnicodeDecodeError:
            tried += f" nor {fallback}"
        else:
            warnings.warn(
                f"CSV {str(path)!r} is not UTF-8 ({where}); read as {fallback}, this "
                "machine's encoding. Save it as UTF-8 so that it reads the same everywhere",
                stacklevel=3,
            )
            return text
    raise TrainError(
        f"CSV {str(path)!r} is not {tried} text ({where}): save it as UTF-8 (in a "
        "spreadsheet: 'CSV UTF-8')"
    )


def _header_columns(row: list[str]) -> tuple[int, int] | None:
    """The (path, label) column indices a header row names, or None if it is no header."""
    names = [c.strip().lower() for c in row]
    path_col = next((i for i, n in enumerate(names) if n in PATH_COLUMNS), None)
    label_col = next((i for i, n in enumerate(names) if n in LABEL_COLUMNS), None)
    if path_col is None or label_col is None:
        return None
    return path_col, label_col


def _csv_image(csv_path: Path, file: str) -> Path:
    return Path(file) if os.path.isabs(file) else csv_path.parent / file


def same_file_key(path: str) -> str:
    """One key per file on disk, however it is spelled (``./a.png``, a symlink to it)."""
    return os.path.normcase(os.path.realpath(path))


def _read_csv(path: Path) -> tuple[list, list[str]]:
    """``path,label`` rows (a header row is optional), each image once, and the classes.

    The first row is a header when its first field is not an existing file and it names
    the two columns (path/file/filename/image/img/filepath, label/class/target/category,
    any case, any order). A row repeating an image with the same label is dropped (counted
    in a warning); the same image under two labels is an error naming both rows.
    """
    rows: list[tuple[str, str]] = []
    first_row: dict[str, tuple[int, str, str]] = {}  # file key -> (line, label, as written)
    dropped = 0
    columns = (0, 1)
    seen_first = False
    for lineno, row in enumerate(csv.reader(io.StringIO(_csv_text(path), newline="")), start=1):
        if not row or not "".join(row).strip():
            continue
        if not seen_first:
            seen_first = True
            named = _header_columns(row)
            if not _csv_image(path, row[0].strip()).is_file():
                if named is not None:
                    columns = named
                    continue
                if len(row) >= 2 and Path(row[0].strip()).suffix.lower() not in IMAGE_EXTENSIONS:
                    raise TrainError(
                        f"{path}:{lineno}: {','.join(row)!r} is neither an image row nor a "
                        f"header: expected 'path,label' (a header names the columns: "
                        f"{'/'.join(PATH_COLUMNS)} and {'/'.join(LABEL_COLUMNS)})"
                    )
        if len(row) <= max(columns):
            raise TrainError(f"{path}:{lineno}: expected 'path,label', got {row!r}")
        file, label = row[columns[0]].strip(), row[columns[1]].strip()
        full = _csv_image(path, file)
        if not full.is_file():
            raise TrainError(f"{path}:{lineno}: image {file!r} does not exist")
        if not label:
            raise TrainError(f"{path}:{lineno}: image {file!r} has no label")
        key = same_file_key(str(full))
        if key in first_row:
            line, old, written = first_row[key]
            if old != label:
                raise TrainError(
                    f"{path}:{line} and {path}:{lineno} give the image {written!r} two labels "
                    f"({old!r} and {label!r}): keep the right one"
                )
            dropped += 1
            continue
        first_row[key] = (lineno, label, file)
        rows.append((str(full), label))
    if not rows:
        raise TrainError(f"CSV {str(path)!r} lists no images")
    if dropped:
        warnings.warn(
            f"CSV {str(path)!r} lists {dropped} image(s) more than once with the same label; "
            "each is used once",
            stacklevel=2,
        )
    classes = sorted({label for _, label in rows})
    index = {name: i for i, name in enumerate(classes)}
    return [(file, index[label]) for file, label in rows], classes


def _check_each_image_once(train: list, val: list, dataset: str) -> None:
    """One file (by its real path: a copy through a symlink is the same file) must never
    be both a training and a validation image, nor carry two labels: validation would
    measure images the model trained on."""
    seen: dict[str, tuple[str, int, str]] = {}
    for split, items in (("training", train), ("validation", val)):
        for item, label in items:
            key = same_file_key(str(item))
            if key not in seen:
                seen[key] = (split, label, str(item))
                continue
            other_split, other_label, other = seen[key]
            if other_label != label:
                raise TrainError(
                    f"data {dataset!r}: {other!r} and {str(item)!r} are the same image under two "
                    "classes; keep it in one"
                )
            if other_split != split:
                raise TrainError(
                    f"data {dataset!r}: {other!r} and {str(item)!r} are the same image, once for "
                    "training and once for validation; validation must hold images the model "
                    "never trains on"
                )


def stratified_split(items: list, n_classes: int, fraction: float, seed: int) -> tuple[list, list]:
    """``(train, val)`` of ``(item, label)`` pairs: ``fraction`` of each class held out
    (at least one image of a class with two or more), shuffled by ``seed``."""
    if not 0.0 < fraction < 1.0:
        raise TrainError(f"--val-split must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    train, val = [], []
    for label in range(n_classes):
        members = [it for it in items if it[1] == label]
        rng.shuffle(members)
        n_val = round(len(members) * fraction)
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        val += members[:n_val]
        train += members[n_val:]
    return train, val


def _cap(items: list, n_classes: int, max_per_class: int | None) -> list:
    if not max_per_class:
        return items
    seen = [0] * n_classes
    out = []
    for it in items:
        if seen[it[1]] < max_per_class:
            seen[it[1]] += 1
            out.append(it)
    return out


def _fingerprint(parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _file_stamp(items: list) -> list:
    out = []
    for path, label in items:
        try:
            st = os.stat(path)
            out.append((path, label, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((path, label, None, None))
    return out


def load_data(
    dataset: str, *, val_split: float = 0.2, seed: int = 0, max_per_class: int | None = None
) -> DataSplit:
    """Read DATA (a folder, a CSV or ``digits``) into a stratified train/val split."""
    if dataset == DIGITS:
        images, labels = load_digits_arrays()
        items = [(images[i], int(labels[i])) for i in range(len(labels))]
        classes = [str(i) for i in range(10)]
        train, val = stratified_split(items, 10, val_split, seed)
        train, val = _cap(train, 10, max_per_class), _cap(val, 10, max_per_class)
        digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
        fp = _fingerprint(("digits", digest, val_split, seed, max_per_class))
        validation = f"{val_split:g} of each class (--val-split, seed {seed})"
        return DataSplit(train, val, classes, fp, "digits", validation)

    path = Path(dataset)
    if not path.exists():
        raise TrainError(f"data {dataset!r} is neither 'digits', an image folder nor a CSV file")
    by_fraction = f"{val_split:g} of each class (--val-split, seed {seed})"
    if path.is_file():
        items, classes = _read_csv(path)
        kind, validation = "csv", by_fraction
        train, val = stratified_split(items, len(classes), val_split, seed)
    else:
        kind = "folder"
        splits = split_folders(path)
        held = _validation_folder(path, splits) if TRAIN_NAME in splits else None
        if held is not None:
            train, classes = _scan_folder(splits[TRAIN_NAME])
            val, _ = _scan_folder(held, classes)
            validation = f"{held.name}/"
            others = [p.name for n, p in splits.items() if n != TRAIN_NAME and p != held]
            if others:
                validation += f" ({', '.join(f'{o}/' for o in others)} left out)"
        elif TRAIN_NAME in splits:
            # train/ alone (with no held-out folder): it is the data, split by fraction.
            items, classes = _scan_folder(splits[TRAIN_NAME])
            train, val = stratified_split(items, len(classes), val_split, seed)
            validation = f"{by_fraction} of {splits[TRAIN_NAME].name}/"
        else:
            items, classes = _scan_folder(path)
            train, val = stratified_split(items, len(classes), val_split, seed)
            validation = by_fraction
    if len(classes) < 2:
        raise TrainError(
            f"data {dataset!r} has only one class ({classes[0]!r}); a classifier needs at least two"
        )
    train = _cap(train, len(classes), max_per_class)
    val = _cap(val, len(classes), max_per_class)
    if not val:
        raise TrainError(f"data {dataset!r} leaves no images for validation")
    _check_each_image_once(train, val, dataset)
    fp = _fingerprint((kind, _file_stamp(train), _file_stamp(val), classes))
    return DataSplit(train, val, classes, fp, kind, validation)


def load_eval_data(
    dataset: str,
    classes: list[str],
    *,
    split: str = "auto",
    val_split: float = 0.2,
    seed: int = 0,
    max_per_class: int | None = None,
) -> tuple[list[tuple[object, int]], str]:
    """The images ``eval`` scores, labelled by the model's ``classes``, and where they come
    from in words.

    ``split="auto"``: a folder's ``test/`` part (else its validation folder) when it has
    one, else every image of the folder or CSV; for ``digits`` the run's validation split
    (the same images whatever the seed of ``eval``). ``split="run-val"``: the validation
    split the training run held out (same fraction and seed), for a folder it trained on.
    """
    if split not in ("auto", "run-val"):
        raise TrainError(f"--split must be 'auto' or 'run-val', got {split!r}")
    if dataset == DIGITS or split == "run-val":
        data = load_data(dataset, val_split=val_split, seed=seed, max_per_class=max_per_class)
        items, names = data.val, data.classes
        where = f"the run's validation split of {dataset} ({data.validation})"
    else:
        path = Path(dataset)
        if not path.exists():
            raise TrainError(
                f"data {dataset!r} is neither 'digits', an image folder nor a CSV file"
            )
        if path.is_file():
            items, names = _read_csv(path)
            where = f"every image listed in {dataset}"
        else:
            splits = split_folders(path)
            part = splits.get(TEST_NAME) or _validation_folder(path, splits)
            if part is None and TRAIN_NAME in splits:
                part = splits[TRAIN_NAME]
            part = part or path
            items, names = _scan_folder(part)
            where = f"every image in {str(part)!r}"
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise TrainError(
            f"data {dataset!r} has classes the model does not know: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''} (the model's: {', '.join(classes[:5])}"
            f"{' ...' if len(classes) > 5 else ''})"
        )
    index = [classes.index(n) for n in names]
    return [(item, index[label]) for item, label in items], where


# -- transforms ----------------------------------------------------------------------------


def eval_transform(p: wts.Preprocessing, in_chans: int = 3) -> v2.Compose:
    """The checkpoint's evaluation preprocessing: ``weights.transforms``, one path."""
    return wts.transforms(p, in_chans=in_chans)


# -- datasets and loaders ------------------------------------------------------------------
class ImageDataset(torch.utils.data.Dataset):
    """``(item, label)`` pairs -> ``(tensor, label)``; ``None`` for an unreadable image."""

    def __init__(self, items: list, transform, in_chans: int = 3) -> None:
        self.items = items
        self.transform = transform
        self.in_chans = in_chans

    def __len__(self) -> int:
        return len(self.items)

    def load(self, item: object) -> Image.Image:
        if isinstance(item, np.ndarray):
            image = digits_image(item)
            return image if self.in_chans == 1 else image.convert("RGB")
        image = load_image(item)  # RGB, or ImageError with a one-line reason
        return image.convert("L") if self.in_chans == 1 else image

    def __getitem__(self, index: int):
        item, label = self.items[index]
        try:
            image = self.load(item)
        except NetsError as exc:
            warnings.warn(f"skipping unreadable image: {exc}", stacklevel=1)
            return None, str(item)
        return self.transform(image), label


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack the good samples; return the unreadable ones' names alongside."""
    good = [(x, y) for x, y in batch if x is not None]
    skipped = [y for x, y in batch if x is None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
    xs, ys = zip(*good, strict=True)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long), skipped


def default_workers(requested: int | None, device: torch.device | None = None) -> int:
    """Loader processes: on CUDA up to 8 (one core left to the main process); on the CPU,
    where they compete with the model for cores, none on a small machine (<= 4 cores)."""
    if requested is not None:
        return max(0, requested)
    cpus = os.cpu_count() or 1
    if device is not None and device.type == "cuda":
        return max(0, min(8, cpus - 1))
    return 0 if cpus <= 4 else min(4, cpus // 4)
