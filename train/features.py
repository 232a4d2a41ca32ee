"""Linear-probe features: the frozen backbone's pooled output, computed once and cached.

The cache is one safetensors file per (model, weights, preprocessing, data, split), named
by a digest of all of them, so a changed file, split or preprocessing never reuses stale
features. The weights enter by the content hash of the tensors actually loaded, never by
a tag or a file name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import nets
import weights as wts

from .datasets import DataSplit, ImageDataset, collate, eval_transform
from .errors import TrainError
from .loop import batches


def weights_identity(model: nn.Module) -> str:
    """The sha256 of the backbone's tensors as loaded: two different files under one name
    (or one tag) can never share cached features. The classifier is left out, since the
    features are what comes before it."""
    classifier = model.get_classifier()
    skip = {id(t) for t in classifier.parameters()} if classifier is not None else set()
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict(keep_vars=True).items()):
        if id(value) in skip:
            continue
        t = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{t.dtype}|{tuple(value.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def fast_dtype(device: torch.device, amp: str) -> torch.dtype:
    """The fast path's precision for features: float16 on CUDA (it keeps the float32 top-1
    on real images where bfloat16 does not; tests/nets/test_inference.py), unless ``--amp off``
    asks for float32; float32 on the CPU, which has no fast half-precision kernels."""
    return torch.float16 if device.type == "cuda" and amp != "off" else torch.float32


# The folded eager model, without per-shape graphs: the feature pass runs once per cache,
# and tracing and timing a graph for each batch shape cost more than it saved there (Lite0
# on 192 JPEGs, 2-core CPU: 19 img/s with "auto", 51 img/s folded eager, 24 img/s plain).
BACKEND = "eager"


def feature_net(model: nn.Module, device: torch.device, amp: str) -> nn.Module:
    """The frozen backbone through the inference fast path (``nets.optimize_for_inference``:
    BatchNorm folded, channels_last weights, float16 on CUDA), its classifier removed, so
    that its output is the pooled pre-logits features."""
    backbone = copy.deepcopy(model).eval()
    backbone.reset_classifier(0)
    dtype = fast_dtype(device, amp)
    return nets.optimize_for_inference(
        backbone, dtype=None if dtype == torch.float32 else dtype, backend=BACKEND
    )


def cache_key(
    model: nn.Module, pre: wts.Preprocessing, data: DataSplit, amp: str, device: torch.device
) -> str:
    parts = {
        "arch": model.pretrained_cfg.get("arch", model.arch),
        "weights": weights_identity(model),
        "preprocessing": pre.as_metadata(),
        "in_chans": model.in_chans,
        "data": data.fingerprint,
        "amp": amp,
        # Features of the fast path in its precision for the device: float16 on CUDA
        # differs from float32 in the last bits, so the two never share a cache file.
        "fast_path": str(fast_dtype(device, amp)).removeprefix("torch."),
        "version": 3,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def default_cache_dir() -> Path:
    return Path(wts.cache_dir()) / "features"


@dataclass(frozen=True)
class FeaturePass:
    """How the frozen backbone runs over the images: on ``device``, in the fast path's
    precision for ``amp`` (``--amp``: float16 on CUDA unless ``"off"``), loaded in batches of
    ``batch_size`` by ``num_workers`` processes; ``strict`` stops at an unreadable image,
    ``progress`` draws a bar."""

    device: torch.device
    amp: str = "off"
    batch_size: int = 64
    num_workers: int = 0
    strict: bool = False
    progress: bool = False


@torch.no_grad()
def extract(
    model: nn.Module, items: list, pre: wts.Preprocessing, how: FeaturePass
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Pooled pre-logits features (float32, CPU) of ``items`` through the frozen model's
    inference fast path (``feature_net``), and the unreadable images' names."""
    from tqdm import tqdm

    ds = ImageDataset(items, eval_transform(pre, model.in_chans), model.in_chans)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=how.batch_size,
        num_workers=how.num_workers,
        collate_fn=collate,
        pin_memory=how.device.type == "cuda",
    )
    net = feature_net(model, how.device, how.amp)
    feats, labels, skipped = [], [], set()
    loader = tqdm(loader, desc="features", disable=not how.progress, leave=False)
    for x, y in batches(loader, how.device, strict=how.strict, skipped=skipped):
        feats.append(net(x).float().cpu())  # float32 at the fast path's door
        labels.append(y.cpu())
    if not feats:
        raise TrainError("no readable images to compute features from")
    return torch.cat(feats), torch.cat(labels), sorted(skipped)


def cached_features(
    model: nn.Module,
    pre: wts.Preprocessing,
    data: DataSplit,
    how: FeaturePass,
    *,
    cache_dir: str | os.PathLike | None,
    is_main: bool = True,
    barrier: Callable[[], None] | None = None,
) -> tuple[dict[str, torch.Tensor], Path, bool]:
    """``{train_x, train_y, val_x, val_y}``, from the cache or computed and cached now.

    Returns the tensors, the cache file and whether it was a hit. In a distributed run the
    main process computes and writes, the others wait and read.
    """
    from safetensors.torch import load_file

    key = cache_key(model, pre, data, how.amp, how.device)
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    arch = model.pretrained_cfg.get("arch", model.arch)
    path = folder / f"{arch}-{key[:24]}.safetensors"
    hit = path.is_file()
    if not hit and is_main:
        out = {}
        skipped = []
        start = time.perf_counter()
        for split in ("train", "val"):
            x, y, bad = extract(model, getattr(data, split), pre, how)
            out[f"{split}_x"], out[f"{split}_y"] = x, y
            skipped += bad
        rate = (len(out["train_x"]) + len(out["val_x"])) / (time.perf_counter() - start)
        meta = {"arch": arch, "key": key, "weights": weights_identity(model)}
        meta["skipped"] = json.dumps(skipped)
        meta["fast_path"] = str(fast_dtype(how.device, how.amp)).removeprefix("torch.")
        meta["images_per_s"] = f"{rate:.1f}"  # decoding included: what the pass took
        wts.save_safetensors(out, path, meta)
    if barrier is not None:
        barrier()
    tensors = load_file(str(path))
    return tensors, path, hit


def cache_info(path: str | os.PathLike) -> dict[str, str]:
    """The metadata a feature cache file was written with (``images_per_s``, ``fast_path``,
    ``skipped``...)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})
