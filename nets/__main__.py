"""Command line: ``python -m nets list | summary NAME | cost NAME | classify IMAGE... |
show filters|features|cam | export NAME``.

Errors in the input (unknown model, bad image, bad checkpoint, too small an input)
print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

import common
import weights as wts
from common import cli

from .catalog import catalog, markdown_table, text_table
from .conversion import convert_checkpoint
from .cost import cost_table, format_table, inception_demo, separable_demo
from .errors import NetsError
from .export import check_destination, export_model, format_for
from .factory import create_model
from .images import load_image
from .registry import get_spec
from .summary import keras_variant, summary
from .visualize import (
    VisualizeError,
    check_output,
    first_conv,
    grad_cam,
    load_model,
    save_feature_maps,
    save_filters,
    save_grad_cam,
)


def _cmd_list(args: argparse.Namespace) -> int:
    rows = catalog(args.pattern, macs=args.markdown)
    text = markdown_table(rows) if args.markdown else text_table(rows)
    if args.output is None:
        print(text)
        return 0
    common.check_writable(args.output.parent, "-o")
    common.atomic_write_text(args.output, text + "\n")
    print(f"{len(rows)} models written to {args.output}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    print(convert_checkpoint(args.src, args.arch, args.output, overwrite=args.overwrite))
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    name, keras_name = keras_variant(args.name) if args.keras else (args.name, None)
    spec = get_spec(name)
    with torch.device("meta"):
        model = create_model(name, num_classes=args.num_classes)
    from weights.keras.conversion import keras_only_non_trainable

    extra = keras_only_non_trainable(keras_name) if keras_name else 0
    size = args.input_size or spec.input_size
    print(summary(model, size, args.depth, name=name, extra_non_trainable=extra))
    if args.keras:
        same = f"keras.applications.{keras_name}" if keras_name else "no keras.applications model"
        print(f"{name}: {same}; totals counted as Keras does (non-trainable = BatchNorm moving")
        print("mean and variance, plus frozen parameters)")
        if extra:
            print(
                f"and {extra} of Keras' Normalization layer (mean, variance, count), which ours "
                "has as the weights' preprocessing"
            )
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
    if get_spec(arch).family == "unet":  # before the model is built or an image read
        source = f" ({args.weights})" if meta.get("arch") == arch else ""
        raise NetsError(
            f"{arch}{source} is a segmentation network (a class per pixel), not a classifier: "
            "python -m train predict --checkpoint FILE IMAGE writes its masks"
        )
    if args.weights.lower() == "none":
        print(f"note: {arch} with random weights (--weights none): the classes are noise",
              file=sys.stderr)  # fmt: skip
    names = json.loads(meta["class_names"]) if "class_names" in meta else None
    model = create_model(
        arch,
        weights=args.weights,
        num_classes=len(names) if names else None,
        in_chans=int(meta["in_chans"]) if "in_chans" in meta else None,
    ).eval()
    # The weights' preprocessing, else the family's default; grey for a 1-channel network.
    transform = wts.transforms(model)
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
        if logits.dim() != 2:  # one line, not decode_predictions' ValueError
            raise NetsError(
                f"{arch} returned shape {list(logits.shape)}, not one score per class: "
                "classify needs a classifier"
            )
        print(path)
        for _, name, prob in wts.decode_predictions(logits, top=args.top, categories_=names)[0]:
            print(f"  {name} ({100 * prob:.1f}%)")
    return 2 if failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    # Everything that can be refused without building the model is refused first.
    fmt = format_for(args.output, args.format)
    check_destination(args.output)
    spec = get_spec(args.name)
    size = args.input_size or spec.input_size
    if size < spec.min_input_size:
        raise NetsError(
            f"{args.name} needs inputs of at least {spec.min_input_size}x"
            f"{spec.min_input_size} pixels, got --input-size {size}"
        )
    given = None if args.weights.lower() == "none" else args.weights
    model = create_model(args.name, weights=given).eval()
    check = export_model(
        model,
        args.output,
        fmt=fmt,
        input_size=size,
        dynamic_batch=args.dynamic_batch,
        fast=args.fast,
        half=args.half,
    )
    batch = "dynamic batch (1 to 1024)" if args.dynamic_batch else "batch 1"
    how = ", ".join(w for w, on in (("fast path", args.fast), ("float16", args.half)) if on)
    print(
        f"{args.name} ({model.pretrained_cfg.tag or given or 'random weights'}) -> {fmt}, "
        f"{batch}, {size}x{size}{', ' + how if how else ''}"
    )
    print(check)
    print(f"wrote {args.output}")
    return 0


def _show_filters(args: argparse.Namespace) -> int:
    names = args.models or [None]
    given = args.weights
    if len(given) not in (1, len(names)):
        raise VisualizeError(
            f"--weights takes one value for all models or one per model: got {len(given)} "
            f"for {len(names)} models"
        )
    check_output(args.output)  # before any model is loaded
    models = [
        load_model(name, given[0] if len(given) == 1 else given[i]) for i, name in enumerate(names)
    ]
    path = save_filters(models, args.output, shared_scale=args.shared_scale)
    for model in models:
        name, conv = first_conv(model)
        n, c, kh, kw = conv.weight.shape
        print(f"{model.arch}: {n} filters {kh}x{kw}x{c} ({name})")
    print(f"wrote {path}")
    return 0


def _show_features(args: argparse.Namespace) -> int:
    check_output(args.output)
    load_image(args.image)  # an unreadable image fails before the model is loaded
    model = load_model(args.model, args.weights)
    path = save_feature_maps(
        model, args.image, args.output, top_k=args.top_k, stages=args.stages, crop=args.crop
    )
    print(f"wrote {path}")
    return 0


def _show_cam(args: argparse.Namespace) -> int:
    check_output(args.output)
    load_image(args.image)
    model = load_model(args.model, args.weights)
    maps = grad_cam(model, args.image, args.target, args.stage, top_k=args.top_k, crop=args.crop)
    path = save_grad_cam(model, args.image, args.output, crop=args.crop, maps=maps)
    for cam in maps:
        print(f"{cam.name} ({100 * cam.probability:.1f}%), stage {cam.stage}")
    print(f"wrote {path}")
    return 0


def _add_show(sub) -> None:
    show = sub.add_parser(
        "show", help="pictures: first-layer filters, feature maps per stage, Grad-CAM"
    )
    kinds = show.add_subparsers(dest="kind", required=True)
    weights_help = "'imagenet', a tag, a checkpoint path (a trainer's best.safetensors too), "
    weights_help += "or 'none' for random initialisation"

    p = kinds.add_parser("filters", help="the first convolution's kernels as RGB tiles")
    p.add_argument(
        "--models", "--model", nargs="+", default=None, metavar="NAME",
        help="one or more models, drawn side by side (default: the arch a trained file "
        "names, else efficientnet_lite0)",
    )  # fmt: skip
    p.add_argument(
        "--weights", nargs="+", default=["imagenet"], metavar="WEIGHTS",
        help=weights_help + "; one for all models or one per model",
    )  # fmt: skip
    p.add_argument("--shared-scale", action="store_true", help="one colour range for all kernels")
    p.add_argument("-o", "--output", required=True, help="the .png to write")
    p.set_defaults(run=_show_filters)

    for kind, run, text in (
        ("features", _show_features, "the strongest feature maps at the end of each stage"),
        ("cam", _show_cam, "Grad-CAM of the top classes (or one class) over the image"),
    ):
        p = kinds.add_parser(kind, help=text)
        p.add_argument("image", metavar="IMAGE")
        p.add_argument(
            "--model", default=None,
            help="default: the arch a trained file names, else efficientnet_lite0",
        )  # fmt: skip
        p.add_argument("--weights", default="imagenet", help=weights_help)
        p.add_argument(
            "--no-crop", dest="crop", action="store_false",
            help="the whole image (short side at the input size), not the centre crop",
        )  # fmt: skip
        p.add_argument("-o", "--output", required=True, help="the .png to write")
        p.set_defaults(run=run)
        if kind == "features":
            p.add_argument("--top-k", type=cli.positive_int, default=8, help="channels per stage")
            p.add_argument(
                "--stages", type=cli.integer, nargs="+", default=None, metavar="I",
                help="stage indices (default: all; negative counts from the end)",
            )  # fmt: skip
        else:
            p.add_argument(
                "--top-k", type=cli.positive_int, default=3, help="predicted classes to show"
            )
            p.add_argument(
                "--class", dest="target", default=None, metavar="NAME",
                help="one class, by name or index, instead of the top predictions",
            )  # fmt: skip
            p.add_argument(
                "--stage",
                type=cli.integer,
                default=-1,
                help="stage to explain (default: the last)",
            )


def build_parser() -> argparse.ArgumentParser:
    parser = common.ArgumentParser(
        prog="python -m nets",
        description="The library's models from the command line: list them, summarise and cost "
        "them, classify images, draw what they see, export them. Bad input (an unknown model, "
        "an unreadable image or checkpoint, too small an input) prints one line and exits "
        "with code 2.",
        epilog="Each command has its own --help, e.g. python -m nets list --help.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered models with parameters and default weights")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument(
        "--markdown", action="store_true",
        help="a Markdown table with MACs and the weights' sources (the documentation's model "
        "table: python -m nets list --markdown -o docs/model_table.md)",
    )  # fmt: skip
    p.add_argument("-o", "--output", type=Path, help="write the table to this file")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser(
        "convert", help="convert a checkpoint (file or tag) to our safetensors for an arch"
    )
    p.add_argument("src", help="a checkpoint file, or a registered tag")
    p.add_argument("--arch", required=True, help="the architecture, e.g. resnet50")
    p.add_argument("-o", "--output", required=True, help="where to write OUT.safetensors")
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing -o that is not a checkpoint written by nets (one that is, "
        "a converted file or a trainer's best.safetensors, is replaced without it)",
    )  # fmt: skip
    p.set_defaults(run=_cmd_convert)

    p = sub.add_parser("summary", help="Keras-style table of layers, output shapes, parameters")
    p.add_argument("name")
    p.add_argument(
        "--input-size",
        type=cli.positive_int,
        default=None,
        help="square input side (default: the size the model was designed for)",
    )
    p.add_argument(
        "--depth", type=cli.positive_int, default=None,
        help="module depth to list (default: every layer)",
    )  # fmt: skip
    p.add_argument(
        "--num-classes", type=cli.positive_int, default=None, help="default: the model's own"
    )
    p.add_argument(
        "--keras",
        action="store_true",
        help="the model as keras.applications builds it (NAME may be a Keras name such as "
        "MobileNet or ResNet50), with Keras' total/trainable/non-trainable counts",
    )
    p.set_defaults(run=_cmd_summary)

    p = sub.add_parser("cost", help="multiply-accumulates and parameters per stage or block")
    p.add_argument("name", help=f"a model, or one of: {', '.join(DEMOS)}")
    p.add_argument("--input-size", type=cli.positive_int, default=None)
    p.add_argument("--per-block", action="store_true", help="one row per block")
    p.set_defaults(run=_cmd_cost)

    p = sub.add_parser("classify", help="top predictions for image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--model",
        default=None,
        help="default: the arch a trained file names, else efficientnet_lite0",
    )
    p.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet', a tag, a checkpoint path, or 'none' (random weights: noise)",
    )
    p.add_argument("--top", type=cli.positive_int, default=5, help="classes listed per image")
    p.set_defaults(run=_cmd_classify)

    _add_show(sub)

    p = sub.add_parser(
        "export", help="write ONNX or a torch.export program (.pt2), checked against eager"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--weights", default="imagenet",
        help="'imagenet' (default), a tag, a checkpoint path, or 'none' (random weights)",
    )  # fmt: skip
    p.add_argument(
        "--format", default=None, metavar="onnx|pt2",
        help="default: from the output's suffix (.onnx or .pt2)",
    )  # fmt: skip
    p.add_argument(
        "--fast", action="store_true",
        help="export the inference fast path's network (BatchNorm folded, channels_last)",
    )  # fmt: skip
    p.add_argument(
        "--dynamic-batch", action="store_true", help="a free batch dimension (default: 1)"
    )
    p.add_argument(
        "--input-size", type=cli.positive_int, default=None, help="default: the model's own"
    )
    p.add_argument(
        "--half", action="store_true",
        help="float16 weights and arithmetic, float32 input and output",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.set_defaults(run=_cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (NetsError, wts.WeightsError, OSError) as exc:
        print(f"error: {common.one_line(exc, 1000)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
