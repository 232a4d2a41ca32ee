"""Building the model for a strategy, freezing by stage, parameter groups, ``auto``.

Nothing here knows a family: the backbone is ``model.stem`` + ``model.stages``, the head
everything else, BatchNorm any ``_BatchNorm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

import nets
import weights as wts

from .errors import TrainError

PRETRAINED = ("linear-probe", "feature-extract", "fine-tune")


def unet_encoder(model_name: str) -> str | None:
    """The encoder of ``unet_<encoder>`` (``None`` for other models and the plain ``unet``):
    a U-Net's pretrained weights are its encoder's."""
    if model_name.startswith("unet_") and nets.get_spec(model_name).family == "unet":
        return model_name[len("unet_") :]
    return None


def has_default_weights(model_name: str) -> bool:
    return wts.default_tag(unet_encoder(model_name) or model_name) is not None


def starts_from_weights(model_name: str, weights: str | None) -> bool:
    """Whether a run can start from trained weights (given, or the model's default): what
    ``auto`` weighs first."""
    return weights is not None or has_default_weights(model_name)


def starting_weights(model_name: str, strategy: str, weights: str | None) -> str | None:
    """The weights a strategy starts from: none for scratch, else given or the default.
    ``"none"`` means no weights, as it does everywhere: only scratch starts from none."""
    if isinstance(weights, str) and weights.lower() == "none":
        if strategy == "scratch":
            return None
        raise TrainError(
            f"--weights none gives --strategy {strategy} no pretrained weights to start "
            "from; use --strategy scratch"
        )
    if strategy == "scratch":
        return None
    if weights is not None:
        return weights
    if has_default_weights(model_name):
        return "imagenet"
    encoder = unet_encoder(model_name)
    whose = f"its encoder {encoder!r}" if encoder else repr(model_name)
    raise TrainError(
        f"--strategy {strategy} needs pretrained weights and none are registered for "
        f"{whose}; pass --weights FILE or use --strategy scratch"
    )


def build_model(
    name: str, num_classes: int, weights: str | None, *, aux: bool, in_chans: int | None = None
) -> nn.Module:
    """``create_model`` with a new ``num_classes`` head; aux heads on where ``aux`` asks
    for them and the model's spec declares them (``ModelSpec.aux_heads``). For
    ``unet_<encoder>``, ``weights`` are the encoder's (``encoder_weights``: its ImageNet
    tag or an encoder checkpoint, the classifier dropped); the decoder starts random."""
    key = "encoder_weights" if unet_encoder(name) else "weights"
    kwargs = {key: weights, "num_classes": num_classes, "in_chans": in_chans}
    if aux and nets.get_spec(name).aux_heads:
        kwargs["aux_logits"] = True
    return nets.create_model(name, **kwargs)


def backbone_parts(model: nn.Module) -> list[nn.Module]:
    return [model.stem, *model.stages]


def batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@dataclass
class Freezing:
    """What stays frozen: these modules are kept in eval mode and get no gradients."""

    frozen: list[nn.Module] = field(default_factory=list)

    def set_train_mode(self, model: nn.Module, training: bool = True) -> None:
        model.train(training)
        if training:
            for m in self.frozen:
                m.eval()


def apply_freezing(
    model: nn.Module,
    strategy: str,
    unfreeze_from: int | None = None,
    freeze_bn: bool = False,
    *,
    head_bn_trains: bool = False,
) -> Freezing:
    """Freeze per strategy: the whole backbone (probe, feature-extract), or the stem and
    stages below ``unfreeze_from`` (fine-tune); every BatchNorm too with ``freeze_bn``.

    feature-extract also freezes BatchNorms outside the backbone unless ``head_bn_trains``:
    a U-Net's decoder is a head full of BatchNorms that start from nothing and must learn
    their statistics (frozen, they would stay at mean 0, variance 1)."""
    for p in model.parameters():
        p.requires_grad_(True)
    frozen: list[nn.Module] = []
    n = len(model.stages)
    if strategy == "linear-probe":
        frozen = [model]  # everything in eval mode; only the classifier learns
    elif strategy == "feature-extract":
        frozen = backbone_parts(model)
    elif strategy == "fine-tune" and unfreeze_from is not None:
        if not -n <= unfreeze_from <= n:
            raise TrainError(
                f"--unfreeze-from {unfreeze_from} is out of range: {model.arch} has {n} stages"
            )
        k = unfreeze_from + n if unfreeze_from < 0 else unfreeze_from
        frozen = [model.stem, *list(model.stages)[:k]]
    if freeze_bn or (strategy == "feature-extract" and not head_bn_trains):
        inside = {id(m) for f in frozen for m in f.modules()}
        frozen += [m for m in batchnorms(model) if id(m) not in inside]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    if strategy == "linear-probe":
        for p in model.get_classifier().parameters():
            p.requires_grad_(True)
    if not any(p.requires_grad for p in model.parameters()):
        raise TrainError(f"strategy {strategy!r} leaves nothing to train in {model.arch}")
    return Freezing(frozen)


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float, pretrained: bool
) -> list[dict]:
    """Head and backbone groups (the backbone at ``lr * backbone_lr_mult`` when it was
    pretrained), each split into decayed weights and undecayed biases/norms."""
    backbone = {id(p) for m in backbone_parts(model) for p in m.parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        key = (id(p) in backbone, p.ndim > 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (in_backbone, decay), params in sorted(groups.items()):
        mult = backbone_lr_mult if (in_backbone and pretrained) else 1.0
        out.append(
            {"params": params, "lr": lr * mult, "weight_decay": weight_decay if decay else 0.0}
        )
    return out


def frozen_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every frozen parameter and every BatchNorm buffer, to check freezing."""
    out = {k: v.detach().clone() for k, v in model.named_parameters() if not v.requires_grad}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.training:
            for b, v in m.named_buffers():
                out[f"{name}.{b}"] = v.detach().clone()
    return out


# auto for segmentation: below this many training images a frozen encoder (feature-extract)
# trains only the decoder, fewer parameters to fit; from it on the whole U-Net is fine-tuned.
SEG_FINE_TUNE_FROM = 500


def choose_segmentation_strategy(n_train: int, has_weights: bool) -> tuple[str, str]:
    """``auto`` for a U-Net: no linear probe (one label per image means nothing here)."""
    if not has_weights:
        return "scratch", "no pretrained weights are available for this U-Net's encoder"
    if n_train < SEG_FINE_TUNE_FROM:
        return "feature-extract", (
            f"{n_train} training images (< {SEG_FINE_TUNE_FROM}): the pretrained encoder "
            "frozen, the decoder trained"
        )
    return "fine-tune", f"{n_train} training images: enough to fine-tune the whole U-Net"


def choose_strategy(per_class: int, probe_top1: float | None, has_weights: bool) -> tuple[str, str]:
    """``auto``: the strategy and the reason, from the smallest class's training size and
    how well a quick linear probe does on the validation split."""
    if not has_weights:
        return "scratch", "no pretrained weights are available for this model"
    if per_class < 30:
        return "linear-probe", f"only {per_class} training images in the smallest class"
    if probe_top1 is not None and probe_top1 >= 0.90:
        return "linear-probe", (
            f"a quick linear probe already reaches {probe_top1:.1%} validation top-1"
        )
    if per_class < 300:
        return "feature-extract", (
            f"{per_class} images per class is little for fine-tuning and the quick probe "
            f"reaches {probe_top1:.1%}: a new head on augmented images"
        )
    if probe_top1 is not None and probe_top1 < 0.5 and per_class >= 1000:
        return "scratch", (
            f"{per_class} images per class and the pretrained features transfer poorly "
            f"(probe {probe_top1:.1%})"
        )
    return "fine-tune", f"{per_class} images per class: enough to fine-tune the whole network"
