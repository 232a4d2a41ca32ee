"""Whether a network's activations fit a half precision, measured on images you give it.

float16 keeps more mantissa bits than bfloat16 (10 against 7, which is why it keeps the
float32 top-1 where bfloat16 does not) but overflows above 65504, where bfloat16 goes to
about 3.4e38 like float32. The risk is in deep networks, whose unnormalised activations
(residual sums, the pre-activation stages of DenseNet, a classifier's logits) grow with
depth. ``half_precision_headroom`` runs the fast path's folded model (what
``optimize_for_inference(model, dtype=...)`` stores in half precision) once in float32 and
reports the largest magnitude any module outputs, where, and how far it is from the
format's largest value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Headroom", "activation_peaks", "half_precision_headroom"]


@dataclass(frozen=True)
class Headroom:
    """The largest module output of one forward pass against ``dtype``'s range."""

    peak: float  # the largest |value| any module output held
    module: str  # the module that output it ("" for the model itself)
    dtype: torch.dtype

    @property
    def factor(self) -> float:
        """How many times the peak fits below the format's largest finite value."""
        return torch.finfo(self.dtype).max / self.peak if self.peak else float("inf")

    @property
    def fits(self) -> bool:
        return self.factor > 1

    def __str__(self) -> str:
        name = str(self.dtype).removeprefix("torch.")
        where = self.module or "the output"
        return f"peak {self.peak:.4g} at {where}: {self.factor:.3g}x below {name}'s maximum"


def activation_peaks(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """The largest |value| of each module's tensor output on ``x`` (one float32 pass, no
    gradients), by module name; a module called several times keeps its largest."""
    peaks: dict[str, float] = {}
    handles = []

    def record(name: str):  # noqa: ANN202
        def hook(_m: nn.Module, _inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.is_floating_point():
                value = output.detach().abs().max().item() if output.numel() else 0.0
                peaks[name] = max(peaks.get(name, 0.0), value)

        return hook

    for name, module in model.named_modules():
        handles.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return peaks


def half_precision_headroom(
    model: nn.Module, x: torch.Tensor, dtype: torch.dtype = torch.float16
) -> Headroom:
    """Where the largest activation of ``model``'s fast path on ``x`` stands against
    ``dtype``'s range: BatchNorm folded first, as ``optimize_for_inference`` does, since a
    conv's raw output before its BatchNorm never exists in the fast path.

    Run it on real images with the weights you will serve: random weights and noise say
    little about a trained network's activations. ``fits`` False (or a small ``factor``)
    means the half-precision fast path would overflow to inf; use bfloat16 or float32.
    """
    from .inference import optimize_for_inference  # the fast path imports nothing from here

    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    x = x.float()
    folded = optimize_for_inference(model, x, backend="eager", channels_last=False)
    peaks = activation_peaks(folded.model, x)
    module, peak = max(peaks.items(), key=lambda kv: kv[1], default=("", 0.0))
    return Headroom(peak=peak, module=module, dtype=dtype)
