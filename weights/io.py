"""Reading and writing checkpoint files.

The format is recognised from the first bytes of the file, never from its name:
safetensors (8-byte little-endian header length, then a JSON header), a PyTorch zip
archive (``PK\\x03\\x04``, what ``torch.save`` writes since 1.6) or a legacy PyTorch
pickle (protocol 2 header, ``\\x80\\x02``). Pickles are read only with
``weights_only=True`` and ``map_location="cpu"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CheckpointFormatError, CorruptCheckpointError

StateDict = dict[str, torch.Tensor]

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"
TORCH_PICKLE = "torch-pickle"

# Containers that training scripts wrap state dicts in; unwrapped in this order.
_WRAPPERS = ("state_dict", "model_state_dict", "model", "ema", "module")


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sniff_format(path: str | os.PathLike) -> str:
    """Name the container format of ``path`` from its content."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointFormatError(f"checkpoint {str(path)!r} does not exist or is not a file")
    with open(path, "rb") as f:
        head = f.read(10)
    if head[:4] == b"PK\x03\x04":
        return TORCH_ZIP
    if head[:2] == b"\x80\x02":
        return TORCH_PICKLE
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= 100_000_000 and head[8:9] == b"{":
            return SAFETENSORS
    raise CheckpointFormatError(
        f"{str(path)!r} is not a checkpoint: expected a .safetensors file or a PyTorch .pth "
        "(zip or pickle)"
    )


def read_checkpoint(path: str | os.PathLike) -> tuple[StateDict, dict[str, str]]:
    """Read a checkpoint file into ``(state_dict, metadata)``.

    Metadata is the safetensors header's ``__metadata__`` (empty for .pth files).
    """
    fmt = sniff_format(path)
    name = str(path)
    if fmt == SAFETENSORS:
        return _read_safetensors(name)
    try:
        # A file object, not the name: torch.load routes "*.safetensors" names to safetensors
        # whatever they contain, and the format here is decided by content alone.
        with open(name, "rb") as f:
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpointError(
            f"checkpoint {name!r} is truncated or corrupted ({reason})"
        ) from None
    return _unwrap(obj, name), {}


def _read_safetensors(name: str) -> tuple[StateDict, dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        with open(name, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        tensors = load_file(name, device="cpu")
    except (SafetensorError, ValueError, OSError, struct.error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpointError(
            f"checkpoint {name!r} is truncated or corrupted ({reason})"
        ) from None
    return tensors, dict(header.get("__metadata__", {}))


def _unwrap(obj: object, name: str) -> StateDict:
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            inner = next((obj[k] for k in _WRAPPERS if k in obj), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise CheckpointFormatError(
            f"{name!r} holds no state dict (expected a mapping of parameter names to tensors)"
        )
    # DataParallel/DistributedDataParallel save every key under "module.".
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file onto ``path``.

    A crash or an error leaves either the old file or none, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, str]
) -> None:
    """Write ``state_dict`` as safetensors with string ``metadata``, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
