"""``evaluate_checkpoint`` and ``predict``: use a trained model on a dataset or on images."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

import common
import nets
import weights as wts
from nets.errors import NetsError
from nets.images import load_image
from weights.preprocess import channel_stats

from . import checkpoint as ckpt
from .config import TrainConfig
from .datasets import (
    DIGITS,
    IMAGE_EXTENSIONS,
    ImageDataset,
    collate,
    display_name,
    eval_transform,
    load_data,
    load_eval_data,
    same_file_key,
)
from .errors import TrainError
from .masks import mask_image
from .report import Meter, format_metrics
from .segmentation import (
    SEGMENTATION,
    DiceCELoss,
    SegDataset,
    SegMeter,
    format_seg_metrics,
    joint_transform,
    load_seg_data,
    seg_collate,
)


def load_trained(path: str | os.PathLike) -> tuple[nn.Module, list[str], wts.Preprocessing, dict]:
    """A trained model from ``checkpoint.pt`` or an exported ``best.safetensors``:
    ``(model in eval mode, class names, preprocessing, training config)``."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"checkpoint {str(path)!r} does not exist")
    if wts.sniff_format(path) == "safetensors":
        model, classes, pre = ckpt.load_exported(path)
        _, meta = wts.read_checkpoint(path)
        config = json.loads(meta.get("train_config", "{}"))
    else:
        state = ckpt.load_checkpoint(path)
        if "classes" not in state or "config" not in state:
            raise TrainError(f"{str(path)!r} is not a checkpoint written by train")
        config = {**state["config"], "strategy": state.get("strategy")}
        classes = state["classes"]
        model = nets.create_model(
            config["model"], num_classes=len(classes), in_chans=state.get("in_chans")
        )
        expected = model.state_dict()
        weights_state = state["model"]
        if not isinstance(weights_state, dict) or not all(
            isinstance(v, torch.Tensor) for v in weights_state.values()
        ):
            raise TrainError(f"{str(path)!r} holds no model state dict")
        # Auxiliary heads trained with the model are left out of the plain one.
        weights_state = {
            k: v for k, v in weights_state.items() if k in expected or not k.startswith("aux")
        }
        # The same strict checks as every other load: keys and shapes, then dtypes.
        wts.check_state_dict(
            config["model"],
            repr(str(path)),
            {k: v.shape for k, v in expected.items()},
            weights_state,
        )
        wts.check_dtypes(weights_state, repr(str(path)), {k: v.dtype for k, v in expected.items()})
        model.load_state_dict(weights_state)
        pre = wts.Preprocessing.from_metadata(state.get("preprocessing", {}))
    if pre is None:  # a file from before preprocessing was stored with the run
        pre = _preprocessing_for(model, config.get("weights"), config)
    # The model knows what it was trained on: weights.transforms(model) gives it.
    model.pretrained_cfg = model.pretrained_cfg.replace(
        preprocessing=pre, preprocessing_from=f"the training run {str(path)!r}",
        class_names=tuple(classes),
    )  # fmt: skip
    return model.eval(), classes, pre, config


def _preprocessing_for(model: nn.Module, weights_spec, config: dict) -> wts.Preprocessing:
    """The preprocessing of the weights the run started from; the model's own default for
    a run from scratch."""
    arch = config.get("model", model.arch)
    if config.get("strategy") != "scratch" and (weights_spec or wts.default_tag(arch)):
        loaded = wts.resolve(arch, weights_spec or "imagenet")
        if loaded.preprocessing is not None:
            return loaded.preprocessing
    return model.pretrained_cfg.preprocessing


@torch.no_grad()
def evaluate_checkpoint(
    path: str | os.PathLike, data: str, *, batch_size: int = 64, split: str = "auto"
) -> dict:
    """Top-1, top-5, per-class accuracy and confusion matrix of a trained model on ``data``.

    A folder is scored whole, or its ``test/`` (else validation) part when it has one; a
    CSV whole; ``digits`` on the run's validation split. ``split="run-val"`` scores the
    validation split the training run held out of ``data`` instead. The result says what
    was scored (``scored``) and how many images (``count``).
    """
    from .loop import batches, evaluate

    if batch_size < 1:
        raise TrainError(f"--batch-size must be a positive integer, got {batch_size}")
    model, classes, pre, config = load_trained(path)
    # A run's stored options may come from another version of the trainer: read leniently.
    cfg = TrainConfig.from_dict(config, strict=False) if config else TrainConfig()
    if cfg.task == SEGMENTATION:
        return _evaluate_segmentation(model, classes, pre, cfg, data, batch_size)
    items, where = load_eval_data(
        data, classes, split=split, val_split=cfg.val_split, seed=cfg.seed,
        max_per_class=cfg.max_per_class,
    )  # fmt: skip
    ds = ImageDataset(items, eval_transform(pre, model.in_chans), model.in_chans)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)
    cpu, skipped = torch.device("cpu"), set()
    metrics = evaluate(
        model, batches(loader, cpu, skipped=skipped), cpu, criterion=nn.CrossEntropyLoss(),
        meter=Meter(len(classes)),
    )  # fmt: skip
    metrics["skipped_images"] = len(skipped)
    metrics["classes"] = classes
    metrics["scored"] = where
    seen = 0 if split == "run-val" else _trained_on(items, cfg)
    metrics["training_images_scored"] = seen
    summary = f"scored {metrics['count']} of {len(items)} images: {where}"
    if skipped:
        summary += f" ({len(skipped)} unreadable, skipped)"
    if seen:
        metrics["warning"] = (
            f"{seen} of the {len(items)} images scored are images the run trained on (its "
            f"--data {cfg.data}): the figures overstate how it does on new images; --split "
            "run-val scores only the part it held out"
        )
        summary = f"warning: {metrics['warning']}\n{summary}"
    metrics["report"] = summary + "\n" + format_metrics(metrics, classes, empty="no images")
    return metrics


def _trained_on(items: list[tuple[object, int]], cfg: TrainConfig) -> int:
    """How many of the files in ``items`` are the run's own training images: its --data
    read and split again as the run did (same fraction, seed and cap). 0 where that cannot
    be told (the bundled digits, whose scored part is always the held-out one; data moved
    or gone since)."""
    if cfg.data == DIGITS or not items or not isinstance(items[0][0], str):
        return 0
    try:
        with warnings.catch_warnings():  # the run's data was warned about when it trained
            warnings.simplefilter("ignore")
            data = load_data(cfg.data, val_split=cfg.val_split, seed=cfg.seed,
                             max_per_class=cfg.max_per_class)  # fmt: skip
    except (TrainError, OSError):
        return 0
    trained = {same_file_key(str(f)) for f, _ in data.train}
    return sum(same_file_key(f) in trained for f, _ in items)


def _evaluate_segmentation(
    model: nn.Module,
    classes: list[str],
    pre: wts.Preprocessing,
    cfg: TrainConfig,
    data: str,
    batch_size: int,
) -> dict:
    """Mean IoU, pixel accuracy and per-class IoU on the validation part of a segmentation
    folder (its val/, or the run's seeded split), at the training size."""
    from .loop import batches, evaluate

    split = load_seg_data(data, val_split=cfg.val_split, seed=cfg.seed,
                          ignore_index=cfg.ignore_index)  # fmt: skip
    if split.classes != classes:
        raise TrainError(f"data {data!r} has classes {split.classes}, the model {classes}")
    transform = joint_transform(pre, pre.input_size, None, cfg.ignore_index, model.in_chans)
    loader = torch.utils.data.DataLoader(
        SegDataset(split.val, transform, model.in_chans), batch_size=batch_size,
        collate_fn=seg_collate,
    )  # fmt: skip
    cpu = torch.device("cpu")
    metrics = evaluate(
        model, batches(loader, cpu), cpu, criterion=DiceCELoss(cfg.dice_weight, cfg.ignore_index),
        meter=SegMeter(len(classes), cfg.ignore_index),
    )  # fmt: skip
    metrics["classes"] = classes
    metrics["scored"] = f"the validation part of {data} ({split.validation})"
    metrics["report"] = f"scored: {metrics['scored']}\n" + format_seg_metrics(metrics, classes)
    return metrics


def _expand(inputs: list[str]) -> list[str]:
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(
                str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
            )
        else:
            files.append(item)
    if not files:
        raise TrainError("no images to predict")
    return files


@torch.no_grad()
def predict(
    path: str | os.PathLike,
    images: list[str],
    *,
    output: str | None = None,
    top: int = 5,
    masks: str | None = None,
) -> list[dict]:
    """Classify image files (directories are searched recursively); write a CSV with
    ``path,prediction,confidence,top`` when ``output`` is given.

    With a segmentation checkpoint: one mask per image, at the image's size, written as a
    palette PNG ``<masks>/<stem>.png`` when ``masks`` is given; the CSV (``output``) then
    has ``path,mask,classes`` (each class's share of the pixels)."""
    if not (isinstance(top, int) and top >= 1):
        raise TrainError(f"--top must be a positive integer, got {top!r}")
    if output:  # before the model runs on every image, not after
        common.check_writable(Path(output).parent, "--output")
        if Path(output).is_dir():
            raise TrainError(f"--output {output!r} is a folder; give a file name such as "
                             f"{str(Path(output) / 'predictions.csv')!r}")  # fmt: skip
    model, classes, pre, config = load_trained(path)
    files = _expand(images)
    _warn_escaped(files)
    if config.get("task") == SEGMENTATION:
        rows = predict_masks(model, classes, pre, files, masks)
        if output:
            _write_csv(output, rows, ["path", "mask", "classes"])
        return rows
    transform = eval_transform(pre, model.in_chans)
    ds = ImageDataset([(f, 0) for f in files], transform, model.in_chans)
    rows = []
    for i in range(len(ds)):
        x, _ = ds[i]
        file = display_name(ds.items[i][0])
        if x is None:
            rows.append({"path": file, "prediction": "", "confidence": "", "top": "unreadable"})
            continue
        probs = model(x.unsqueeze(0)).float().softmax(1)[0]
        values, indices = probs.topk(min(top, len(classes)))
        rows.append(
            {
                "path": file,
                "prediction": classes[int(indices[0])],
                "confidence": f"{float(values[0]):.4f}",
                "top": " ".join(
                    f"{classes[int(j)]}:{float(v):.4f}"
                    for v, j in zip(values, indices, strict=True)
                ),
            }
        )
    if output:
        _write_csv(output, rows, ["path", "prediction", "confidence", "top"])
    return rows


def _warn_escaped(files: list[str]) -> None:
    """Say which file names are not valid UTF-8: the rows and the CSV name them with
    backslash escapes (``display_name``), as a UTF-8 CSV cannot hold their bytes."""
    escaped = [shown for f in files if (shown := display_name(f)) != f]
    if escaped:
        more = f" and {len(escaped) - 1} more" if len(escaped) > 1 else ""
        warnings.warn(
            f"{len(escaped)} image file name(s) are not valid UTF-8: the predictions name "
            f"them with backslash escapes ({escaped[0]}{more})",
            stacklevel=4,
        )


def _write_csv(output: str, rows: list[dict], fields: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    common.atomic_write_text(output, buf.getvalue())


def predict_masks(
    model: nn.Module,
    classes: list[str],
    pre: wts.Preprocessing,
    files: list[str],
    masks: str | None,
) -> list[dict]:
    """Each image resized to the training size (``pre.input_size``, square), the logits
    resized back to the image's size (bilinear), then the class per pixel; the mask written
    as a palette PNG into ``masks`` (atomically; a second image of the same stem gets
    ``-2``, ``-3``...). Rows: ``path``, ``mask`` (file written, or ''), ``classes`` (share
    of the pixels per class present) and the ``array``."""
    if len(classes) > 256:
        raise TrainError(f"{len(classes)} classes do not fit a palette PNG (256 at most)")
    if masks:
        common.check_writable(Path(masks), "--masks")
        Path(masks).mkdir(parents=True, exist_ok=True)
    mean, std = channel_stats(pre, model.in_chans)
    transform = v2.Compose([
        v2.Resize((pre.input_size, pre.input_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=mean, std=std),
    ])  # fmt: skip
    rows, used = [], set()
    for file in files:
        shown = display_name(file)  # what the rows and the CSV can hold
        try:
            image = load_image(file)
        except NetsError as exc:
            rows.append({"path": shown, "mask": "", "classes": f"unreadable: {exc}"})
            continue
        image = image.convert("L") if model.in_chans == 1 else image
        x = transform(v2.functional.pil_to_tensor(image)).unsqueeze(0)
        logits = model(x).float()
        logits = F.interpolate(logits, size=image.size[::-1], mode="bilinear", align_corners=False)
        mask = logits.argmax(1)[0].numpy()
        counts = np.bincount(mask.ravel(), minlength=len(classes)) / mask.size
        shares = " ".join(f"{c}:{v:.1%}" for c, v in zip(classes, counts, strict=True) if v)
        written = ""
        if masks:
            stem, k = Path(shown).stem, 1
            while (name := stem if k == 1 else f"{stem}-{k}") in used:
                k += 1
            used.add(name)
            written = str(Path(masks) / f"{name}.png")
            pil = mask_image(mask)
            common.atomic_write(written, lambda tmp, pil=pil: pil.save(tmp, format="PNG"))
        rows.append({"path": shown, "mask": written, "classes": shares, "array": mask})
    return rows
