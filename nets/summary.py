"""A Keras-style summary: layer, output shape, parameters; then the totals.

As in Keras, "non-trainable" counts BatchNorm's running statistics (moving mean and
variance) as well as any frozen parameters; BatchNorm's step counter is not a weight.

``keras_variant`` maps a keras.applications name (``MobileNet``, ``ResNet50``) or one of ours
(``resnet50``) to the model built as Keras builds it (``keras_resnet50``), for
``python -m nets summary NAME --keras``: its totals are then Keras' ``model.summary()`` totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_STATS = ("running_mean", "running_var")


@dataclass
class Row:
    name: str
    kind: str
    shape: tuple[int, ...]
    params: int


@dataclass
class Totals:
    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


def count(model: nn.Module) -> Totals:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] in _STATS)
    return Totals(trainable, frozen + stats)


def keras_variant(name: str) -> tuple[str, str | None]:
    """``(our model name, keras.applications name or None)`` for ``summary --keras``."""
    from weights.keras.models import MODELS

    from .registry import list_models

    by_keras = {k.lower(): (m.arch, k) for k, m in MODELS.items()}
    if name.lower() in by_keras:
        return by_keras[name.lower()]
    arch = f"keras_{name}" if f"keras_{name}" in list_models() else name
    keras_name = next((k for k, m in MODELS.items() if m.arch == arch), None)
    return arch, keras_name


def _own_count(module: nn.Module) -> int:
    params = sum(p.numel() for p in module.parameters(recurse=False))
    stats = sum(b.numel() for n, b in module.named_buffers(recurse=False) if n in _STATS)
    return params + stats


def trace(model: nn.Module, input_size: int, depth: int | None = None) -> list[Row]:
    """Run one input through ``model`` and record every module at ``depth`` (leaves when
    None) in call order, with its output shape and its weights (running stats included)."""
    device = next(model.parameters()).device
    in_chans = getattr(model, "in_chans", 3)
    rows: list[Row] = []
    hooks = []
    for name, module in model.named_modules():
        if not name:
            continue
        level = name.count(".") + 1
        leaf = not any(True for _ in module.children())
        if isinstance(module, nn.Identity):
            continue  # placeholders (no attention, no dropout) are not layers
        shown = leaf if depth is None else level == depth or (leaf and level < depth)
        if shown:
            size = sum(_own_count(m) for m in module.modules())

            def hook(mod, args, out, name=name, size=size):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
                rows.append(Row(name, type(mod).__name__, shape, size))

            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, input_size, input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def summary(
    model: nn.Module,
    input_size: int = 224,
    depth: int | None = None,
    name: str | None = None,
    extra_non_trainable: int = 0,
) -> str:
    """The summary table as a string (works on a model built on the meta device).
    ``extra_non_trainable``: weights the Keras model has and ours has not (EfficientNet's
    Normalization constants), added to the totals as Keras counts them."""
    rows = trace(model, input_size, depth)
    totals = count(model)
    totals.non_trainable += extra_non_trainable
    header = ("Layer (type)", "Output Shape", "Param #")
    cells = [
        (f"{r.name} ({r.kind})", str(("None",) + r.shape[1:]).replace("'", ""), f"{r.params:,}")
        for r in rows
    ]
    w0 = max([len(header[0])] + [len(c[0]) for c in cells]) + 2
    w1 = max([len(header[1])] + [len(c[1]) for c in cells]) + 2
    w2 = max([len(header[2])] + [len(c[2]) for c in cells])
    width = w0 + w1 + w2 + 1
    lines = [
        f'Model: "{name or getattr(model, "arch", type(model).__name__)}"',
        "_" * width,
        f" {header[0]:<{w0}}{header[1]:<{w1}}{header[2]:>{w2}}",
        "=" * width,
    ]
    for c in cells:
        lines.append(f" {c[0]:<{w0}}{c[1]:<{w1}}{c[2]:>{w2}}")
    lines += [
        "=" * width,
        f"Total params: {totals.total:,}",
        f"Trainable params: {totals.trainable:,}",
        f"Non-trainable params: {totals.non_trainable:,}",
        "_" * width,
    ]
    return "\n".join(lines)
