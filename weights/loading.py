"""What ``nets`` asks of this package: a state dict in our names, checked strictly."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .convert import NETS, describe, detect_source, to_ours
from .errors import CheckpointFormatError, IncompatibleCheckpointError, UnknownTagError
from .io import StateDict, read_checkpoint, sha256_of
from .registry import Preprocessing, WeightTag, default_tag, get_tag, list_tags, tags_for
from .store import load_tag


@dataclass
class LoadedWeights:
    state_dict: StateDict
    source: str  # the layout the file came in: torchvision, tf_efficientnet_lite, nets, ...
    origin: str  # the tag, or the file path, for messages
    tag: WeightTag | None
    preprocessing: Preprocessing | None
    metadata: dict[str, str]


def resolve(
    arch: str, spec: str | os.PathLike, *, expected: Collection[str] | None = None
) -> LoadedWeights:
    """Turn ``weights=`` into our state dict for ``arch``.

    ``spec`` is ``"imagenet"`` (the arch's default tag), a registered tag, or a path to a
    checkpoint file whose format is recognised from its content. ``expected``: the key names
    of the model the weights will load into (``model.state_dict()``), where there is one;
    converters that group blocks into stages as our model does take that grouping from it.
    """
    if isinstance(spec, str) and spec == "imagenet":
        name = default_tag(arch)
        if name is None:
            others = tags_for(arch)
            raise UnknownTagError(
                f"no ImageNet weights are registered for {arch!r}"
                + (f" (tags: {', '.join(others)})" if others else "")
                + "; pass a checkpoint file as a path instead"
            )
        spec = name
    if isinstance(spec, str) and spec in list_tags():
        tag = get_tag(spec)
        if tag.arch != arch:
            raise UnknownTagError(f"weights tag {tag.name!r} is for {tag.arch!r}, not {arch!r}")
        state_dict, meta = load_tag(tag, expected)
        return LoadedWeights(state_dict, tag.source, tag.name, tag, tag.preprocessing, meta)
    path = Path(spec)
    if not path.exists():
        if isinstance(spec, str) and "." in spec and os.sep not in spec and "/" not in spec:
            get_tag(spec)  # raises with close-name suggestions
        raise CheckpointFormatError(
            f"weights {str(spec)!r} is neither a registered tag nor an existing file"
        )
    raw, meta = read_checkpoint(path)
    source = detect_source(raw, meta, arch)
    state_dict = to_ours(arch, source, raw, expected)
    # What the file says of itself (a Keras file: its model, preprocessing mode and top).
    more, remark = describe(source, raw)
    meta = {**meta, **more}
    origin = f"{path} ({remark})" if remark else str(path)
    tag = tag_of_file(arch, path, meta)
    preprocessing = Preprocessing.from_metadata(meta) or (tag.preprocessing if tag else None)
    if preprocessing is None and default_tag(arch):
        preprocessing = get_tag(default_tag(arch)).preprocessing
    if source == NETS and meta.get("arch") and meta["arch"] != arch:
        # Our own files say which arch they hold; a mismatch is reported with the keys.
        origin = f"{origin} (a nets file for {meta['arch']!r})"
    return LoadedWeights(state_dict, source, origin, tag, preprocessing, meta)


def tag_of_file(arch: str, path: Path, meta: Mapping[str, str]) -> WeightTag | None:
    """The registered tag a local file is a copy of, recognised by name and checksum."""
    if meta.get("tag") in list_tags():
        return get_tag(meta["tag"])
    for name in tags_for(arch):
        tag = get_tag(name)
        if path.name == tag.file_name and sha256_of(path).startswith(tag.sha256):
            return tag
    return None


def check_state_dict(
    arch: str,
    origin: str,
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    given: Mapping[str, torch.Tensor],
    optional: Iterable[str] = (),
) -> None:
    """Raise one IncompatibleCheckpointError listing every missing, unexpected and
    mis-shaped key. ``optional`` keys (BatchNorm step counters) may be missing."""
    optional = set(optional)
    missing = [k for k in expected if k not in given and k not in optional]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        (k, tuple(given[k].shape), tuple(expected[k]))
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or mismatched:
        raise IncompatibleCheckpointError(arch, origin, missing, unexpected, mismatched)


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a first-conv kernel trained on RGB to ``in_chans`` input channels.

    One channel: the sum over RGB, which gives the same response to a grey image as the
    RGB kernel gives to that image repeated three times. Otherwise the RGB kernel is
    repeated over the channels and scaled by 3 / in_chans to keep the activation scale.
    """
    if weight.dim() != 4:
        raise ValueError(
            f"expected a conv kernel (out, in, kh, kw), got shape {list(weight.shape)}"
        )
    current = weight.shape[1]
    if in_chans == current:
        return weight
    if current != 3:
        raise ValueError(f"can only adapt a 3-channel first conv, this one has {current} channels")
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_chans / 3)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (3 / in_chans)
