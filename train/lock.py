"""A run owns its ``--out`` folder: an exclusive lock on a file in it, taken before the run
writes anything there and held until it ends.

Two runs started into one folder would otherwise both pass the "is it empty?" check and
write into it together (a log of epochs 1, 1, 2, 2). The lock is ``flock``'s: the operating
system drops it when the process ends however it ends, so a killed run leaves at most an
unlocked file behind, which the next run (``--resume`` included) takes over.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import TrainError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not protected from each other
    fcntl = None

LOCK = ".train.lock"  # in --out; not a run file: an empty folder holding only it is empty


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones this call created, deepest
    first (to remove again if the run ends before writing anything)."""
    missing = []
    p = folder
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    created = []
    for p in reversed(missing):
        try:
            os.mkdir(p)
        except FileExistsError:  # another process made it meanwhile: not ours to remove
            continue
        created.append(p)
    return created[::-1]


def _remove_if_empty(folders: list[Path]) -> None:
    for p in folders:  # deepest first; a folder that holds anything stops the walk
        try:
            os.rmdir(p)
        except OSError:
            return


def _holder(fd: int) -> str:
    """What the lock file says of the run that holds it: ``process N``, or ''."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""


class FolderLock:
    """The lock a run holds on its output folder; ``release`` gives it up, removes the lock
    file, and removes the folders taking it created if nothing else was written in them."""

    def __init__(self, folder: Path, fd: int | None, created: list[Path]) -> None:
        self.folder = folder
        self.path = folder / LOCK
        self._fd = fd
        self._created = created

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlinked while still held: a run that opens the old file after this finds, once
        # it has the lock, that the name no longer leads to it, and starts again.
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        _remove_if_empty(self._created)


def lock_folder(folder: str | os.PathLike, what: str = "--out") -> FolderLock:
    """Take the exclusive lock on ``folder`` (created if missing) for this run, or raise
    ``TrainError``, one line naming ``folder`` and saying another run holds it."""
    folder = Path(folder)
    created: list[Path] = []
    if fcntl is None:
        return FolderLock(folder, None, created)
    path = folder / LOCK
    for _ in range(20):  # a lock file removed under us is taken again, a few times at most
        try:
            created += _make_folders(folder)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was removed meanwhile by a run giving it up
            continue
        except OSError as exc:
            _remove_if_empty(created)
            raise TrainError(
                f"cannot write to {what} {str(folder)!r} ({exc.strerror or type(exc).__name__})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            _remove_if_empty(created)
            raise TrainError(
                f"{what} {str(folder)!r} is in use by another run{holder}, which holds its "
                f"lock {LOCK}: wait for it to end, or pass another {what}"
            ) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return FolderLock(folder, fd, created)
        os.close(fd)  # the holder released it and removed the file: take the new one
    _remove_if_empty(created)
    raise TrainError(f"{what} {str(folder)!r}: could not take its lock {LOCK}; try again")
