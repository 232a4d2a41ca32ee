"""The trainer's image datasets: decoded once into memory (uint8) when the data fits a
budget, else read from disk every epoch; either way the same samples for the same seed.

Both paths decode an image the same way (``ImageDataset.load``, then a uint8 tensor) and
apply the same per-sample geometry to that tensor; they differ only in whether the tensor
was kept from the first decode. So a cached run repeats a streamed one batch for batch.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

import weights as wts
from nets.errors import NetsError

from .augment import Augment, BatchNormalize, ImageStats, eval_geometry, train_geometry
from .datasets import DIGITS, DataSplit, ImageDataset, collate

GIB = 1024**3
RAM_SHARE = 0.25  # the default budget: a quarter of the RAM, leaving the rest to the model


def default_budget_gib() -> float:
    """A quarter of the machine's physical memory (2 GiB where it cannot be read)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2.0
    return RAM_SHARE * ram / GIB


def budget_bytes(cache_memory: float | None) -> int:
    """``--cache-memory`` (GiB; ``None``: the default) for this process: the processes
    started on one machine (``LOCAL_WORLD_SIZE`` under torchrun) share it, each holding its
    own copy."""
    gib = default_budget_gib() if cache_memory is None else cache_memory
    share = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return int(gib * GIB / share)


def estimate_bytes(stats: ImageStats | None, n_images: int, in_chans: int) -> int | None:
    """The decoded size of ``n_images`` like the sampled ones (``None``: unknown)."""
    if stats is None:
        return None
    return int(stats.mean_pixels * in_chans * n_images)


class DecodedImages(ImageDataset):
    """``(item, label)`` pairs -> ``(uint8 CxHxW tensor, label)`` after ``geometry``;
    ``(None, name)`` for an unreadable image, as ``ImageDataset``. With ``cache`` set (by
    ``fill_caches``), the decoded tensors come from memory instead of the files."""

    def __init__(self, items: list, geometry: Callable, in_chans: int) -> None:
        super().__init__(items, geometry, in_chans)
        self.cache: list[torch.Tensor | str] | None = None  # str: why it is unreadable

    def decode(self, index: int) -> torch.Tensor:
        """The image as uint8 CxHxW; ``NetsError`` (one-line reason) when unreadable."""
        return v2.functional.pil_to_tensor(self.load(self.items[index][0]))

    def __getitem__(self, index: int):
        item, label = self.items[index]
        if self.cache is not None:
            image = self.cache[index]
            if isinstance(image, str):
                warnings.warn(f"skipping unreadable image: {image}", stacklevel=1)
                return None, str(item)
        else:
            try:
                image = self.decode(index)
            except NetsError as exc:
                warnings.warn(f"skipping unreadable image: {exc}", stacklevel=1)
                return None, str(item)
        return self.transform(image), label


class _Decode(torch.utils.data.Dataset):
    def __init__(self, ds: DecodedImages) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> torch.Tensor | str:
        try:
            return self.ds.decode(index)
        except NetsError as exc:
            return str(exc)


def _pack(batch: list) -> tuple[torch.Tensor, list]:
    """A worker's batch as one flat tensor and the shapes (or the unreadable's reasons): a
    tensor from a worker travels as a shared-memory segment and a file descriptor, so one
    per image would run out of descriptors on a large set."""
    tensors = [b.flatten() for b in batch if isinstance(b, torch.Tensor)]
    flat = torch.cat(tensors) if tensors else torch.empty(0, dtype=torch.uint8)
    return flat, [tuple(b.shape) if isinstance(b, torch.Tensor) else b for b in batch]


def _unpack(flat: torch.Tensor, shapes: list) -> list[torch.Tensor | str]:
    out: list[torch.Tensor | str] = []
    offset = 0
    for shape in shapes:
        if isinstance(shape, str):
            out.append(shape)
            continue
        n = int(torch.Size(shape).numel())
        # A copy of its own, so the batch's shared segment is freed once it is split.
        out.append(flat[offset : offset + n].view(shape).clone())
        offset += n
    return out


def fill_caches(datasets: list[DecodedImages], budget: int, workers: int) -> int | None:
    """Decode every image of ``datasets`` once into memory (in ``workers`` processes) and
    return the bytes held; ``None``, with nothing kept, if they outgrow ``budget``."""
    filled, used = [], 0
    for ds in datasets:
        loader = torch.utils.data.DataLoader(
            _Decode(ds), batch_size=64, num_workers=workers, collate_fn=_pack
        )
        images: list[torch.Tensor | str] = []
        for flat, shapes in loader:
            used += flat.numel()
            images += _unpack(flat, shapes)
            if used > budget:
                return None
        filled.append(images)
    for ds, images in zip(datasets, filled, strict=True):
        ds.cache = images
    return used


class NormalizingCollate:
    """``collate``, then the batch normalised at once (``BatchNormalize``)."""

    def __init__(self, normalize: BatchNormalize) -> None:
        self.normalize = normalize

    def __call__(self, batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        x, y, skipped = collate(batch)
        return (self.normalize(x) if x.numel() else x), y, skipped


@dataclass
class ImageData:
    train: DecodedImages
    val: DecodedImages
    collate: Callable  # NormalizingCollate, or the uint8 ``collate`` when ``normalize`` is set
    cached: bool  # the images are held in memory
    note: str  # what the run says about where the images come from
    normalize: BatchNormalize | None = None  # applied on the device, after the copy


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < GIB else f"{n / GIB:,.2f} GiB"


def image_data(
    data: DataSplit,
    p: wts.Preprocessing,
    in_chans: int,
    augment: Augment,
    *,
    stats: ImageStats | None,
    cache_memory: float | None,
    workers: int,
    normalize_on_device: bool = False,
) -> ImageData:
    """The training and validation datasets, in memory when the decoded images fit the
    budget (estimated from ``stats`` first, so a large set is never decoded for nothing).
    With ``normalize_on_device`` the loaders hand batches over as uint8 and ``normalize``
    is left to the consumer, after the copy to the device; else the collate normalises."""
    train = DecodedImages(data.train, train_geometry(p, augment), in_chans)
    val = DecodedImages(data.val, eval_geometry(p), in_chans)
    normalize = BatchNormalize(p, in_chans)
    on_device = normalize if normalize_on_device else None
    collate_fn = collate if normalize_on_device else NormalizingCollate(normalize)
    if data.kind == DIGITS:  # arrays in memory already: decoding them costs microseconds
        return ImageData(train, val, collate_fn, True, "the bundled digits are in memory",
                         on_device)  # fmt: skip
    budget = budget_bytes(cache_memory)
    n = len(data.train) + len(data.val)
    estimate = estimate_bytes(stats, n, in_chans)
    flag = f"--cache-memory {budget / GIB:.3g} GiB"
    if budget == 0 or (estimate is not None and estimate > budget):
        need = f"about {_mib(estimate)} decoded" if estimate is not None else "?"
        return ImageData(train, val, collate_fn, False,
                         f"streaming {n} images from disk every epoch ({need}, over "
                         f"{flag})", on_device)  # fmt: skip
    start = time.perf_counter()
    used = fill_caches([train, val], budget, workers)
    if used is None:
        return ImageData(train, val, collate_fn, False,
                         f"streaming {n} images from disk every epoch (decoded, they "
                         f"outgrew {flag})", on_device)  # fmt: skip
    took = time.perf_counter() - start
    return ImageData(train, val, collate_fn, True,
                     f"caching: decoded {n} images once into memory ({_mib(used)} as uint8, "
                     f"{flag}) in {took:.1f} s; every epoch augments from memory",
                     on_device)  # fmt: skip
