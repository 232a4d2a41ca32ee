"""Feature maps per stage and Grad-CAM (Selvaraju et al., 2017) for one image."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import weights as wts

from ..base import stage_outputs
from .inputs import ImageLike, VisualizeError, prepare_image


@dataclass
class StageMaps:
    """The top channels of one stage's output for one image, strongest mean first."""

    stage: int
    reduction: int  # stride relative to the input
    channels: int  # the stage's channel count
    indices: np.ndarray  # (k,) channel indices
    means: np.ndarray  # (k,) their mean activation
    maps: np.ndarray  # (k, h, w)


def _stage_index(model: nn.Module, stage: int) -> int:
    n = len(model.stages)
    if isinstance(stage, bool) or not isinstance(stage, int) or not -n <= stage < n:
        arch = getattr(model, "arch", type(model).__name__)
        raise VisualizeError(
            f"stage {stage!r} is out of range: {arch} has {n} stages (0..{n - 1}, or -{n}..-1)"
        )
    return stage % n


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VisualizeError(f"{name} must be a positive integer, got {value!r}")


def _check_anatomy(model: nn.Module) -> None:
    if not isinstance(getattr(model, "stages", None), nn.Sequential) or not hasattr(model, "stem"):
        raise VisualizeError(
            f"{type(model).__name__} has no stem and stages (the anatomy of nets' networks)"
        )


def feature_maps(
    model: nn.Module,
    image: ImageLike,
    *,
    top_k: int = 8,
    stages: Sequence[int] | None = None,
    crop: bool = True,
) -> list[StageMaps]:
    """Per stage (default: all, as in ``model.feature_info``), the ``top_k`` channels of its
    output with the highest mean activation over the image."""
    _check_anatomy(model)
    _check_count("top_k", top_k)
    if stages is None:
        chosen = list(range(len(model.stages)))
    else:
        chosen = sorted({_stage_index(model, s) for s in stages})
        if not chosen:
            raise VisualizeError("stages must name at least one stage")
    x = prepare_image(model, image, crop=crop).x.to(_device(model))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if hasattr(model, "check_input"):  # a too-small input fails with its own message
                model.check_input(x)
            out = []
            for i, h in enumerate(stage_outputs(model, x)):
                if i in chosen:
                    # A copy: the next stage may start with an in-place op on its input.
                    out.append((i, h[0].float().cpu().clone()))
                if i == chosen[-1]:
                    break
    finally:
        model.train(was_training)
    result = []
    for i, fmap in out:
        means = fmap.mean(dim=(1, 2))
        k = min(top_k, fmap.shape[0])
        top = means.topk(k).indices
        info = model.feature_info[i]
        result.append(
            StageMaps(
                i,
                info.reduction,
                info.channels,
                top.numpy(),
                means[top].numpy(),
                fmap[top].numpy(),
            )  # fmt: skip
        )
    return result


# -- Grad-CAM --------------------------------------------------------------------------------
@dataclass
class ClassMap:
    """Grad-CAM for one class: ``heatmap`` = ReLU(sum_k alpha_k A^k) at the stage's
    resolution, alpha_k the spatial mean of d(logit)/dA^k; ``mask`` the same upsampled
    bilinearly to the input and divided by its maximum (all zero if the class has no
    positive evidence there)."""

    index: int
    name: str
    probability: float
    stage: int
    heatmap: np.ndarray  # (h, w)
    mask: np.ndarray  # (H, W) in [0, 1]


def class_names(model: nn.Module, num_classes: int) -> list[str]:
    """The names a checkpoint carried (``pretrained_cfg["class_names"]``, which
    ``load_model`` sets from a trainer's file), else ImageNet's for 1000 classes, else the
    class indices."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("class_names")
    if names is not None and len(names) == num_classes:
        return list(names)
    if num_classes == 1000:
        return list(wts.categories())
    return [str(i) for i in range(num_classes)]


def _target_index(target: int | str, names: Sequence[str]) -> int:
    if isinstance(target, str):
        if target in names:
            return names.index(target)
        if not target.lstrip("-").isdigit():
            close = difflib.get_close_matches(target, names, n=3)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise VisualizeError(f"class {target!r} is not one of the model's classes{hint}")
        target = int(target)
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(names):
        raise VisualizeError(f"class index {target!r} is out of range 0..{len(names) - 1}")
    return target


def grad_cam(
    model: nn.Module,
    image: ImageLike,
    target: int | str | None = None,
    stage: int = -1,
    *,
    top_k: int = 1,
    crop: bool = True,
) -> list[ClassMap]:
    """Grad-CAM (Selvaraju et al., 2017) at the output of ``stage`` (default the last).

    ``target``: a class index or name, or ``None`` for the ``top_k`` predicted classes,
    best first. Returns one ``ClassMap`` per class. The model is run in eval mode and its
    own mode restored; its parameters' gradients are left untouched.
    """
    _check_anatomy(model)
    _check_count("top_k", top_k)
    index = _stage_index(model, stage)
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Identity):
        raise VisualizeError(
            "Grad-CAM needs the classifier: this model was built without one "
            "(include_top=False or num_classes=0)"
        )
    x = prepare_image(model, image, crop=crop).x.to(_device(model)).requires_grad_(True)
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        # The rest of the network gets a copy, so an in-place op at the start of the next
        # stage cannot change the activation the map is computed from.
        captured.append(output)
        return output.clone()

    hook = model.stages[index].register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            logits = getattr(logits, "logits", logits)  # auxiliary outputs: the main head
            if logits.dim() != 2:
                raise VisualizeError(
                    f"Grad-CAM needs class scores, the model returned shape {list(logits.shape)}"
                )
            names = class_names(model, logits.shape[1])
            probs = logits.detach().float().softmax(dim=1)[0].cpu()
            if target is None:
                targets = probs.topk(min(top_k, len(names))).indices.tolist()
            else:
                targets = [_target_index(target, names)]
            act = captured[-1]
            result = []
            for t in targets:
                # Gradients of the class score only: autograd.grad leaves .grad alone.
                (grad,) = torch.autograd.grad(logits[0, t], act, retain_graph=True)
                alpha = grad[0].mean(dim=(1, 2))
                cam = F.relu((alpha[:, None, None] * act[0]).sum(dim=0)).detach()
                up = F.interpolate(
                    cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False
                )[0, 0]
                peak = float(up.max())
                mask = up / peak if peak > 0 else torch.zeros_like(up)
                result.append(
                    ClassMap(
                        t,
                        names[t],
                        float(probs[t]),
                        index,
                        cam.float().cpu().numpy(),
                        mask.clamp(0, 1).float().cpu().numpy(),
                    )  # fmt: skip
                )
    finally:
        hook.remove()
        model.train(was_training)
    return result
