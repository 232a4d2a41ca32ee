"""What every package of the project uses and none owns: writing files safely
(``common.files``), one-line messages (``common.messages``) and the command lines'
argument parser, whose bad option is one line (``common.cli``).

The bottom of the import order: common <- weights <- nets <- train <- benchmarks.
"""

from .cli import ArgumentParser
from .files import WriteError, atomic_write, atomic_write_bytes, atomic_write_text, check_writable
from .messages import one_line

__all__ = [
    "ArgumentParser",
    "WriteError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "one_line",
]
