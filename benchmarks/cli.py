"""``python -m benchmarks``: measure networks, print the Markdown table, write JSON, CSV and
the charts."""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import shlex
import sys
from pathlib import Path

import torch

import common
import nets
import weights
from common import cli
from nets.inference import BACKENDS
from train.errors import OUT_OF_MEMORY

from . import charts, report
from .runner import (
    DEFAULT_MODES,
    MODES,
    NetworkTimeout,
    Settings,
    deadline,
    fast_backend,
    iter_measure,
)


def select(patterns: list[str]) -> list[str]:
    """Registered names matching any of ``patterns`` (names or shell patterns), in order.

    A name that is not registered, or a pattern that matches none, raises
    ``nets.UnknownModelError`` (one line): before any work, not after a run that measured
    nothing and left an empty table behind."""
    names = nets.list_models()
    if not patterns:
        return names
    out: list[str] = []
    for pat in patterns:
        if any(c in pat for c in "*?["):
            hits = [n for n in names if fnmatch.fnmatch(n, pat)]
            if not hits:
                raise nets.UnknownModelError(
                    f"no registered model matches {pat!r} (python -m nets list shows them)"
                )
        else:
            hits = [nets.get_spec(pat).name]  # raises with a "did you mean" for a typo
        out += [n for n in hits if n not in out]
    return out


def check_input_size(size: int | None, models: list[str]) -> None:
    """Refuse (``nets.InputSizeError``, one line) an ``--input-size`` below what a model
    takes: measured at its minimum instead, the figures would be for another size than the
    one asked."""
    if size is None:
        return
    small = [(n, nets.get_spec(n).min_input_size) for n in models]
    small = [(n, m) for n, m in small if size < m]
    if not small:
        return
    if len(small) == 1:
        whose = f"{small[0][0]}'s smallest input, {small[0][1]}x{small[0][1]}"
    else:
        named = ", ".join(f"{n} {m}x{m}" for n, m in small[:3])
        more = f" and {len(small) - 3} more" if len(small) > 3 else ""
        whose = f"the smallest input of {len(small)} of the models ({named}{more})"
    raise nets.InputSizeError(
        f"--input-size {size} is below {whose}: pass at least {max(m for _, m in small)}, "
        "or leave it out for each model's own"
    )


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _out_of_memory(settings: Settings) -> str:
    smaller = max(1, settings.batch_size // 2)
    return (
        f"out of GPU memory at --batch-size {settings.batch_size}: its remaining modes are "
        f"skipped; try --batch-size {smaller}"
    )


def parser() -> argparse.ArgumentParser:
    p = common.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure networks side by side with torchvision's (latency, throughput, "
        "training step, memory, compile time, the share of the device's convolution peak) in "
        "the chosen modes; print the Markdown table and write JSON, CSV and the charts.",
        epilog="Other commands: 'python -m benchmarks train-loop --help' (the trainer's loop "
        "against its bare step on an image folder), 'python -m benchmarks chart --help' "
        "(the accuracy-against-cost chart of every weights tag, nothing timed) and 'python -m "
        "benchmarks checkpointing --help' (gradient checkpointing's memory and time).",
    )
    p.add_argument(
        "models", nargs="*",
        help="names or shell patterns (default: every registered model, a run of hours on a "
        "CPU; the run says so when it starts)",
    )  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--batch-size", type=cli.positive_int, default=8, help="batch of the throughput figures"
    )
    p.add_argument(
        "--input-size", type=cli.positive_int,
        help="square input side, at least each model's minimum (default: each model's)",
    )  # fmt: skip
    p.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        help="default: eager channels_last fast on the CPU, every mode on CUDA",
    )
    p.add_argument(
        "--repeats", type=cli.positive_int, default=7, help="timed samples per network and mode"
    )
    p.add_argument("--threads", type=cli.positive_int, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory figures")
    p.add_argument(
        "--timeout", type=cli.positive_number, default=None, metavar="SECONDS",
        help="per network: past it, the network's remaining modes are skipped with a note "
        "and the run goes on (default: no limit)",
    )  # fmt: skip
    p.add_argument(
        "--fast-backend", choices=BACKENDS,
        help="optimize_for_inference's backend in the fast modes "
        "(default: compile on CUDA, auto on the CPU)",
    )  # fmt: skip
    p.add_argument("--no-charts", action="store_true")
    p.add_argument(
        "--out", type=Path, help="output folder (default: benchmarks/results/<device>-<date>)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train-loop"]:  # the trainer's loop against its bare step
        from . import train_loop

        return train_loop.main(argv[1:])
    if argv[:1] == ["chart"]:  # the accuracy-vs-cost chart of the registry, nothing timed
        return _chart(argv[1:])
    if argv[:1] == ["checkpointing"]:  # gradient checkpointing's memory and time
        from . import checkpointing

        return checkpointing.main(argv[1:])
    try:
        return _run(argv)
    except (
        nets.NetsError,  # an unknown model, a pattern that matches none, too small an input
        weights.WeightsError,
        common.WriteError,  # an unwritable --out, found before or during the run
    ) as exc:
        print(f"error: {common.one_line(exc)}", file=sys.stderr)
        return 2


def _chart(argv: list[str]) -> int:
    chart = common.ArgumentParser(
        prog="python -m benchmarks chart",
        description="Draw top-1 against GMACs for every registered weights tag (bubble area: "
        "parameters). Counts only: no model is run or timed.",
    )
    chart.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    args = chart.parse_args(argv)
    if not args.output.parent.is_dir():
        chart.error(f"-o: the folder {args.output.parent} does not exist")
    if args.output.suffix.lower() != ".png":
        chart.error(f"-o: the chart is a PNG; expected a .png file name, got {args.output.name}")
    try:
        common.check_writable(args.output.parent, "-o")
        points = charts.tag_points()
        charts.accuracy_vs_cost(points, args.output)
    except (weights.WeightsError, common.WriteError) as exc:
        print(f"error: {common.one_line(exc)}", file=sys.stderr)
        return 2
    print(f"{len(points)} weights tags drawn to {args.output}")
    return 0


def _run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser().error("--device cuda: no CUDA device is available")
    models = select(args.models)
    check_input_size(args.input_size, models)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.models:
        _log(f"no models named: measuring all {len(models)} registered models (name some, or "
             "a pattern such as 'resnet*', for a shorter run)")  # fmt: skip
    settings = Settings(
        device=torch.device(args.device),
        batch_size=args.batch_size,
        input_size=args.input_size,
        repeats=args.repeats,
        modes=tuple(args.modes or DEFAULT_MODES[args.device]),
        memory=not args.no_memory,
        timeout=args.timeout,
        fast_backend=args.fast_backend,
    )
    date = datetime.date.today().isoformat()
    out = args.out or Path(__file__).parent / "results" / f"{args.device}-{date}"
    common.check_writable(out, "--out")  # now, not after the first network's minutes
    meta = {
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": date,
        "machine": report.machine(),
        "settings": {
            "batch_size": settings.batch_size,
            "input_size": settings.input_size,
            "repeats": settings.repeats,
            "modes": list(settings.modes),
            "timeout_s": settings.timeout,
            "fast_backend": fast_backend(settings.device, settings.fast_backend),
        },  # fmt: skip
    }
    rows: list[dict] = []
    for name in models:
        done: list[str] = []
        try:
            with deadline(settings.timeout):
                for row in iter_measure(name, settings, log=_log):
                    rows.append(row)
                    done.append(row["mode"])
                    # Written after every row: a run stopped later keeps what it measured.
                    report.write(rows, out, meta)
        except (NetworkTimeout, *OUT_OF_MEMORY) as exc:
            why = str(exc) if isinstance(exc, NetworkTimeout) else _out_of_memory(settings)
            left = [m for m in settings.modes if m not in done]
            _log(f"{name}: {why}; skipped {', '.join(left)}")
            rows += [{"model": name, "mode": m, "skipped": why} for m in left]
            report.write(rows, out, meta)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what the failed network held, for the next one
    paths = report.write(rows, out, meta)
    if not args.no_charts:
        meta["charts"] = {
            "accuracy_vs_cost": str(
                charts.accuracy_vs_cost(charts.tag_points(), out / "accuracy_vs_cost.png")
            ),
            "throughput": str(charts.throughput_bars(rows, out / "throughput.png")),
        }
        paths = report.write(rows, out, meta)
    print(report.markdown(rows))
    print(f"\nwritten to {out}: " + ", ".join(p.name for p in paths.values()), file=sys.stderr)
    return 0
