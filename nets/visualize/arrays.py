"""The numbers behind the pictures: first-layer filters, stage feature maps and Grad-CAM,
as numpy arrays a user can plot their own way (``draw.py`` plots them ours)."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms import v2

import weights as wts

from ..errors import NetsError
from ..images import load_image, to_rgb
from ..registry import get_spec

ImageLike = str | os.PathLike | Image.Image | torch.Tensor


class VisualizeError(NetsError, ValueError):
    """A request the pictures cannot honour: an unknown stage or class, a model without a
    convolution to show or without a classifier, a bad count."""


# -- the input -------------------------------------------------------------------------------
@dataclass
class PreparedImage:
    """What the network sees (``x``, 1xCxHxW, normalised) and the same pixels as an RGB
    picture in [0, 1] (``rgb``, HxWx3) to draw maps over."""

    x: torch.Tensor
    rgb: np.ndarray


def preprocessing(model: nn.Module) -> wts.Preprocessing:
    """The model's evaluation preprocessing: its weights' own, else the registered input
    size with the usual 0.875 crop and ImageNet statistics (as ``nets classify`` does)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    pre = cfg.get("preprocessing")
    if pre is None:
        size = cfg.get("input_size")
        if size is None:
            arch = cfg.get("arch") or getattr(model, "arch", None)
            try:
                size = get_spec(arch).input_size
            except (NetsError, KeyError, TypeError):
                size = 224
        pre = wts.Preprocessing(input_size=size, resize_size=round(size / 0.875))
    if getattr(model, "in_chans", 3) == 1:  # grey input: the RGB statistics averaged
        pre = wts.Preprocessing(
            pre.input_size, pre.resize_size, pre.interpolation,
            (sum(pre.mean) / 3,), (sum(pre.std) / 3,),
        )  # fmt: skip
    return pre


def prepare_image(model: nn.Module, image: ImageLike, *, crop: bool = True) -> PreparedImage:
    """Turn a path, a PIL image or a tensor into the network's input and its picture.

    A path or PIL image goes through the model's evaluation preprocessing: the short side
    resized, then the centre crop (``crop=False`` keeps the whole image, short side at the
    input size, for photos whose object is not in the centre). A tensor (CxHxW or 1xCxHxW)
    is taken as already preprocessed.
    """
    pre = preprocessing(model)
    in_chans = getattr(model, "in_chans", 3)
    if isinstance(image, torch.Tensor):
        x = image.detach().float()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[0] != 1:
            raise VisualizeError(
                f"image tensor must be CxHxW or 1xCxHxW, got shape {list(image.shape)}"
            )
    else:
        pil = to_rgb(image) if isinstance(image, Image.Image) else load_image(image)
        if in_chans == 1:
            pil = pil.convert("L")  # as the trainer feeds a grey network
        steps = wts.transforms(pre).transforms
        if not crop:  # same resize, no centre crop: the whole image at the input scale
            steps = [s for s in steps if not isinstance(s, v2.CenterCrop)]
            steps = [
                v2.Resize(pre.input_size, interpolation=s.interpolation, antialias=True)
                if isinstance(s, v2.Resize)
                else s
                for s in steps
            ]
        x = v2.Compose(steps)(pil).unsqueeze(0)
    c = x.shape[1]
    mean = torch.tensor((list(pre.mean) * c)[:c]).view(1, c, 1, 1)
    std = torch.tensor((list(pre.std) * c)[:c]).view(1, c, 1, 1)
    pixels = (x * std + mean).clamp(0, 1)[0]
    pixels = pixels[:3] if c >= 3 else pixels[:1].expand(3, -1, -1)
    return PreparedImage(x, pixels.permute(1, 2, 0).numpy().copy())


# -- filters ---------------------------------------------------------------------------------
@dataclass
class FilterGrid:
    """The first convolution's kernels as tiles.

    ``weight`` is the kernel tensor exactly as in the model (N, C, kh, kw). ``tiles`` (N, kh,
    kw, 3) are in [0, 1]: ``tiles[i] * (high[i] - low[i]) + low[i]`` gives kernel i back
    (channels last, RGB; grey tiles repeat their one channel). ``rows`` x ``cols`` is the grid.
    """

    weight: np.ndarray
    tiles: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rows: int
    cols: int
    mode: str  # "rgb" or "grey"
    note: str  # what a tile shows, in words
    name: str  # the conv's module name

    def image(self, pad: int = 1, background: float = 1.0) -> np.ndarray:
        """The tiles laid out row by row in one (H, W, 3) picture, ``pad`` pixels apart."""
        n, kh, kw, _ = self.tiles.shape
        out = np.full(
            (self.rows * (kh + pad) + pad, self.cols * (kw + pad) + pad, 3),
            background,
            dtype=np.float32,
        )
        for i in range(n):
            r, c = divmod(i, self.cols)
            y, x = pad + r * (kh + pad), pad + c * (kw + pad)
            out[y : y + kh, x : x + kw] = self.tiles[i]
        return out


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns for ``n`` tiles: an exact near-square factorisation when there is
    one (64 -> 8x8, 96 -> 8x12, 32 -> 4x8), else the square that holds them."""
    if n < 1:
        raise VisualizeError(f"no tiles to lay out (count {n})")
    side = math.isqrt(n - 1) + 1  # ceil(sqrt(n))
    for cols in range(side, 2 * side + 1):
        if n % cols == 0 and n // cols <= cols:
            return n // cols, cols
    return math.ceil(n / side), side


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The module the anatomy names ``first_conv``, checked to be a 2-D convolution."""
    arch = getattr(model, "arch", type(model).__name__)
    name = getattr(model, "first_conv", None)
    if name is None:  # not one of ours: the first Conv2d met in module order
        for sub_name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                return sub_name, module
        raise VisualizeError(f"model {arch!r} has no convolution: no first-layer filters to show")
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise VisualizeError(
            f"model {arch!r} has no conv stem: its first_conv {name!r} is not a module"
        ) from None
    if not isinstance(module, nn.Conv2d):
        raise VisualizeError(
            f"model {arch!r} has no conv stem: its first_conv {name!r} is a "
            f"{type(module).__name__}, expected a Conv2d"
        )
    return name, module


def filters(model: nn.Module, *, shared_scale: bool = False) -> FilterGrid:
    """The first convolution's kernels, each scaled to its own [min, max] (``shared_scale``:
    one range for all, so that kernel strengths compare).

    Three input channels are shown as RGB (Keras' BGR kernels were reversed when converted,
    so channel 0 is red for every weights source). A kernel that reads one channel (a grey
    network such as LeNet-5, or a depthwise first conv) is shown in grey; any other channel
    count as the mean over its channels, in grey. ``note`` says which.
    """
    name, conv = first_conv(model)
    w = conv.weight.detach().float().cpu().numpy()
    n, c, kh, kw = w.shape
    if c == 3:
        shown, mode = w.transpose(0, 2, 3, 1), "rgb"
        note = "RGB (input channels 0, 1, 2 as red, green, blue)"
    elif c == 1:
        shown, mode = np.repeat(w.transpose(0, 2, 3, 1), 3, axis=3), "grey"
        if conv.groups > 1:
            note = f"depthwise: each kernel reads one of {conv.in_channels} input channels (grey)"
        else:
            note = "one input channel (grey)"
    else:
        mean = w.mean(axis=1)[..., None]
        shown, mode = np.repeat(mean, 3, axis=3), "grey"
        note = f"{c} input channels per kernel: their mean (grey)"
    if shared_scale:
        low = np.full(n, shown.min(), dtype=np.float32)
        high = np.full(n, shown.max(), dtype=np.float32)
    else:
        low = shown.reshape(n, -1).min(axis=1)
        high = shown.reshape(n, -1).max(axis=1)
    flat = high <= low
    # A constant kernel has no range; centre it on mid-grey so the tile still inverts exactly.
    low = np.where(flat, low - 0.5, low).astype(np.float32)
    high = np.where(flat, low + 1.0, high).astype(np.float32)
    tiles = (shown - low[:, None, None, None]) / (high - low)[:, None, None, None]
    note += "; one range for all" if shared_scale else "; each scaled to its own range"
    rows, cols = grid_shape(n)
    return FilterGrid(w, tiles.astype(np.float32), low, high, rows, cols, mode, note, name)


# -- feature maps ----------------------------------------------------------------------------
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
    x = prepare_image(model, image, crop=crop).x
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if hasattr(model, "check_input"):  # a too-small input fails with its own message
                model.check_input(x)
            out, h = [], model.stem(x)
            for i, stage in enumerate(model.stages[: chosen[-1] + 1]):
                h = stage(h)
                if i in chosen:
                    out.append((i, h[0].float()))
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
    x = prepare_image(model, image, crop=crop).x.requires_grad_(True)
    captured: list[torch.Tensor] = []
    hook = model.stages[index].register_forward_hook(lambda m, i, o: captured.append(o))
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
            probs = logits.detach().float().softmax(dim=1)[0]
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
                        cam.float().numpy(),
                        mask.clamp(0, 1).float().numpy(),
                    )  # fmt: skip
                )
    finally:
        hook.remove()
        model.train(was_training)
    return result
