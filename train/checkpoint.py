"""Training checkpoints (atomic, everything needed to resume) and the exported model.

``checkpoint.pt`` holds only tensors and plain data (numbers, strings, lists, tuples,
dicts), so it reads back through ``weights.load_pickle`` (``torch.load`` with
``weights_only=True``): loading a checkpoint never runs code from it.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nets
import weights as wts
from weights.io import (
    TORCH_PICKLE,
    TORCH_ZIP,
    TRAIN_CHECKPOINT,
    atomic_write,
    is_training_checkpoint,
)

from .errors import TrainError

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"
# 2: readable with weights_only=True (version 1 held numpy arrays and needed full unpickling).
CHECKPOINT_VERSION = 2


def rng_states() -> dict:
    """Every generator's state as tensors and plain data (no numpy arrays: a weights-only
    reader refuses them)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with torch.save to a temporary file, then rename it into place."""
    state = {"format": TRAIN_CHECKPOINT, "version": CHECKPOINT_VERSION, **state}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The trainer's checkpoint, read without unpickling code (``weights.load_pickle``)."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"no checkpoint to resume at {str(path)!r}")
    if wts.sniff_format(path) not in (TORCH_ZIP, TORCH_PICKLE):
        raise TrainError(f"{str(path)!r} is not a checkpoint.pt written by python -m train")
    state = wts.load_pickle(path)
    if not is_training_checkpoint(state):
        raise TrainError(f"{str(path)!r} is not a checkpoint.pt written by python -m train")
    return state


# Checkpoints name the best score best_top1, as when top-1 was the only score there was:
# checkpoints written before and after the segmentation task read alike.
_SAVED_AS = {"best_score": "best_top1"}


@dataclass
class TrainState:
    """Where a run stands after an epoch, and what it trains: written and read with the
    weights, optimiser, schedule and gradient scaler as one ``checkpoint.pt``."""

    strategy: str
    epoch: int = 0  # epochs done
    history: list[dict] = field(default_factory=list)
    best_score: float = -1.0  # the best epoch's score, the task's (``Task.score_key``)
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best (early stopping)
    skipped: list[str] = field(default_factory=list)  # unreadable training images, by name

    def save(self, path: str | os.PathLike, parts: dict[str, object], about: dict) -> None:
        """``parts``: the modules and optimisers whose ``state_dict`` resumes the run
        (model, optimizer, scheduler, scaler); ``about``: the run's plain facts (config,
        classes, in_chans, preprocessing)."""
        tensors = {name: obj.state_dict() for name, obj in parts.items()}
        mine = {_SAVED_AS.get(k, k): v for k, v in asdict(self).items()}
        save_checkpoint(path, {**tensors, **about, **mine, "rng": rng_states()})

    @classmethod
    def read(cls, raw: dict) -> TrainState:
        """The state of a checkpoint read by ``load_checkpoint``."""
        return cls(**{f.name: raw[_SAVED_AS.get(f.name, f.name)] for f in fields(cls)})

    @staticmethod
    def restore(raw: dict, parts: dict[str, object]) -> None:
        """Load each part's saved ``state_dict`` and the random generators' states."""
        for name, obj in parts.items():
            obj.load_state_dict(raw[name])
        set_rng_states(raw["rng"])


def check_resume(
    state: dict,
    model_name: str,
    classes: list[str],
    in_chans: int | None = None,
    *,
    task: str = "classification",
) -> None:
    """A resumed run must train the same architecture for the same task on the same classes
    (and, once the model is built, ``in_chans`` input channels)."""
    cfg = state.get("config", {})
    # A checkpoint from before the task option was a classifier's.
    if cfg.get("task", "classification") != task:
        raise TrainError(
            f"--resume: the checkpoint's run is {cfg.get('task', 'classification')}, not {task}"
        )
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
    if in_chans is not None and state.get("in_chans", in_chans) != in_chans:
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
