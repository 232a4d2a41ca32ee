"""Our models in timm's registry, so that timm's own tools run them unchanged.

>>> import nets.timm  # registers every model as nets_<name>, its weight tags as timm's tags
>>> import timm
>>> model = timm.create_model("nets_resnet50", pretrained=True)  # our default tag
>>> model = timm.create_model("nets_resnet50.tv2_in1k", pretrained=True, num_classes=10)

The names carry the prefix ``nets_``, so they cannot clash with timm's own models (timm has a
``resnet50`` of its own). A timm tag is our tag's origin (``tv_in1k``, ``keras_in1k``...), and
``pretrained=True`` loads it through our converters, checksums and strict loading, exactly as
``nets.create_model(name, weights=tag)`` does. Every other keyword timm passes
(``num_classes``, ``in_chans``, ``global_pool``, ``drop_rate``, ``features_only``...) reaches
``nets.create_model``, which refuses in one line what a family does not take.

timm's scripts (``train.py``, ``validate.py``, ``benchmark.py``) know nothing of this module;
``python -m nets.timm SCRIPT [ARGS...]`` registers our models, then runs the script as
``python SCRIPT ARGS`` would.

timm is an optional dependency: importing this module without it is an ``ImportError`` that
says so.
"""

from __future__ import annotations

import runpy
import sys
from collections import deque
from collections.abc import Callable, Sequence

try:
    from timm.models import _registry
    from timm.models._pretrained import DefaultCfg
    from timm.models._pretrained import PretrainedCfg as TimmCfg
except ImportError as exc:  # pragma: no cover - timm is installed wherever tests run
    raise ImportError("nets.timm needs timm: pip install timm") from exc

import weights as wts

from .factory import create_model
from .pretrained import PretrainedCfg
from .registry import get_spec, list_models

PREFIX = "nets_"

# timm's register_model reads each entry point's pretrained configurations from its module's
# default_cfgs, keyed by the entry point's name.
default_cfgs: dict[str, DefaultCfg] = {}


def timm_name(arch: str) -> str:
    return PREFIX + arch


def _origin(tag: str) -> str:
    """timm's tag for ours: the part after the arch (``resnet50.tv2_in1k`` -> ``tv2_in1k``)."""
    return tag.split(".", 1)[1]


def _timm_cfg(arch: str, tag_name: str) -> TimmCfg:
    tag = wts.get_tag(tag_name)
    view = PretrainedCfg(arch, get_spec(arch).input_size, tag.preprocessing, "").timm_view()
    where = tag.url or (f"{tag.package[0]}:{tag.package[1]}" if tag.package else None)
    return TimmCfg(
        url=tag.url,
        file=None if tag.url else where,
        architecture=timm_name(arch),
        tag=_origin(tag_name),
        input_size=view["input_size"],
        interpolation=view["interpolation"],
        crop_pct=view["crop_pct"],
        mean=view["mean"],
        std=view["std"],
        num_classes=1000,
        first_conv="stem.conv",
        classifier="head.fc",
        license=None,
        description=tag.notes,
        origin_url=tag.url,
    )


def _default_cfg(arch: str) -> DefaultCfg | None:
    tags = wts.tags_for(arch)
    if not tags:
        return None
    default = wts.default_tag(arch)
    ordered = sorted(tags, key=lambda t: t != default)  # timm's first tag is the default
    return DefaultCfg(
        tags=deque(_origin(t) for t in ordered),
        cfgs={_origin(t): _timm_cfg(arch, t) for t in ordered},
    )


def _weights_for(arch: str, pretrained: bool, pretrained_cfg: object) -> str | None:
    """Our ``weights`` argument for timm's ``pretrained`` and ``pretrained_cfg`` (a tag
    string from ``name.tag``, a timm PretrainedCfg from the registry, or None)."""
    if not pretrained:
        return None
    origin = getattr(pretrained_cfg, "tag", pretrained_cfg)
    if isinstance(pretrained_cfg, dict):
        origin = pretrained_cfg.get("tag")
    return f"{arch}.{origin}" if isinstance(origin, str) and origin else "imagenet"


def _entry_point(arch: str) -> Callable:
    def build(
        pretrained: bool = False,
        pretrained_cfg: object = None,
        pretrained_cfg_overlay: dict | None = None,
        cache_dir: object = None,
        device: object = None,
        dtype: object = None,
        **kwargs,
    ):
        model = create_model(arch, weights=_weights_for(arch, pretrained, pretrained_cfg), **kwargs)
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
        return model

    build.__name__ = build.__qualname__ = timm_name(arch)
    build.__module__ = __name__
    build.__doc__ = f"nets.create_model({arch!r}, ...) for timm.create_model."
    return build


def register_all() -> list[str]:
    """Register every model of ours (that timm does not know yet) in timm's registry."""
    names = []
    for arch in list_models():
        name = timm_name(arch)
        if name in _registry._model_entrypoints:
            continue
        cfg = _default_cfg(arch)
        if cfg is not None:
            default_cfgs[name] = cfg
        fn = _entry_point(arch)
        globals()[name] = fn
        _registry.register_model(fn)
        names.append(name)
    return names


def run_script(argv: Sequence[str]) -> None:
    """``python -m nets.timm SCRIPT ARGS``: run one of timm's scripts with our models in its
    registry, as ``python SCRIPT ARGS`` would run it."""
    if not argv or not argv[0].endswith(".py"):
        sys.exit("usage: python -m nets.timm SCRIPT.py [ARGS...] (e.g. timm's validate.py)")
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    # Registered from the importable module nets.timm, not from this __main__ copy of it.
    import nets.timm  # noqa: F401

    run_script(sys.argv[1:])
else:
    register_all()
