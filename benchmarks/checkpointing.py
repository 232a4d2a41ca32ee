"""``python -m benchmarks checkpointing``: what gradient checkpointing
(``model.set_grad_checkpointing()``) saves and what it costs, on one training step.

Memory, from PyTorch's own tracker (``torch.distributed._tools.mem_tracker.MemTracker``,
which follows every storage on any device): the activations alive when the forward pass ends
(what backward will read; with checkpointing only each stage's input and output) and the
step's peak with weights and gradients; on CUDA also the allocator's peak during the step
less what was allocated before it. Time: plain and checkpointed steps interleaved, the
median of each and their ratio (checkpointing runs each stage's forward twice).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

import common
import nets
from common.cli import positive_int


def _memory(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> tuple[int, int]:
    """Bytes of activations alive when the forward pass ends (what the backward pass will
    read) and the step's peak, weights and gradients included: PyTorch's own tracker
    (``MemTracker``, which follows every storage's allocation and release on any device)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, x)
    with tracker:
        loss = model(x).float().logsumexp(1).mean()
        kept = tracker.get_tracker_snapshot()[device]
        loss.backward()
    peak = tracker.get_tracker_snapshot("peak")[device]
    model.zero_grad(set_to_none=True)
    act = next(v for k, v in kept.items() if str(k).endswith("ACT"))
    return act, peak["Total"]


def _step_seconds(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    model(x).float().logsumexp(1).mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def _cuda_peak(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    model(x).float().logsumexp(1).mean().backward()
    torch.cuda.synchronize(device)
    model.zero_grad(set_to_none=True)
    return torch.cuda.max_memory_allocated(device) - before


def measure(name: str, batch: int, size: int, device: str, repeats: int) -> dict[str, object]:
    dev = torch.device(device)
    torch.manual_seed(0)
    model = nets.create_model(name).to(dev).train()
    x = torch.randn(batch, model.in_chans, size, size, device=dev)
    row: dict[str, object] = {"model": name, "batch": batch, "input_size": size}
    times: dict[bool, list[float]] = {False: [], True: []}
    for on in (False, True):
        model.set_grad_checkpointing(on)
        kind = "ckpt" if on else "plain"
        act, peak = _memory(model, x, dev)
        row[f"act_mb_{kind}"], row[f"peak_mb_{kind}"] = act / 2**20, peak / 2**20
        peak = _cuda_peak(model, x, dev)
        if peak is not None:
            row[f"cuda_peak_mb_{kind}"] = peak / 2**20
    for _ in range(repeats):  # interleaved: a slow moment of the machine hits both alike
        for on in (False, True):
            model.set_grad_checkpointing(on)
            times[on].append(_step_seconds(model, x, dev))
    row["step_s_plain"] = statistics.median(times[False])
    row["step_s_ckpt"] = statistics.median(times[True])
    row["time_ratio"] = row["step_s_ckpt"] / row["step_s_plain"]
    row["saved_share"] = 1 - row["act_mb_ckpt"] / row["act_mb_plain"]
    return row


def table(rows: list[dict[str, object]]) -> str:
    cuda = any("cuda_peak_mb_plain" in r for r in rows)
    head = (
        "| model | batch x size | activations kept for backward, MiB (plain -> checkpointed) "
        "| saved | step peak, MiB |"
    )
    head += " CUDA peak, MiB |" if cuda else ""
    head += " step, s (plain -> checkpointed) | time x |"
    lines = [head, "|---" * head.count(" |") + "|"]
    for r in rows:
        line = (
            f"| {r['model']} | {r['batch']} x {r['input_size']} | {r['act_mb_plain']:.0f} -> "
            f"{r['act_mb_ckpt']:.0f} | {100 * r['saved_share']:.0f}% | {r['peak_mb_plain']:.0f} "
            f"-> {r['peak_mb_ckpt']:.0f} |"
        )
        if cuda:
            line += f" {r['cuda_peak_mb_plain']:.0f} -> {r['cuda_peak_mb_ckpt']:.0f} |"
        line += f" {r['step_s_plain']:.2f} -> {r['step_s_ckpt']:.2f} | {r['time_ratio']:.2f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = common.ArgumentParser(
        prog="python -m benchmarks checkpointing",
        description="Activation memory kept for backward and step time, with and without "
        "gradient checkpointing (model.set_grad_checkpointing), on one training step.",
    )
    p.add_argument("models", nargs="*", default=["resnet50", "densenet121"])
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--input-size", type=positive_int, default=224)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed steps of each kind")
    p.add_argument("--out", type=Path, help="folder for results.json and table.md")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    try:
        names = [nets.get_spec(n).name for n in args.models]
        small = [n for n in names if args.input_size < nets.get_spec(n).min_input_size]
        if small:
            need = nets.get_spec(small[0]).min_input_size
            raise nets.InputSizeError(f"{small[0]} needs --input-size {need} or more")
        if args.out is not None:
            common.check_writable(args.out, "--out")
        rows = []
        for name in names:
            rows.append(measure(name, args.batch_size, args.input_size, args.device, args.repeats))
            print(f"{name}: done", file=sys.stderr, flush=True)
    except (nets.NetsError, common.WriteError) as exc:
        print(f"error: {common.one_line(exc)}", file=sys.stderr)
        return 2
    text = table(rows)
    print(text, end="")
    if args.out is not None:
        meta = {
            "torch": torch.__version__,
            "device": args.device,
            "threads": torch.get_num_threads(),
        }
        common.atomic_write_text(
            args.out / "results.json", json.dumps({**meta, "rows": rows}, indent=1)
        )
        common.atomic_write_text(args.out / "table.md", text)
    return 0
