"""The run's configuration: one dataclass, from which the command line is generated."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from common import cli

from .errors import TrainError

STRATEGIES = ("auto", "linear-probe", "feature-extract", "fine-tune", "scratch")
TASKS = ("classification", "segmentation")


@dataclass(frozen=True)
class StrategyDefaults:
    """What a strategy runs when ``--epochs``, ``--lr`` or ``--warmup-epochs`` is not given.
    The schedule is always a linear warm-up then a cosine decay to zero."""

    epochs: int
    lr: dict[str, float]  # the head's peak learning rate, per optimizer
    warmup_epochs: float = 1.0


# One table, next to the strategies: ``plan_run`` reads it and the ``--epochs`` and ``--lr``
# help text is written from it. A linear probe trains only a head on cached features:
# more, cheaper epochs and a larger rate; fine-tuning moves pretrained weights: a small one.
# Scratch is sized for the small networks trained from random init here (LeNet-5 on
# digit-sized data): a few hundred steps at a rate AdamW tolerates from the first step.
DEFAULTS: dict[str, StrategyDefaults] = {
    "linear-probe": StrategyDefaults(50, {"adamw": 3e-2, "sgd": 0.1}),
    "feature-extract": StrategyDefaults(20, {"adamw": 1e-2, "sgd": 0.1}),
    "fine-tune": StrategyDefaults(20, {"adamw": 1e-3, "sgd": 1e-2}),
    "scratch": StrategyDefaults(20, {"adamw": 3e-3, "sgd": 3e-2}, warmup_epochs=1.0),
}


def _epochs_help() -> str:
    return ", ".join(f"{d.epochs} {s}" for s, d in DEFAULTS.items())


def _lr_help() -> str:
    per = [
        f"with {o}: " + ", ".join(f"{d.lr[o]:g} {s}" for s, d in DEFAULTS.items())
        for o in ("adamw", "sgd")
    ]
    return "; ".join(per)


def _warmup_help() -> str:
    return ", ".join(f"{d.warmup_epochs:g} {s}" for s, d in DEFAULTS.items())


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Everything ``train.fit`` needs; each field is a ``--option`` of ``python -m train fit``."""

    task: str = _opt(
        "classification",
        "classification (one label per image), or segmentation (a class per pixel: a U-Net, "
        "DATA a folder of images/, masks/ and classes.txt, or 'shapes')",
        choices=TASKS,
    )
    model: str = _opt("lenet5", "registered model name (python -m nets list)")
    data: str = _opt(
        "digits",
        "an image folder (class sub-folders, or train/ beside val/, valid/, validation/ "
        "or test/ that hold them), a CSV of "
        "path,label, or 'digits' (the bundled 1,797 8x8 handwritten digits); with --task "
        "segmentation a folder of images/, masks/ and classes.txt (or train/ and val/ that "
        "hold them), or 'shapes' (generated on first use)",
    )
    strategy: str = _opt("auto", "how to use the network", choices=STRATEGIES)
    weights: str | None = _opt(
        None,
        "'imagenet', a weights tag or a checkpoint path; default: the model's ImageNet "
        "weights unless --strategy scratch (or the model has none)",
    )
    out: str | None = _opt(None, "output folder (default: runs/<model>-<strategy>)")
    epochs: int | None = _opt(None, f"epochs (default per strategy: {_epochs_help()})")
    batch_size: int = _opt(64, "images per step per process")
    lr: float | None = _opt(
        None, f"peak learning rate of the head (default per strategy {_lr_help()})"
    )
    optimizer: str = _opt("adamw", "optimizer", choices=("adamw", "sgd"))
    momentum: float = _opt(0.9, "SGD momentum")
    weight_decay: float = _opt(0.01, "weight decay (not applied to biases and norms)")
    warmup_epochs: float | None = _opt(
        None,
        f"linear warm-up before the cosine schedule, in epochs (default per strategy: "
        f"{_warmup_help()})",
    )
    label_smoothing: float = _opt(0.1, "label smoothing of the cross-entropy")
    dice_weight: float = _opt(
        0.5, "segmentation: loss = cross-entropy + this x soft Dice loss (0: cross-entropy only)"
    )
    ignore_index: int = _opt(
        255, "segmentation: the mask value of unlabelled pixels (no loss, not scored)"
    )
    input_size: int | None = _opt(
        None,
        "segmentation: images and masks are trained and scored at this size x size (default: "
        "the first training image's longer side, rounded up to a multiple of 32)",
    )
    accum_steps: int = _opt(1, "gradient accumulation: optimizer step every N batches")
    clip_grad: float = _opt(0.0, "clip the gradient norm to this value (0: off)")
    amp: str = _opt(
        "auto",
        "mixed precision: auto = bf16 on CUDA where supported, else fp16 with a gradient "
        "scaler, off on the CPU",
        choices=("auto", "bf16", "fp16", "off"),
    )
    channels_last: bool | None = _opt(
        None,
        "the channels-last memory format (NHWC convolutions); default: on, except for "
        "segmentation on the CPU",
    )
    normalize_on_device: bool | None = _opt(
        None,
        "hand image batches to the device as uint8 and normalise them there (a quarter of "
        "the bytes to copy, no float work in the loader); default: on CUDA, and not for "
        "segmentation",
    )
    compile: bool = _opt(False, "torch.compile the model")
    aux_weight: float = _opt(0.3, "weight of the auxiliary heads' losses (0: no aux heads)")
    patience: int = _opt(10, "early stopping: epochs without improvement (0: off)")
    seed: int = _opt(0, "random seed; the same seed repeats a run on the same machine")
    val_split: float = _opt(0.2, "validation fraction when DATA has no val/ (stratified)")
    max_per_class: int | None = _opt(None, "use at most N images per class (quick runs)")
    num_workers: int | None = _opt(
        None,
        "data loading processes (default: on CUDA min(8, CPUs - 1); on the CPU 0 up to 4 "
        "cores, else CPUs / 4; 0: in the main process)",
    )
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    unfreeze_from: int | None = _opt(
        None, "fine-tune: train stages K and later (default: the whole network)"
    )
    backbone_lr_mult: float = _opt(0.1, "fine-tune: learning-rate factor of the pretrained part")
    freeze_bn: bool = _opt(False, "fine-tune: keep every BatchNorm frozen (statistics and affine)")
    augment: str = _opt(
        "auto",
        "training augmentation: standard (random resized crop to 25-100%% of the area + "
        "flip), light (small affine, no flip), none; auto: chosen from a sample of the "
        "images (size, grayscale or colour) and the images per class, and said why",
        choices=("auto", "standard", "light", "none"),
    )
    cache_memory: float | None = _opt(
        None,
        "GiB of decoded images (uint8) held in memory, so that later epochs augment from "
        "memory instead of decoding files again; data that needs more streams from disk "
        "(default: a quarter of this machine's RAM, shared by the processes on it; 0: "
        "always stream)",
    )
    cache_dir: str | None = _opt(
        None, "linear-probe feature cache (default: <weights cache>/features)"
    )
    strict: bool = _opt(False, "stop at the first unreadable image instead of skipping it")
    allow_missing_classes: bool = _opt(
        False,
        "train on even if every training (or validation) image of a class is unreadable "
        "(default: that is an error naming the class)",
    )
    resume: bool = _opt(False, "continue the run in --out from its last checkpoint")
    overwrite: bool = _opt(
        False, "replace the run in a non-empty --out (its run files are deleted first)"
    )
    progress: bool = _opt(True, "show a progress bar per epoch")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, strict: bool = True) -> TrainConfig:
        """The configuration ``d`` describes. An unknown key is an error naming the close
        ones (``train.fit(epoch=3)`` must not train the default epochs); ``strict=False``
        ignores them, for configurations stored by another version of the trainer."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in d if k not in names]
        if unknown and strict:
            close = difflib.get_close_matches(unknown[0], names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see python -m train fit -h"
            raise TrainError(f"unknown training option {unknown[0]!r}; {hint}")
        return cls(**{k: v for k, v in d.items() if k in names})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


# (field, test, what is expected, a hint after the value); None is allowed exactly where
# the field's default is None.
_RULES: tuple[tuple[str, Any, str, str], ...] = (
    ("epochs", lambda v: _is_int(v) and v >= 1, "a positive integer",
     f" (omit it for the default: {_epochs_help()}; to score a trained model use "
     "python -m train eval)"),
    ("batch_size", lambda v: _is_int(v) and v >= 1, "a positive integer", ""),
    ("lr", lambda v: _is_number(v) and v > 0, "a positive number", " (omit it for the default)"),
    ("momentum", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)", ""),
    ("weight_decay", lambda v: _is_number(v) and v >= 0, "a number >= 0", ""),
    ("warmup_epochs", lambda v: _is_number(v) and v >= 0, "a number of epochs >= 0",
     " (omit it for the default)"),
    ("label_smoothing", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)", ""),
    ("accum_steps", lambda v: _is_int(v) and v >= 1, "a positive integer", " (1: no accumulation)"),
    ("clip_grad", lambda v: _is_number(v) and v >= 0, "a number >= 0", " (0: off)"),
    ("aux_weight", lambda v: _is_number(v) and v >= 0, "a number >= 0", " (0: no auxiliary heads)"),
    ("patience", lambda v: _is_int(v) and v >= 0, "an integer >= 0", " (0: no early stopping)"),
    ("seed", _is_int, "an integer", ""),
    ("val_split", lambda v: _is_number(v) and 0 < v < 1, "a fraction between 0 and 1", ""),
    ("max_per_class", lambda v: _is_int(v) and v >= 1, "a positive integer", " (or none: all)"),
    ("num_workers", lambda v: _is_int(v) and v >= 0, "an integer >= 0", " (0: the main process)"),
    ("unfreeze_from", _is_int, "a stage index", " (or none: the whole network)"),
    ("backbone_lr_mult", lambda v: _is_number(v) and v >= 0, "a number >= 0", ""),
    ("dice_weight", lambda v: _is_number(v) and v >= 0, "a number >= 0",
     " (0: cross-entropy only)"),
    ("ignore_index", lambda v: _is_int(v) and v >= 0, "an integer >= 0", ""),
    ("input_size", lambda v: _is_int(v) and v >= 1, "a positive integer",
     " (or none: from the data)"),
    ("cache_memory", lambda v: _is_number(v) and v >= 0, "a number of GiB >= 0",
     " (0: always stream from disk; omit it for a quarter of the RAM)"),
)  # fmt: skip


def validate(config: TrainConfig) -> TrainConfig:
    """Check every option before any work starts; the first bad one raises ``TrainError``
    with the value and what was expected (``--batch-size must be a positive integer, got
    0``). Returns ``config``.

    Zero is never read as "not given": ``--epochs 0`` or ``--lr 0`` would otherwise run
    the defaults, or train while changing nothing.
    """
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name, ok, expected, hint in _RULES:
        value = getattr(config, name)
        if value is None and defaults[name] is None:
            continue
        if value is None or not ok(value):
            raise TrainError(f"{_flag(name)} must be {expected}, got {value!r}{hint}")
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise TrainError(f"{_flag(f.name)} must be one of {', '.join(choices)}, got {value!r}")
        if (
            f.type == "bool"
            and not isinstance(value, bool)
            or (f.type == "bool | None" and value is not None and not isinstance(value, bool))
        ):
            raise TrainError(f"{_flag(f.name)} must be true or false, got {value!r}")
    if not isinstance(config.data, str) or not config.data.strip():
        raise TrainError(f"--data must be an image folder, a CSV or 'digits', got {config.data!r}")
    if config.resume and config.overwrite:
        raise TrainError("--resume continues the run in --out and --overwrite replaces it: "
                         "pass one of them")  # fmt: skip
    _check_scratch_weights(config)
    _check_device(config.device)
    import nets  # an unknown model is reported now, with the close names, not after the data

    spec = nets.get_spec(config.model)
    _check_task(config, spec.family)
    return config


def _check_scratch_weights(config: TrainConfig) -> None:
    """Scratch starts from random weights: a weights file or tag given with it would be
    ignored without a word (a truncated file too), so it is refused. ``none`` says the
    same as scratch and passes."""
    given = config.weights
    if config.strategy != "scratch" or given is None:
        return
    if not (isinstance(given, str) and given.lower() == "none"):
        raise TrainError(
            f"--strategy scratch trains from random weights, so --weights {given} would be "
            "ignored: leave --weights out, or pick a strategy that starts from it (fine-tune, "
            "feature-extract, linear-probe, auto)"
        )


def _check_task(config: TrainConfig, family: str) -> None:
    """A U-Net is for segmentation and segmentation needs one; a linear probe (one class per
    image from pooled features) has no meaning for a map of classes."""
    if config.task == "segmentation":
        if family != "unet":
            raise TrainError(
                f"--task segmentation needs a U-Net (unet or unet_<model>), got {config.model}"
            )
        if config.strategy == "linear-probe":
            raise TrainError(
                "--strategy linear-probe makes no sense for segmentation (it trains one "
                "label per image): use feature-extract (frozen encoder), fine-tune or scratch"
            )
        if config.max_per_class is not None:
            raise TrainError("--max-per-class counts images per class label; a segmentation "
                             "image has no single class: leave it out")  # fmt: skip
        if config.normalize_on_device:
            raise TrainError(
                "--normalize-on-device is for classification: segmentation normalises "
                "image and mask together in the loader; leave it out"
            )
        if config.data == "digits":
            raise TrainError(
                "--task segmentation needs --data: a folder of images/, masks/ and "
                "classes.txt, or 'shapes' (generated on first use)"
            )
    elif family == "unet":
        raise TrainError(
            f"{config.model} is a segmentation network (a class per pixel): pass --task "
            "segmentation"
        )
    elif config.input_size is not None:
        # Classification trains at its weights' input size, which predict and eval reuse.
        raise TrainError(
            f"--input-size is for --task segmentation; a classifier trains at its weights' "
            f"input size ({config.model}'s preprocessing): leave it out, got {config.input_size}"
        )


def _check_device(device: object) -> None:
    import torch

    expected = "auto, cpu, cuda or cuda:N"
    if not isinstance(device, str):
        raise TrainError(f"--device must be {expected}, got {device!r}")
    if device == "auto":
        return
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise TrainError(f"--device must be {expected}, got {device!r}") from None


def _parse_optional(kind):
    def parse(text: str):
        if text.lower() in ("none", ""):
            return None
        return kind(text)

    parse.__name__ = kind.__name__
    return parse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per field, its default shown in ``--help`` once: a help text that
    already says its default (what ``None`` means for that option) gets no second one."""
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if "default" not in help_text:
            help_text += " (default: %(default)s)"
        default = f.default
        if f.type in ("bool", "bool | None"):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text,
            )
            continue
        # One line naming the option for a value that is not a number ("--batch-size
        # must be an integer, got 'abc'"), not argparse's "invalid int value".
        kind = {"int": cli.integer, "float": cli.number, "str": str}
        base = f.type.split(" |")[0]
        parse = kind.get(base, str)
        if "None" in f.type:
            parse = _parse_optional(parse)
        parser.add_argument(
            flag,
            dest=f.name,
            type=parse,
            default=default,
            choices=f.metadata.get("choices"),
            help=help_text,
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
