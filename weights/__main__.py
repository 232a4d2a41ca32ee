"""Command line: ``python -m weights list | info FILE``: what needs no architecture.
Converting a file for an architecture is ``python -m nets convert`` (the architectures
live in nets, above this package).

Errors in the input print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from common import ArgumentParser, one_line

from .convert import detect_source
from .errors import DtypeError, WeightsError
from .io import (
    check_dtypes,
    dtype_counts,
    read_checkpoint,
    sha256_of,
    sniff_format,
)
from .registry import default_tag, get_tag, list_tags


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


def _cmd_moved(args: argparse.Namespace) -> int:
    raise WeightsError(
        "convert needs the architecture, which lives in nets: run "
        "python -m nets convert SRC --arch NAME -o OUT.safetensors"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m weights", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered weights tags")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(run=_cmd_list)
    p = sub.add_parser("info", help="format, layout, checksum and metadata of a checkpoint")
    p.add_argument("file")
    p.add_argument("--keys", action="store_true", help="also list every key and shape")
    p.set_defaults(run=_cmd_info)
    p = sub.add_parser("convert", help="moved: python -m nets convert SRC --arch NAME -o OUT")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=_cmd_moved)
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
