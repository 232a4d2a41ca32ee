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
HDF5 = "hdf5"

# The HDF5 format signature. It sits at offset 0, or after a user block at 512, 1024, 2048 ...
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)
# Metadata ``format`` of a state dict read from a Keras HDF5 file: keys ``<layer>/<weight>``
# (``conv1/kernel``, ``conv1_bn/moving_mean``), tensors in Keras' own layout (HWIO kernels).
KERAS_H5 = "keras-h5"

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
        for offset in _HDF5_OFFSETS:
            f.seek(offset)
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return HDF5
    if head[:4] == b"PK\x03\x04":
        return TORCH_ZIP
    if head[:2] == b"\x80\x02":
        return TORCH_PICKLE
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= 100_000_000 and head[8:9] == b"{":
            return SAFETENSORS
    raise CheckpointFormatError(
        f"{str(path)!r} is not a checkpoint: expected a .safetensors file, a PyTorch .pth "
        "(zip or pickle) or a Keras .h5 weights file"
    )


def read_checkpoint(path: str | os.PathLike) -> tuple[StateDict, dict[str, str]]:
    """Read a checkpoint file into ``(state_dict, metadata)``.

    Metadata is the safetensors header's ``__metadata__`` (empty for .pth files; for a Keras
    HDF5 file ``format=keras-h5`` and the file's ``keras_version``/``backend`` attributes).
    """
    fmt = sniff_format(path)
    name = str(path)
    if fmt == SAFETENSORS:
        return _read_safetensors(name)
    if fmt == HDF5:
        return read_keras_h5(name)
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


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_keras_h5(name: str) -> tuple[StateDict, dict[str, str]]:
    """Read a Keras weights file in the legacy HDF5 layout into ``{"<layer>/<weight>": tensor}``.

    The layout (Keras' ``save_weights`` in .h5, what keras.applications downloads): the root
    (or a full model file's ``model_weights`` group) lists ``layer_names``; each layer's group
    lists ``weight_names`` (``conv1/kernel:0`` in Keras 2 files, ``conv1/kernel`` in Keras 3),
    datasets at those paths. Keys keep the layer name and the weight's last path component
    without the ``:0`` suffix; tensors keep Keras' layout (converters transpose them).
    """
    try:
        import h5py
    except ImportError:
        raise CheckpointFormatError(
            f"{name!r} is an HDF5 file; reading Keras .h5 weights needs h5py (pip install h5py)"
        ) from None
    import numpy as np

    state_dict: StateDict = {}
    try:
        with h5py.File(name, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                raise CheckpointFormatError(
                    f"{name!r} is an HDF5 file without Keras' layer_names attribute: not a Keras "
                    "weights file in the legacy .h5 layout"
                )
            meta = {"format": KERAS_H5}
            for attr in ("keras_version", "backend"):
                if attr in root.attrs:
                    meta[attr] = _text(root.attrs[attr])
            for layer in (_text(n) for n in root.attrs["layer_names"]):
                group = root[layer]
                for weight in (_text(w) for w in group.attrs.get("weight_names", ())):
                    leaf = weight.rsplit("/", 1)[-1].split(":", 1)[0]
                    key = f"{layer}/{leaf}"
                    if key in state_dict:
                        raise CheckpointFormatError(f"{name!r}: two weights are named {key!r}")
                    state_dict[key] = torch.from_numpy(np.array(group[weight], dtype=np.float32))
    except CheckpointFormatError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpointError(
            f"checkpoint {name!r} is truncated or corrupted ({reason})"
        ) from None
    if not state_dict:
        raise CheckpointFormatError(f"{name!r} is a Keras .h5 file without weights")
    return state_dict, meta


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
