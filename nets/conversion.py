"""Converting a checkpoint (a file, or a registered tag) into this library's safetensors for
one architecture, checked by loading it into that architecture before it is renamed into
place: ``python -m nets convert``. It sits in nets, not weights, because the check needs the
architecture; the format work (reading, detecting the layout, renaming) is weights'."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

import common
import weights as wts
from weights.convert import NETS, UNKNOWN, describe, detect_source, to_ours
from weights.loading import tag_of_file
from weights.store import fetch, metadata_for

from .errors import NetsError
from .factory import create_model

__all__ = ["convert_checkpoint"]


def convert_checkpoint(src: str, arch: str, output: str | Path, *, overwrite: bool = False) -> str:
    """Write ``src`` (a checkpoint file or a registered tag) converted for ``arch`` to
    ``output`` (safetensors with our metadata), atomically and only if it loads into
    ``arch``; return the one line that says what was written.

    ``output`` must end in ``.safetensors`` (what is written), and an existing file there is
    replaced only if it is a checkpoint written by this library, or with ``overwrite``."""
    output = Path(output)
    # Before reading a checkpoint of hundreds of megabytes, not after converting it.
    common.check_writable(output.parent, "-o/--output")
    if output.is_dir():
        raise wts.WeightsError(f"-o/--output {str(output)!r} is a folder; give a file name such "
                               f"as {str(output / 'model.safetensors')!r}")  # fmt: skip
    if output.suffix.lower() != ".safetensors":
        # A .pth name would promise torch.load a file it cannot read.
        raise wts.WeightsError(
            f"-o/--output {str(output)!r}: the file written is safetensors; give a name "
            f"ending in .safetensors, such as {str(output.with_suffix('.safetensors'))!r}"
        )
    if output.exists() and not overwrite and not _written_by_us(output):
        raise wts.WeightsError(
            f"-o/--output {str(output)!r} exists and is not a checkpoint written by nets: "
            "pass --overwrite to replace it, or another -o"
        )
    tag = None
    if src in wts.list_tags():
        tag = wts.get_tag(src)
        if tag.arch != arch:
            raise wts.WeightsError(f"weights tag {src!r} is for {tag.arch!r}, not {arch!r}")
        path = fetch(tag)
    else:
        path = Path(src)
    raw, meta = wts.read_checkpoint(path)
    source = detect_source(raw, meta, arch)
    if source == UNKNOWN:
        sample = ", ".join(list(raw)[:3])
        raise wts.WeightsError(
            f"cannot tell the layout of {str(path)!r} (keys such as {sample}): expected "
            "torchvision, TF EfficientNet-Lite or this library's own"
        )
    tag = tag or tag_of_file(arch, Path(path), meta)
    state_dict = to_ours(arch, source, raw, _expected_keys(arch))
    out_meta = metadata_for(
        arch=arch,
        source=source if source != NETS else meta.get("source", NETS),
        source_sha256=wts.sha256_of(path),
        tag=tag,
    )
    # What a file says of its own preprocessing wins over a tag's, as when loading it: a
    # Keras EfficientNet file carries its Normalization constants (weights.keras.conversion).
    own = wts.Preprocessing.from_metadata(describe(source, raw)[0])
    if own is not None:
        out_meta.update(own.as_metadata())
    said = ", the file's own preprocessing" if own else ""
    wts.save_safetensors(
        state_dict, output, out_meta, check=lambda tmp: _loads_into(arch, tmp, source)
    )
    return (
        f"{path} ({source}) -> {output}: {len(state_dict)} tensors for {arch}"
        f"{f', preprocessing of {tag.name}' if tag and not own else said}"
    )


def _written_by_us(path: Path) -> bool:
    """Whether ``path`` is a safetensors file with this library's metadata (a converted
    file, a trainer's best.safetensors): one that a new conversion may replace. Reads the
    header only."""
    from safetensors import safe_open

    try:
        if wts.sniff_format(path) != "safetensors":
            return False
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("format") == NETS
    except Exception:  # noqa: BLE001 - unreadable, truncated, not ours: all mean "not ours"
        return False


def _expected_keys(arch: str) -> list[str] | None:
    """The key names of ``arch`` as built here (on the meta device), for the converters
    that follow our grouping of blocks; None for an unknown arch (``_loads_into`` then
    reports it)."""
    try:
        with torch.device("meta"):
            return list(create_model(arch).state_dict())
    except NetsError:
        return None


def _loads_into(arch: str, file: str, source: str) -> None:
    """Load the converted ``file`` into ``arch`` (shapes only, on the meta device), strictly:
    a file that would not load is never written. A different classifier size, a headless
    (notop) file and another input channel count are what ``create_model`` accepts too."""
    try:
        with torch.device("meta"):
            plain = create_model(arch)
        state_dict, _ = wts.read_checkpoint(file)
        first = state_dict.get(f"{plain.first_conv}.weight")
        include_top = any(k.startswith("head.") for k in state_dict)
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # copies into meta tensors are no-ops, by design
            create_model(
                arch, weights=file, include_top=include_top,
                in_chans=first.shape[1] if first is not None and first.dim() == 4 else None,
            )  # fmt: skip
    except NetsError as exc:
        raise wts.WeightsError(
            f"the converted {source} file does not load into {arch!r}: {exc}"
        ) from None
