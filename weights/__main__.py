"""Command line: ``python -m weights list | info FILE | convert SRC --arch NAME -o OUT``.

Errors in the input print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .convert import NETS, UNKNOWN, describe, detect_source, to_ours
from .errors import DtypeError, WeightsError, one_line
from .io import (
    check_dtypes,
    check_writable,
    dtype_counts,
    read_checkpoint,
    save_safetensors,
    sha256_of,
    sniff_format,
)
from .loading import _tag_of_file
from .registry import Preprocessing, default_tag, get_tag, list_tags
from .store import fetch, metadata_for


def _cmd_list(args: argparse.Namespace) -> int:
    for name in list_tags(args.pattern):
        t = get_tag(name)
        where = t.url or f"pip package {t.package[0]}"
        default = "*" if default_tag(t.arch) == name else " "
        print(f"{default} {name:28s} top-1 {t.top1:6.2f}  {t.num_params:>12,}  {where}")
    print("(* = the tag weights='imagenet' loads)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.file)
    container = sniff_format(path)
    state_dict, meta = read_checkpoint(path)
    params = sum(v.numel() for k, v in state_dict.items() if not k.endswith("num_batches_tracked"))
    info = {
        "file": str(path),
        "container": container,
        "layout": detect_source(state_dict, meta),
        "sha256": sha256_of(path),
        "tensors": len(state_dict),
        "values": params,
        "dtypes": dtype_counts(state_dict),
        "metadata": meta,
    }
    try:
        info["cast_on_loading"] = check_dtypes(state_dict, repr(str(path)))
    except DtypeError as exc:
        info["refused_on_loading"] = str(exc)
    if args.keys:
        info["keys"] = {k: list(v.shape) for k, v in state_dict.items()}
    print(json.dumps(info, indent=2))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    # Before reading a checkpoint of hundreds of megabytes, not after converting it.
    check_writable(Path(args.output).parent, "-o/--output")
    if Path(args.output).is_dir():
        raise WeightsError(f"-o/--output {args.output!r} is a folder; give a file name such as "
                           f"{str(Path(args.output) / 'model.safetensors')!r}")  # fmt: skip
    src = args.src
    if src in list_tags():
        tag = get_tag(src)
        if tag.arch != args.arch:
            raise WeightsError(f"weights tag {src!r} is for {tag.arch!r}, not {args.arch!r}")
        path = fetch(tag)
    else:
        path = Path(src)
        tag = None
    raw, meta = read_checkpoint(path)
    source = detect_source(raw, meta, args.arch)
    if source == UNKNOWN:
        sample = ", ".join(list(raw)[:3])
        raise WeightsError(
            f"cannot tell the layout of {str(path)!r} (keys such as {sample}): expected "
            "torchvision, TF EfficientNet-Lite or this library's own"
        )
    tag = tag or _tag_of_file(args.arch, Path(path), meta)
    state_dict = to_ours(args.arch, source, raw, _expected_keys(args.arch))
    out_meta = metadata_for(
        arch=args.arch,
        source=source if source != NETS else meta.get("source", NETS),
        source_sha256=sha256_of(path),
        tag=tag,
    )
    # What a file says of its own preprocessing wins over a tag's, as when loading it: a
    # Keras EfficientNet file carries its Normalization constants (weights.keras_format).
    own = Preprocessing.from_metadata(describe(source, raw)[0])
    if own is not None:
        out_meta.update(own.as_metadata())
    said = ", the file's own preprocessing" if own else ""
    save_safetensors(
        state_dict, args.output, out_meta, check=lambda tmp: _loads_into(args.arch, tmp, source)
    )
    print(
        f"{path} ({source}) -> {args.output}: {len(state_dict)} tensors for {args.arch}"
        f"{f', preprocessing of {tag.name}' if tag and not own else said}"
    )
    return 0


def _expected_keys(arch: str) -> list[str] | None:
    """The key names of ``arch`` as nets builds it (on the meta device), for the converters
    that follow our grouping of blocks; None for an arch nets does not know (``_loads_into``
    then reports it)."""
    import torch

    import nets  # the command line sits above both packages (see _loads_into)

    try:
        with torch.device("meta"):
            return list(nets.create_model(arch).state_dict())
    except nets.NetsError:
        return None


def _loads_into(arch: str, file: str, source: str) -> None:
    """Load the converted ``file`` into ``arch`` (shapes only, on the meta device), strictly:
    a file that would not load is never written. A different classifier size, a headless
    (notop) file and another input channel count are what ``create_model`` accepts too."""
    import warnings

    import torch

    # The command line sits above both packages: verifying needs the architecture, which
    # lives in nets. The library modules of weights never import nets.
    import nets

    try:
        with torch.device("meta"):
            plain = nets.create_model(arch)
        state_dict, _ = read_checkpoint(file)
        first = state_dict.get(f"{plain.first_conv}.weight")
        include_top = any(k.startswith("head.") for k in state_dict)
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # copies into meta tensors are no-ops, by design
            nets.create_model(
                arch, weights=file, include_top=include_top,
                in_chans=first.shape[1] if first is not None and first.dim() == 4 else None,
            )  # fmt: skip
    except nets.NetsError as exc:
        raise WeightsError(
            f"the converted {source} file does not load into {arch!r}: {exc}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m weights", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered weights tags")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(run=_cmd_list)
    p = sub.add_parser("info", help="format, layout, checksum and metadata of a checkpoint")
    p.add_argument("file")
    p.add_argument("--keys", action="store_true", help="also list every key and shape")
    p.set_defaults(run=_cmd_info)
    p = sub.add_parser("convert", help="convert a checkpoint (file or tag) to our safetensors")
    p.add_argument("src", help="a checkpoint file, or a registered tag")
    p.add_argument("--arch", required=True, help="the architecture, e.g. resnet50")
    p.add_argument("-o", "--output", required=True, help="where to write OUT.safetensors")
    p.set_defaults(run=_cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (WeightsError, OSError) as exc:
        print(f"error: {one_line(exc, 1000)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
