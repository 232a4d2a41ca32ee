"""A model and its class names from any ``weights=``, as ``nets classify`` reads them."""

from __future__ import annotations

import json
import os

from torch import nn

import weights as wts

from ..factory import create_model

DEFAULT_MODEL = "efficientnet_lite0"


def load_model(
    name: str | None = None, weights: str | os.PathLike | None = "imagenet"
) -> nn.Module:
    """Build ``name`` with ``weights`` (``"imagenet"``, a tag, a checkpoint path, or
    ``None``/``"none"`` for random initialisation), in eval mode.

    A file written by ``python -m train`` (``best.safetensors``) names its arch, classes and
    input channels: ``name`` may then be left out, and the class names land in
    ``model.pretrained_cfg["class_names"]``, where ``grad_cam`` finds them.
    """
    if weights is not None and str(weights).lower() == "none":
        weights = None
    is_file = weights is not None and os.path.isfile(weights)
    meta = wts.read_checkpoint(weights)[1] if is_file else {}
    arch = name or meta.get("arch") or DEFAULT_MODEL
    names = json.loads(meta["class_names"]) if "class_names" in meta else None
    model = create_model(
        arch,
        weights=weights,
        num_classes=len(names) if names else None,
        in_chans=int(meta["in_chans"]) if "in_chans" in meta else None,
    ).eval()
    if names is not None:
        model.pretrained_cfg = model.pretrained_cfg.replace(class_names=tuple(names))
    return model


def weights_label(model: nn.Module) -> str:
    """A short name for where the model's weights came from, for titles."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("tag"):
        return cfg["tag"]
    if cfg.get("origin"):
        return os.path.basename(str(cfg["origin"]).split(" (")[0])
    return "random init"
