"""Command line: ``python -m train fit | eval | predict | demo``.

Problems with the data, the options or a checkpoint print one line, ``error: ...``, and
exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import common
import weights as wts
from common import cli
from nets.errors import NetsError

from .config import add_config_arguments, config_from_args
from .errors import TrainError


def _cmd_fit(args: argparse.Namespace) -> int:
    from .engine import fit

    fit(config_from_args(args))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .predict import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint, args.data, batch_size=args.batch_size, split=args.split
    )
    if "warning" in metrics:  # on stderr too: the figures on stdout may go to a file
        print(f"warning: {metrics['warning']}", file=sys.stderr)
    print(metrics["report"])
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict

    rows = predict(args.checkpoint, args.images, output=args.output, top=args.top, masks=args.masks)
    for row in rows:
        if "mask" in row:  # a segmentation checkpoint
            print(f"{row['path']}: {row['mask'] or 'unreadable'} {row['classes']}")
        else:
            print(f"{row['path']}: {row['prediction'] or 'unreadable'} {row['confidence']}")
    print(f"wrote {args.output}" + (f" and the masks in {args.masks}/" if rows and
                                     "mask" in rows[0] else ""))  # fmt: skip
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, progress=args.progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = common.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser(
        "fit",
        help="train: linear-probe, feature-extract, fine-tune, scratch or auto",
        description="Train a registered network on DATA. Under torchrun it trains with "
        "DistributedDataParallel.",
    )
    add_config_arguments(p)
    p.set_defaults(run=_cmd_fit)

    p = sub.add_parser("eval", help="metrics of a trained model on DATA (all of it, or its "
                       "test/ or validation part)", formatter_class=fmt)  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or best.safetensors")
    p.add_argument(
        "--data", default="digits",
        help="an image folder (scored whole, or its test/, else val/ part), a CSV (scored "
        "whole), or digits (the run's validation split)",
    )  # fmt: skip
    p.add_argument(
        "--split", default="auto", choices=("auto", "run-val"),
        help="run-val: score only the validation split the training run held out of DATA "
        "(same --val-split and seed), for the folder it was trained on",
    )  # fmt: skip
    p.add_argument("--batch-size", type=cli.integer, default=64)
    p.set_defaults(run=_cmd_eval)

    p = sub.add_parser("predict", help="classify images (writes a CSV) or segment them (mask "
                       "PNGs and a CSV) with a trained model",
                       formatter_class=fmt)  # fmt: skip
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or best.safetensors")
    p.add_argument("--output", default="predictions.csv", help="CSV to write")
    p.add_argument("--top", type=cli.integer, default=5, help="classes listed per image")
    p.add_argument(
        "--masks", default="predicted_masks",
        help="segmentation checkpoints: folder for the predicted masks (palette PNGs, one per "
        "image, at its size)",
    )  # fmt: skip
    p.set_defaults(run=_cmd_predict)

    p = sub.add_parser("demo", help="LeNet-5 from scratch and EfficientNet-Lite0 (linear probe) "
                       "on the bundled digits, then a table", formatter_class=fmt)  # fmt: skip
    p.add_argument("--out", default="runs/demo", help="folder for the two runs")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (TrainError, NetsError, wts.WeightsError, common.WriteError) as exc:
        print(f"error: {common.one_line(exc, 1000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; --resume continues from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
