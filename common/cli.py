"""What the four command lines share: an argument parser whose bad option is one line and
exit code 2 (not argparse's usage block), and the types that refuse a bad number there.

Zero is never read as "not given": a count that must be positive refuses 0, so an option
left out (``None``) and an option given as 0 can never be confused downstream.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import NoReturn

from .messages import one_line

# argparse says "argument --repeats: must be ..."; the trainer's own checks say "--repeats
# must be ...": one wording for both.
_ARGUMENT = re.compile(r"^argument (\S+): (must|expected) ")


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are ``error: <message> (see PROG --help)``
    on one line, exit code 2. Sub-command parsers made by ``add_subparsers`` are of this
    class too (argparse makes them of the parent's class), each naming its own ``--help``."""

    def error(self, message: str) -> NoReturn:
        message = _ARGUMENT.sub(r"\1 \2 ", one_line(message))
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def integer(text: str) -> int:
    """An ``int`` option's type: the value, or one line saying an integer was expected."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def number(text: str) -> float:
    """A ``float`` option's type: the value (range checks are the caller's), or one line
    saying a number was expected."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def positive_int(text: str) -> int:
    """A count's type: an integer >= 1 (0 is refused, never read as "not given")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_number(text: str) -> float:
    """A positive finite number (seconds, a size): 0 and negatives are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value:g}")
    return value
