"""Writing files so that a crash or a bad destination never leaves half a file, and finding
out before a long job that its output folder cannot be written.

Every package writes through ``atomic_write``: the data goes to a temporary file in the
destination folder, which is renamed onto the destination only once complete.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .messages import one_line


class WriteError(OSError):
    """A destination that cannot be written (read-only, no permission, not a folder, full).

    Its message is one line naming the path; being an ``OSError``, code that caught the plain
    error from a write still catches it.
    """


def _umask() -> int:
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _why(exc: OSError) -> str:
    return exc.strerror or one_line(exc, 120) or type(exc).__name__


# Errors of a write that say the destination is the problem, not the data being written
# (a download's network error, say, must keep its own meaning).
_DESTINATION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


# The name of check_writable's probe file begins so: what lists a folder may pass it over.
PROBE_PREFIX = ".write-test-"


def check_writable(folder: str | os.PathLike, what: str = "output folder") -> None:
    """Raise ``WriteError`` (one line naming ``folder`` and ``what`` it is for) unless files
    can be created in ``folder``, or in the folder that would hold it when it does not exist
    yet. Nothing is left behind: no folder is created, the probe file is removed.

    Called before a long job, so that it fails now rather than at its first write.
    """
    folder = Path(folder)
    probe_in = folder
    while not probe_in.exists():  # the nearest folder that exists must take the new ones
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if probe_in.exists() and not probe_in.is_dir():
        raise WriteError(f"{what} {str(folder)!r} cannot be written: {str(probe_in)!r} is a file")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_in, prefix=PROBE_PREFIX, suffix=".part")
    except OSError as exc:
        verb = "write to" if probe_in == folder else "create"
        raise WriteError(f"{what}: cannot {verb} folder {str(folder)!r} ({_why(exc)})") from None
    os.close(fd)
    os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file onto ``path``.

    A crash or an error leaves either the old file or none, never half a file. The file
    gets the permissions a plain ``open(path, "w")`` would give it: an existing file's
    mode, else 0666 less the umask (``mkstemp`` alone would leave 0600). A destination
    that cannot be written raises ``WriteError``, one line naming the folder.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise WriteError(
            f"cannot write {str(path)!r}: folder {str(folder)!r} is not writable ({_why(exc)})"
        ) from None
    os.close(fd)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        try:
            write(tmp)
        except OSError as exc:
            if exc.errno not in _DESTINATION_ERRNOS or isinstance(exc, WriteError):
                raise
            raise WriteError(f"cannot write {str(path)!r} in folder {str(folder)!r} "
                             f"({_why(exc)})") from None  # fmt: skip
        try:
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as exc:
            raise WriteError(f"cannot write {str(path)!r} in folder {str(folder)!r} "
                             f"({_why(exc)})") from None  # fmt: skip
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding=encoding))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
