"""Reading and writing checkpoint files.

The format is recognised from the first bytes of the file, never from its name:
safetensors (8-byte little-endian header length, then a JSON header), a PyTorch zip
archive (``PK\\x03\\x04``, what ``torch.save`` writes since 1.6) or a legacy PyTorch
pickle (protocol 2 header, ``\\x80\\x02``).

Every pickle the project reads goes through ``load_pickle``, the one call of ``torch.load``
in the package: ``weights_only=True`` (PyTorch's restricted unpickler: tensors, numbers,
strings, lists, tuples and dicts, never an import or a call) and ``map_location="cpu"``. A
file that asks for anything else is refused with ``UnsafeCheckpointError``, unexecuted.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from common import atomic_write, one_line

from .errors import (
    CheckpointFormatError,
    CorruptCheckpointError,
    DtypeError,
    TrainingCheckpointError,
    UnsafeCheckpointError,
)
from .types import StateDict

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
# The ``format`` entry of the trainer's own ``checkpoint.pt`` (train/checkpoint.py).
TRAIN_CHECKPOINT = "nets-train-checkpoint"
# Dtypes a float parameter may be stored in: cast to the parameter's dtype when loaded.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


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
    obj = load_pickle(name)
    if is_training_checkpoint(obj):
        folder = os.path.dirname(name) or "."
        raise TrainingCheckpointError(
            f"{name!r} is a training checkpoint of python -m train (optimizer state, for "
            f"--resume), not model weights: use {os.path.join(folder, 'best.safetensors')!r}, "
            f"or python -m train predict/eval --checkpoint {name}"
        )
    return _unwrap(obj, name), {}


def _reason(exc: BaseException) -> str:
    return one_line(exc, 160) or type(exc).__name__


# What PyTorch's weights-only unpickler says when a file asks for an import or a call (as
# opposed to a damaged file, which fails with EOFError, a zip error or a bad opcode).
_UNSAFE = re.compile(
    r"Unsupported global|not an allowed global|unrecognized function|"
    r"Can only (?:build|create|persistent)"
)


def load_pickle(path: str | os.PathLike) -> object:
    """The object in a PyTorch file (zip or legacy pickle), unpickled without running code.

    ``weights_only=True``: only tensors and plain data come back. A file that asks the
    unpickler to import or call anything (a ``__reduce__`` payload, a pickled class) raises
    ``UnsafeCheckpointError`` before any of it runs; a damaged file raises
    ``CorruptCheckpointError``.
    """
    name = str(path)
    try:
        # A file object, not the name: torch.load routes "*.safetensors" names to safetensors
        # whatever they contain, and the format here is decided by content alone.
        # torch warns about odd pickle protocols in damaged files; the error says it all.
        with open(name, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if _UNSAFE.search(text):
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" (it imports {found.group(1)})" if found else ""
            raise UnsafeCheckpointError(
                f"{name!r} is a pickle that asks to run Python code or build objects other "
                f"than tensors and plain data{what}; refused without running it. Load only "
                "files you trust, and prefer .safetensors"
            ) from None
        raise CorruptCheckpointError(
            f"checkpoint {name!r} is truncated or corrupted ({_reason(exc)})"
        ) from None
    except OSError as exc:
        raise CorruptCheckpointError(
            f"checkpoint {name!r} cannot be read ({_reason(exc)})"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for damaged files
        raise CorruptCheckpointError(
            f"checkpoint {name!r} is truncated or corrupted ({_reason(exc)})"
        ) from None


def is_training_checkpoint(obj: object) -> bool:
    """Whether ``obj`` is the trainer's checkpoint (model, optimizer and run state)."""
    if not isinstance(obj, Mapping):
        return False
    if obj.get("format") == TRAIN_CHECKPOINT:
        return True
    # Checkpoints written before the format entry carry the same keys.
    return {"model", "optimizer", "config", "classes"} <= set(obj)


def _read_safetensors(name: str) -> tuple[StateDict, dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        with open(name, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        tensors = load_file(name, device="cpu")
    except (SafetensorError, ValueError, OSError, struct.error) as exc:
        raise CorruptCheckpointError(
            f"checkpoint {name!r} is truncated or corrupted ({_reason(exc)})"
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
        raise CorruptCheckpointError(
            f"checkpoint {name!r} is truncated or corrupted ({_reason(exc)})"
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


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: Mapping[str, str],
    *,
    check=None,
) -> None:
    """Write ``state_dict`` as safetensors with string ``metadata``, atomically.

    ``check(tmp_path)``, when given, runs on the complete temporary file before it is
    renamed into place; if it raises, nothing is written under ``path``.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}

    def write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=meta)
        if check is not None:
            check(tmp)

    atomic_write(path, write)


def dtype_counts(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """How many tensors of each dtype, e.g. ``{"float16": 120, "int64": 53}``."""
    counts: dict[str, int] = {}
    for v in state_dict.values():
        name = str(v.dtype).replace("torch.", "")
        counts[name] = counts.get(name, 0) + 1
    return counts


def check_dtypes(
    state_dict: Mapping[str, torch.Tensor],
    origin: str,
    expected: Mapping[str, torch.dtype] | None = None,
) -> list[str]:
    """Refuse tensors whose dtype cannot stand for a float parameter; name the casts.

    A float parameter (every key but BatchNorm's ``num_batches_tracked`` counters, or the
    keys ``expected`` maps to a floating dtype) must be stored as float32, float16, bfloat16
    or float64; those are cast on loading, and the casts are returned as lines such as
    ``"float16 -> float32 (120 tensors)"``. An integer, boolean, complex or 8-bit float
    tensor raises ``DtypeError`` naming the tensor: copied into a float parameter it would
    load silently and predict garbage.
    """
    casts: dict[tuple[str, str], int] = {}
    for key, value in state_dict.items():
        want = expected.get(key) if expected is not None else None
        if want is None:
            if expected is not None and key not in expected:
                continue  # not loaded: the key check reports it
            want = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        if not want.is_floating_point:
            if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
                raise DtypeError(
                    f"{origin}: tensor {key!r} is {_dtype(value.dtype)}, expected an integer "
                    "counter"
                )
            continue
        if value.dtype not in FLOAT_DTYPES:
            raise DtypeError(
                f"{origin}: tensor {key!r} is {_dtype(value.dtype)}, but it holds a float "
                f"parameter (expected float32; float16, bfloat16 and float64 are cast)"
            )
        if value.dtype != want:
            pair = (_dtype(value.dtype), _dtype(want))
            casts[pair] = casts.get(pair, 0) + 1
    return [f"{a} -> {b} ({n} tensor{'s' if n > 1 else ''})" for (a, b), n in casts.items()]


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
