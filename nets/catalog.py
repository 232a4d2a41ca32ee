"""The registry as a table: every model with its family, parameters, cost, input size and
weights, for ``python -m nets list`` and the documentation's model table (generated from
here, and checked against it by the tests, so it cannot go stale)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch

import weights as wts

from .cost import count_macs
from .factory import create_model
from .registry import derived_prefixes, get_spec, list_models
from .summary import count

# How each publisher's weights are named in the table's "sources" column.
_SOURCES = {"torchvision": "torchvision", "timm": "timm", "keras": "Keras",
            "tf_efficientnet_lite": "TF-Lite port"}  # fmt: skip


@dataclass(frozen=True)
class CatalogRow:
    name: str
    family: str
    params: int | None  # None: a pattern of names (unet_<model>), not one model
    input_size: int | None
    default_tag: str | None
    top1: float | None
    sources: tuple[str, ...] = ()
    macs: int | None = None  # multiply-accumulates at input_size (when asked for)


def catalog(pattern: str = "*", *, macs: bool = False) -> list[CatalogRow]:
    """One row per registered model matching ``pattern``, in registry order, then one per
    derived family (``unet_<model>``). Built on the meta device: counts, nothing allocated.
    ``macs``: also count one forward pass's multiply-accumulates (slower)."""
    rows = []
    for name in list_models(pattern):
        spec = get_spec(name)
        with torch.device("meta"):  # shapes only: counts without allocating or initialising
            model = create_model(name)
        tag = wts.default_tag(name)
        sources = sorted({_SOURCES.get(wts.get_tag(t).source, wts.get_tag(t).source)
                          for t in wts.tags_for(name)})  # fmt: skip
        cost = None
        if macs:
            cost = count_macs(model, (1, model.in_chans, spec.input_size, spec.input_size))
        rows.append(
            CatalogRow(
                name,
                spec.family,
                count(model).trainable,
                spec.input_size,
                tag,
                wts.get_tag(tag).top1 if tag else None,
                tuple(sources),
                cost,
            )  # fmt: skip
        )
    for prefix in derived_prefixes():  # unet_<model>: any model above, as a U-Net's encoder
        if fnmatch.fnmatch(f"{prefix}<model>", pattern):
            family = get_spec(f"{prefix}resnet18").family
            rows.append(CatalogRow(f"{prefix}<model>", family, None, None, None, None))
    return rows


def text_table(rows: list[CatalogRow]) -> str:
    """Aligned columns for the terminal."""
    header = ("model", "family", "params", "size", "default weights", "top-1")
    cells = [header] + [
        (
            r.name,
            r.family,
            _or(r.params, "{:,}"),
            _or(r.input_size),
            r.default_tag or "-",
            _or(r.top1, "{:.1f}"),
        )  # fmt: skip
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    right = {2, 3, 5}
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()  # fmt: skip
        for row in cells
    ]
    return "\n".join(lines)


def markdown_table(rows: list[CatalogRow]) -> str:
    """The documentation's model table (rows with ``macs`` counted), as a page."""
    lines = [
        "# Every model",
        "",
        "Generated from the registry by `python -m nets list --markdown -o docs/model_table.md`"
        " (a test fails when this page is stale). GMACs: multiply-accumulates of one image at"
        " the model's input size; top-1: the default weights' reference ImageNet accuracy;"
        " sources: the publishers whose weights load into it (`python -m weights list`).",
        "",
        "| model | family | parameters | GMACs | input | default weights | top-1 | sources |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        gmacs = None if r.macs is None else r.macs / 1e9
        lines.append(
            f"| `{r.name}` | {r.family} | {_or(r.params, '{:,}')} | {_or(gmacs, '{:.2f}')} | "
            f"{_or(r.input_size)} | {f'`{r.default_tag}`' if r.default_tag else '-'} | "
            f"{_or(r.top1, '{:.1f}')} | {', '.join(r.sources) or '-'} |"
        )
    return "\n".join(lines)


def _or(value: object, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)
