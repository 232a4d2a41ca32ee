"""Command line: ``python -m nets list | summary NAME | cost NAME | classify IMAGE...``.

Errors in the input (unknown model, bad image, bad checkpoint, too small an input)
print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import torch

import weights as wts

from .cost import cost_table, format_table, inception_demo, separable_demo
from .errors import NetsError
from .factory import create_model
from .images import load_image
from .registry import get_spec, list_models
from .summary import count, keras_variant, summary


def _cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models(args.pattern):
        spec = get_spec(name)
        with torch.device("meta"):  # shapes only: counts without allocating or initialising
            model = create_model(name)
        params = count(model).trainable
        tag = wts.default_tag(name)
        top1 = f"{wts.get_tag(tag).top1:.1f}" if tag else "-"
        rows.append((name, spec.family, f"{params:,}", str(spec.input_size), tag or "-", top1))
    header = ("model", "family", "params", "size", "default weights", "top-1")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 5}
    for r in [header, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    name, keras_name = keras_variant(args.name) if args.keras else (args.name, None)
    spec = get_spec(name)
    with torch.device("meta"):
        model = create_model(name, num_classes=args.num_classes)
    print(summary(model, args.input_size or spec.input_size, args.depth, name=name))
    if args.keras:
        same = f"keras.applications.{keras_name}" if keras_name else "no keras.applications model"
        print(f"{name}: {same}; totals counted as Keras does (non-trainable = BatchNorm moving")
        print("mean and variance, plus frozen parameters)")
    return 0


DEMOS = {"inception-demo": inception_demo, "separable-demo": separable_demo}


def _cmd_cost(args: argparse.Namespace) -> int:
    if args.name in DEMOS:
        print(DEMOS[args.name]())
        return 0
    spec = get_spec(args.name)
    size = args.input_size or spec.input_size
    with torch.device("meta"):  # shapes only: MACs and counts without computing anything
        model = create_model(args.name)
    rows = cost_table(model, size, per_block=args.per_block)
    print(format_table(rows, f"{args.name} on one {size}x{size} image"))
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    # A file written by `python -m train` names its arch, classes and input channels.
    meta = wts.read_checkpoint(args.weights)[1] if os.path.isfile(args.weights) else {}
    arch = args.model or meta.get("arch") or "efficientnet_lite0"
    names = json.loads(meta["class_names"]) if "class_names" in meta else None
    model = create_model(
        arch,
        weights=args.weights,
        num_classes=len(names) if names else None,
        in_chans=int(meta["in_chans"]) if "in_chans" in meta else None,
    ).eval()
    pre = model.pretrained_cfg.get("preprocessing") or wts.Preprocessing(
        input_size=get_spec(arch).input_size,
        resize_size=round(get_spec(arch).input_size / 0.875),
    )
    if model.in_chans == 1:  # grey input: the RGB statistics averaged
        pre = wts.Preprocessing(
            pre.input_size, pre.resize_size, pre.interpolation,
            (sum(pre.mean) / 3,) * 3, (sum(pre.std) / 3,) * 3,
        )  # fmt: skip
    transform = wts.transforms(pre)
    failed = 0
    for path in args.images:
        try:
            image = load_image(path)
        except NetsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        x = transform(image).unsqueeze(0)
        if model.in_chans == 1:
            x = x[:, :1]  # the three channels of a grey image are equal
        with torch.no_grad():
            logits = model(x)
        print(path)
        for _, name, prob in wts.decode_predictions(logits, top=args.top, categories_=names)[0]:
            print(f"  {name} ({100 * prob:.1f}%)")
    return 2 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered models with parameters and default weights")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser("summary", help="Keras-style table of layers, output shapes, parameters")
    p.add_argument("name")
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="square input side (default: the size the model was designed for)",
    )
    p.add_argument(
        "--depth", type=int, default=None, help="module depth to list (default: every layer)"
    )
    p.add_argument("--num-classes", type=int, default=None, help="default: the model's own")
    p.add_argument(
        "--keras",
        action="store_true",
        help="the model as keras.applications builds it (NAME may be a Keras name such as "
        "MobileNet or ResNet50), with Keras' total/trainable/non-trainable counts",
    )
    p.set_defaults(run=_cmd_summary)

    p = sub.add_parser("cost", help="multiply-accumulates and parameters per stage or block")
    p.add_argument("name", help=f"a model, or one of: {', '.join(DEMOS)}")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--per-block", action="store_true", help="one row per block")
    p.set_defaults(run=_cmd_cost)

    p = sub.add_parser("classify", help="top predictions for image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--model",
        default=None,
        help="default: the arch a trained file names, else efficientnet_lite0",
    )
    p.add_argument("--weights", default="imagenet", help="'imagenet', a tag or a checkpoint path")
    p.add_argument("--top", type=int, default=5)
    p.set_defaults(run=_cmd_classify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (NetsError, wts.WeightsError) as exc:
        print(f"error: {wts.one_line(exc, 1000)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
