"""MkDocs hook: the pages link to measured results kept beside their data, outside docs/
(``../benchmarks/results/<run>/``). The site copies each such file under ``_repo/`` and
points the link there, so those links are checked like any other and work on the site."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

OUTSIDE = re.compile(r"\]\(\.\./([^)#\s]+)")
PREFIX = "_repo/"


def _targets(docs_dir: Path) -> set[str]:
    found = set()
    for page in docs_dir.glob("*.md"):
        found |= set(OUTSIDE.findall(page.read_text(encoding="utf-8")))
    return found


def on_files(files, config):
    docs_dir = Path(config["docs_dir"])
    repo = docs_dir.parent
    for target in sorted(_targets(docs_dir)):
        source = repo / target
        if source.is_file():  # a missing one stays broken, and strict mode says so
            copy = File.generated(
                config,
                PREFIX + target,
                abs_src_path=str(source),
                inclusion=InclusionLevel.NOT_IN_NAV,
            )
            files.append(copy)
    return files


def on_page_markdown(markdown, page, config, files):
    # Every page sits at the top of docs/, so "../x" there is "_repo/x" on the site.
    return OUTSIDE.sub(lambda m: "](" + PREFIX + m.group(1), markdown)
