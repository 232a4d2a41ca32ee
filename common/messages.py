"""Messages for people: whatever text an error or a file carries, as one printable line."""

from __future__ import annotations

import re

# ANSI escape sequences (colour, bold, cursor moves) and other control characters: some
# library messages carry them, and they must never reach a user's terminal from a file.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


def one_line(text: object, limit: int = 300) -> str:
    """``text`` as one printable line: escape codes dropped, whitespace collapsed, cut."""
    clean = " ".join(_ESCAPES.sub("", str(text)).split())
    return clean if len(clean) <= limit else clean[: limit - 3].rstrip() + "..."
