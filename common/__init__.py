"""What every package of the project uses and none owns: writing files safely
(``common.files``) and one-line messages (``common.messages``).

The bottom of the import order: common <- weights <- nets <- train <- benchmarks.
"""

from .files import WriteError, atomic_write, atomic_write_bytes, atomic_write_text, check_writable
from .messages import one_line

__all__ = [
    "WriteError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "one_line",
]
