"""Training checkpoints (atomic, everything needed to resume) and the exported model."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nets
import weights as wts
from weights.io import atomic_write

from .errors import TrainError

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"


def rng_states() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with torch.save to a temporary file, then rename it into place."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"no checkpoint to resume at {str(path)!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or not a checkpoint
        raise TrainError(
            f"checkpoint {str(path)!r} cannot be read ({type(exc).__name__})"
        ) from None


def check_resume(state: dict, model_name: str, classes: list[str], in_chans: int) -> None:
    """A resumed run must train the same architecture on the same classes."""
    cfg = state.get("config", {})
    if cfg.get("model") != model_name:
        raise TrainError(
            f"--resume: the checkpoint trains {cfg.get('model')!r}, not {model_name!r}"
        )
    if state.get("classes") != classes:
        old = state.get("classes") or []
        raise TrainError(
            f"--resume: the checkpoint's {len(old)} classes differ from the data's "
            f"{len(classes)} classes ({', '.join(old[:5])}... vs {', '.join(classes[:5])}...)"
        )
    if state.get("in_chans", in_chans) != in_chans:
        raise TrainError("--resume: the checkpoint's input channels differ from this run's")


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    classes: list[str],
    preprocessing: wts.Preprocessing,
    extra: dict[str, str] | None = None,
) -> None:
    """Save ``model`` as our safetensors format with its classes and preprocessing.

    Keys of parts the plain architecture lacks (auxiliary classifiers) are left out, so
    ``nets.create_model(arch, weights=path, num_classes=..., in_chans=...)`` loads it
    strictly.
    """
    arch = model.pretrained_cfg.get("arch", model.arch)
    with torch.device("meta"):
        plain = nets.create_model(arch, num_classes=len(classes), in_chans=model.in_chans)
    keep = set(plain.state_dict())
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    meta = {
        "format": "nets",
        "arch": arch,
        "source": "nets",
        "num_classes": str(len(classes)),
        "in_chans": str(model.in_chans),
        "class_names": json.dumps(classes),
        **preprocessing.as_metadata(),
        **(extra or {}),
    }
    wts.save_safetensors(state, path, meta)


def load_exported(path: str | os.PathLike) -> tuple[nn.Module, list[str], wts.Preprocessing]:
    """The model, class names and preprocessing of an exported ``best.safetensors``."""
    _, meta = wts.read_checkpoint(path)
    if "class_names" not in meta or "arch" not in meta:
        raise TrainError(f"{str(path)!r} was not exported by train (no class names)")
    classes = json.loads(meta["class_names"])
    model = nets.create_model(
        meta["arch"],
        weights=str(path),
        num_classes=int(meta["num_classes"]),
        in_chans=int(meta.get("in_chans", 3)),
    )
    pre = wts.Preprocessing.from_metadata(meta)
    return model.eval(), classes, pre


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
