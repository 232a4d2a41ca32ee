"""Exceptions raised for bad weights input.

Each carries a complete one-line message; the command lines print it and exit with code 2.
"""

from __future__ import annotations


class WeightsError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownTagError(WeightsError, KeyError):
    """A weights tag that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointFormatError(WeightsError):
    """A file whose content is not a checkpoint format we read."""


class CorruptCheckpointError(WeightsError):
    """A checkpoint file that is truncated or damaged."""


class UnsafeCheckpointError(CheckpointFormatError):
    """A pickle that asks to import or call Python code: refused, and never executed."""


class TrainingCheckpointError(CheckpointFormatError):
    """The trainer's ``checkpoint.pt`` (for ``--resume``) where model weights were expected."""


class DtypeError(WeightsError):
    """A tensor whose dtype cannot stand for the parameter it is loaded into."""


class ChecksumError(WeightsError):
    """A downloaded or cached file whose sha256 does not match the registry."""


class DownloadError(WeightsError):
    """A download that could not reach its URL."""


class IncompatibleCheckpointError(WeightsError):
    """A checkpoint whose keys or shapes do not fit the architecture.

    ``missing``, ``unexpected`` and ``mismatched`` hold the complete lists; the message
    names how many of each and the first few.
    """

    def __init__(
        self,
        arch: str,
        origin: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.arch, self.origin = arch, origin  # origin: the tag or the file, in words
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        super().__init__(self._message())

    @property
    def source(self) -> str:
        """The old name of ``origin`` (``source`` elsewhere is a converter's format key)."""
        return self.origin

    def _message(self, show: int = 3) -> str:
        def few(items: list[str]) -> str:
            more = f", ... {len(items) - show} more" if len(items) > show else ""
            return ", ".join(items[:show]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({few(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({few(self.unexpected)})")
        if self.mismatched:
            shapes = [f"{k} {list(got)} vs {list(want)}" for k, got, want in self.mismatched]
            parts.append(f"{len(self.mismatched)} mis-shaped ({few(shapes)})")
        return (
            f"checkpoint from {self.origin} does not fit architecture {self.arch!r}: "
            + "; ".join(parts)
        )
