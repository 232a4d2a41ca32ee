"""The model registry: every architecture name maps to one builder and its defaults."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from torch import nn

from .errors import UnknownModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    kwargs: dict = field(default_factory=dict)
    input_size: int = 224  # the size the network was designed and trained at
    min_input_size: int = 32  # below this the feature maps vanish (Keras' minimums where known)
    paper: str = ""
    # The builder takes ``aux_logits=True`` (GoogLeNet, Inception v3): auxiliary classifiers
    # the trainer can add to the loss. Declared here, so that nobody guesses it.
    aux_heads: bool = False


_MODELS: dict[str, ModelSpec] = {}
# Name prefixes whose models are made from another registered model (``unet_<encoder>``):
# prefix -> a function of (full name, the other model's name) giving the spec.
_DERIVED: dict[str, Callable[[str, str], ModelSpec]] = {}

V = TypeVar("V")


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    family: str,
    input_size: int = 224,
    min_input_size: int = 32,
    paper: str = "",
    aux_heads: bool = False,
    **kwargs,
) -> ModelSpec:
    """Register ``name``; a second registration of the same name is an error."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered (family {_MODELS[name].family})")
    spec = ModelSpec(name, family, builder, kwargs, input_size, min_input_size, paper, aux_heads)
    _MODELS[name] = spec
    return spec


def register_variants(
    variants: Mapping[str, V],
    build: Callable[..., nn.Module],
    *,
    family: str,
    paper: str | Callable[[str], str] = "",
    input_size: int | Callable[[V], int] = 224,
    min_input_size: int | Callable[[V], int] = 32,
    defaults: Callable[[V], dict] | None = None,
    **kwargs,
) -> list[ModelSpec]:
    """Register every entry of a family's variant table: ``name`` builds
    ``build(variant, **kwargs, **defaults(variant), **the caller's kwargs)``.

    ``input_size``, ``min_input_size`` and ``paper`` are either one value for the family or
    a function of the variant (``paper``: of the name). ``kwargs`` are defaults shared by
    every variant (for example a Keras port's BatchNorm epsilon).
    """

    def per_variant(value, arg):
        return value(arg) if callable(value) else value

    specs = []
    for name, variant in variants.items():
        specs.append(
            register_model(
                name,
                partial(build, variant),
                family=family,
                input_size=per_variant(input_size, variant),
                min_input_size=per_variant(min_input_size, variant),
                paper=per_variant(paper, name),
                **kwargs,
                **(defaults(variant) if defaults else {}),
            )
        )
    return specs


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted((n for n in _MODELS if fnmatch.fnmatch(n, pattern)), key=natural_key)


def natural_key(name: str) -> list:
    """Sort resnet18 < resnet34 < resnet101 (numbers by value, not by character)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def register_derived(prefix: str, make_spec: Callable[[str, str], ModelSpec]) -> None:
    """Names ``prefix + <any registered model>`` (``unet_resnet34``) resolve through
    ``make_spec(name, model)``; they are not listed by ``list_models``, which would
    otherwise hold every model twice."""
    if prefix in _DERIVED:
        raise ValueError(f"derived names {prefix!r}* are already registered")
    _DERIVED[prefix] = make_spec


def derived_prefixes() -> tuple[str, ...]:
    return tuple(_DERIVED)


def get_spec(name: str) -> ModelSpec:
    if isinstance(name, str) and name not in _MODELS:
        for prefix, make_spec in _DERIVED.items():
            base = name[len(prefix) :]
            if name.startswith(prefix) and base in _MODELS:
                return make_spec(name, base)
            if name.startswith(prefix) and base:
                get_spec(base)  # raises, naming the unknown encoder and close names
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see python -m nets list"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None
