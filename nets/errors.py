"""Exceptions of the nets package (the weights errors are re-exported from ``nets``)."""

from __future__ import annotations


class NetsError(Exception):
    """Base class of the errors this package raises on purpose."""


class UnknownModelError(NetsError, KeyError):
    """A model name that is not registered; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InputSizeError(NetsError, ValueError):
    """An input smaller than the network's minimum, or with the wrong channel count."""


class ImageError(NetsError, ValueError):
    """A file that is not a readable image, or is truncated."""


class UnknownOptionError(NetsError, TypeError):
    """A keyword ``create_model`` and the model's builder do not take (a TypeError too, as a
    constructor's would be)."""


class OptionValueError(NetsError, ValueError):
    """An option given a value it does not take (``global_pool="min"``)."""
