"""ImageNet-1k category names and decoding of logits into readable predictions."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

import torch


@cache
def categories(name: str = "imagenet_classes.txt") -> tuple[str, ...]:
    """Category names in class-index order (the 1000 names torchvision uses by default)."""
    text = resources.files("weights").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def decode_predictions(
    logits: torch.Tensor, top: int = 5, categories_: Sequence[str] | None = None
) -> list[list[tuple[int, str, float]]]:
    """Per image, the ``top`` classes best first as ``(index, name, probability)``.

    ``logits`` is ``(N, C)`` or ``(C,)``; probabilities are the softmax over all C classes.
    Names default to the ImageNet-1k categories when C is 1000, else the class index.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() not in (1, 2):
        raise ValueError("logits must be a tensor of shape (N, classes) or (classes,)")
    if logits.dim() == 1:
        logits = logits.unsqueeze(0)
    num_classes = logits.shape[1]
    names = categories_
    if names is None and num_classes == 1000:
        names = categories()
    if names is not None and len(names) != num_classes:
        raise ValueError(f"logits have {num_classes} classes but {len(names)} names were given")
    top = max(1, min(int(top), num_classes))
    probs = logits.detach().float().softmax(dim=1)
    values, indices = probs.topk(top, dim=1)
    return [
        [
            (int(i), names[int(i)] if names is not None else str(int(i)), float(p))
            for p, i in zip(row_p, row_i, strict=True)
        ]
        for row_p, row_i in zip(values, indices, strict=True)
    ]
