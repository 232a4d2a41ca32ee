"""``create_model``: build a registered network and load its weights strictly."""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import os
import re
from collections.abc import Sequence

from torch import nn

import weights as wts

from .base import POOLINGS, FeatureInfoList, timm_pooling
from .errors import UnknownOptionError
from .features import FeatureExtractor
from .pretrained import PretrainedCfg
from .registry import get_spec


def create_model(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    num_classes: int | None = None,
    include_top: bool = True,
    pooling: str | None = "avg",
    in_chans: int | None = None,
    pretrained: bool | None = None,
    global_pool: str | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **family_kwargs,
) -> nn.Module:
    """Build ``name`` and optionally load weights.

    ``weights``: ``None`` or ``"none"`` (the family's published random initialisation),
    ``"imagenet"`` (the default tag), a tag such as ``"resnet50.tv_in1k"``, or a checkpoint
    path in any supported format (recognised from its content).

    timm's spellings are taken too: ``pretrained=True`` is ``weights="imagenet"``,
    ``global_pool`` is ``pooling`` (``""`` for none, which needs ``num_classes=0``), and
    ``features_only=True`` returns a ``FeatureExtractor`` of the stages ``out_indices``
    (default: all). Family options (``drop_rate``, ``drop_path_rate``, ...) go to the
    builder; one it does not take is refused in one line naming those it does.

    With weights and a ``num_classes`` other than the checkpoint's, the classifier is new
    and everything else loads strictly. ``include_top=False`` drops the head and keeps only
    ``pooling`` (``"avg"``, ``"max"`` or ``None`` for the feature map). ``in_chans != 3``
    adapts the pretrained first conv (summed for one channel, else repeated and rescaled).
    ``num_classes`` and ``in_chans`` left as ``None`` take the registered defaults (1000 and
    3 unless the spec's kwargs say otherwise, as LeNet-5's 10 classes on 1 channel do).
    """
    spec = get_spec(name)
    weights = _weights_argument(weights, pretrained)
    if global_pool is not None:
        pooling = timm_pooling(global_pool, num_classes)
        include_top = include_top and pooling is not None  # "": the feature map, no head
    _check_options(name, spec, family_kwargs)
    if num_classes is None:
        num_classes = spec.kwargs.get("num_classes", 1000)
    if in_chans is None:
        in_chans = spec.kwargs.get("in_chans", 3)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'avg', 'max' or None, got {pooling!r}")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
    try:
        model = spec.builder(
            include_top=include_top,
            pooling=pooling,
            **{**spec.kwargs, **family_kwargs, "num_classes": num_classes, "in_chans": in_chans},
        )
    except TypeError as exc:  # where builder_options could not follow the builder
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if bad and bad[1] in family_kwargs:
            raise UnknownOptionError(f"{name} does not take {bad[1]!r}") from None
        raise
    model.arch = name
    model.min_input_size = spec.min_input_size
    built = getattr(model, "pretrained_cfg", None)
    # A builder may know better (a U-Net's input is its encoder's): keep what it set.
    if isinstance(built, PretrainedCfg):
        model.pretrained_cfg = built.replace(arch=name)
    else:
        model.pretrained_cfg = PretrainedCfg.unweighted(name, spec.input_size)
    if not isinstance(model.feature_info, FeatureInfoList):
        model.feature_info = FeatureInfoList(model.feature_info)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        in_chans=in_chans,
        num_classes=num_classes,
        first_conv=model.first_conv,
        classifier=model.classifier,
        pool_size=_pool_size(model),
    )
    if weights is not None:
        load_pretrained(model, name, weights, include_top=include_top, in_chans=in_chans)
    if features_only:
        stages = range(len(model.stages)) if out_indices is None else out_indices
        return FeatureExtractor(model, list(stages))
    if out_indices is not None:
        raise UnknownOptionError("out_indices chooses stages for features_only=True")
    return model


def _weights_argument(weights: str | os.PathLike | None, pretrained: bool | None):
    """``weights`` with ``"none"`` read as None (as every command line reads it), and timm's
    ``pretrained`` as ``"imagenet"`` or None."""
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    if pretrained is None:
        return weights
    if weights is not None:
        raise UnknownOptionError("give weights or pretrained, not both")
    return "imagenet" if pretrained else None


def _pool_size(model: nn.Module) -> tuple[int, int] | None:
    info = getattr(model, "feature_info", None)
    size = model.pretrained_cfg.preprocessing.input_size
    return (size // info[-1].reduction,) * 2 if info else None


def builder_options(spec) -> set[str] | None:
    """The keywords ``spec``'s builder takes, following ``**kwargs`` into the class it
    builds (its return annotation) and up that class's ``__init__`` chain; None where the
    chain cannot be followed (the builder's own error then names the keyword)."""
    names: set[str] = set()
    func = spec.builder
    while isinstance(func, functools.partial):
        names |= set(func.keywords)
        func = func.func
    params = inspect.signature(func).parameters.values()
    names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        return names
    cls = _returned_class(func)
    for klass in getattr(cls, "__mro__", ()):
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return None


def _returned_class(func) -> type | None:
    if inspect.isclass(func):
        return func
    annotation = inspect.signature(func).return_annotation
    if isinstance(annotation, str):
        annotation = getattr(func, "__globals__", {}).get(annotation)
    return annotation if inspect.isclass(annotation) else None


# What create_model itself takes or sets; a family option may not reuse these names.
_OWN = {"include_top", "pooling", "num_classes", "in_chans"}


def _check_options(name: str, spec, given: dict) -> None:
    if not given:
        return
    taken = builder_options(spec)
    if taken is None:
        return
    unknown = [k for k in given if k not in taken or k in _OWN]
    if unknown:
        options = sorted(taken - _OWN - {"variant", "cfg", "depths"})
        close = difflib.get_close_matches(unknown[0], options, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownOptionError(
            f"{name} does not take {unknown[0]!r}{hint}; its options: {', '.join(options)}"
        )


def load_pretrained(
    model: nn.Module,
    arch: str,
    weights: str | os.PathLike,
    *,
    include_top: bool = True,
    in_chans: int = 3,
) -> None:
    """Load ``weights`` (a tag, ``"imagenet"`` or a checkpoint path) into ``model`` strictly,
    except for a classifier it chose to replace."""
    # The model's key names let converters follow its grouping of blocks into stages.
    loaded = wts.resolve(arch, weights, expected=list(model.state_dict()))
    state_dict = dict(loaded.state_dict)
    first = f"{model.first_conv}.weight"
    if in_chans != 3 and first in state_dict:
        state_dict[first] = wts.adapt_input_conv(state_dict[first], in_chans)

    expected = {k: v.shape for k, v in model.state_dict().items()}
    head_prefix = "head."
    fc_prefix = f"{model.classifier}."
    # Auxiliary classifiers (GoogLeNet, Inception v3) are replaced along with the main one.
    fc_prefixes = (fc_prefix, *(f"{p}." for p in getattr(model, "aux_classifiers", ())))
    if not include_top:
        # keras.applications semantics: the whole top (VGG's fc1/fc2 too) is left out.
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(head_prefix)}
    else:
        fc_weight = state_dict.get(f"{fc_prefix}weight")
        want = expected.get(f"{fc_prefix}weight")
        if (
            fc_weight is not None
            and fc_weight.dim() == 2
            and (want is None or fc_weight.shape[0] != want[0])
        ):
            # A different num_classes: the model keeps its freshly initialised classifier.
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(fc_prefixes)}
            expected = {k: v for k, v in expected.items() if not k.startswith(fc_prefixes)}

    for prefix in getattr(model, "optional_parts", ()):
        # Parts a checkpoint may carry that this model was built without (auxiliary
        # classifiers with aux_logits=False): left out by choice, like a replaced classifier.
        if not any(k.startswith(prefix) for k in expected):
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}

    counters = [k for k in expected if k.endswith(".num_batches_tracked")]
    wts.check_state_dict(arch, loaded.origin, expected, state_dict, optional=counters)
    # An integer tensor copied into a float parameter would load silently as garbage;
    # half and double precision are cast by load_state_dict.
    wts.check_dtypes(state_dict, loaded.origin, {k: v.dtype for k, v in model.state_dict().items()})
    # Complete check done above; only BatchNorm counters and a replaced classifier remain.
    model.load_state_dict(state_dict, strict=False)
    meta = loaded.metadata or {}
    cfg = model.pretrained_cfg
    if not isinstance(cfg, PretrainedCfg):  # a network built without create_model
        cfg = PretrainedCfg.unweighted(arch, get_spec(arch).input_size)
    if loaded.tag is not None:
        where = f"the tag {loaded.tag.name}"
    elif wts.Preprocessing.from_metadata(meta) is not None:
        where = f"the metadata of {loaded.origin}"
    else:
        where = cfg.preprocessing_from.replace("no weights loaded", "the file carries none")
    model.pretrained_cfg = cfg.replace(
        tag=loaded.tag.name if loaded.tag else None,
        origin=loaded.origin,
        source=loaded.source,
        preprocessing=loaded.preprocessing or cfg.preprocessing,
        preprocessing_from=where,
        # a trainer's export names its classes
        class_names=tuple(json.loads(meta["class_names"])) if "class_names" in meta else None,
    )
