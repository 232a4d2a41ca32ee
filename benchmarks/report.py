"""The report: a Markdown table, and the raw figures as JSON and CSV."""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path

import torch
import torchvision

from common import atomic_write
from nets.inference import cpu_native_kernels

COLUMNS = (
    "model", "mode", "dtype", "input_size", "batch_size", "params", "macs",
    "latency_ms", "tv_latency_ms", "throughput", "tv_throughput", "ratio_throughput",
    "eager_throughput", "ratio_eager_throughput", "tvc_throughput", "ratio_tvc_throughput",
    "gmacs_s", "tv_gmacs_s", "peak_gmacs_s", "share_of_peak", "tv_share_of_peak",
    "ceiling_vs_tv", "peak_layer",
    "train_throughput", "tv_train_throughput", "ratio_train_throughput",
    "peak_infer_mb", "tv_peak_infer_mb", "peak_train_mb", "tv_peak_train_mb",
    "compile_s", "tv_compile_s", "tvc_compile_s", "train_compile_s", "tv_train_compile_s",
    "skipped",
)  # fmt: skip


# The CPU features that decide which kernels oneDNN can use: the same "AMD EPYC" measured
# ResNet-50's fast path at 1.18x torchvision on an AVX2 host and 1.36x on an AVX-512 one,
# and its bfloat16 fast path ran 1.83x its float32 one where the CPU has bfloat16
# instructions, while bfloat16 ran 3.9x slower than float32 (Lite0) on the AVX2 host.
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
              "avx_vnni", "amx_tile", "amx_bf16", "amx_fp16", "amx_int8")  # fmt: skip


def machine() -> dict[str, str | int | bool | list[str]]:
    """The device and software the figures were measured with, and the CPU's kernel
    features (``cpu_isa``: the vector kernels PyTorch dispatches to; ``cpu_flags``: the
    instruction sets of ``_ISA_FLAGS`` the CPU reports; whether oneDNN has native bfloat16
    and float16 kernels on it)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
        flags = set(next(ln for ln in lines if ln.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        pass
    info: dict[str, str | int | bool | list[str]] = {
        "cpu": cpu,
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": [f for f in _ISA_FLAGS if f in flags],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }
    for short, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        native = cpu_native_kernels(dtype)
        if native is not None:
            info[f"cpu_native_{short}"] = native
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _ratio(r: dict | None) -> str:
    if not r:
        return ""
    return f"{r['median']:.2f} ({r['p25']:.2f}-{r['p75']:.2f})"


def _num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "" if v is None else fmt.format(v)


def _share(r: dict) -> str:
    """Ours (torchvision's) achieved GMAC/s at batch N as a percentage of the conv peak."""
    if r.get("share_of_peak") is None:
        return ""
    text = f"{100 * r['share_of_peak']:.0f}"
    if r.get("tv_share_of_peak") is not None:
        text += f" ({100 * r['tv_share_of_peak']:.0f})"
    return text


def _mode(r: dict) -> str:
    """The mode, with what ran at batch N where a plan was recorded: ours (the fast path's
    runner, or "compile"/"eager" for torch.compile) and, where a compiled reference fell
    back to eager, that too, so that no eager figure reads as a compiled one."""

    def at_batch(plans: dict) -> list[str]:
        return [v for k, v in plans.items() if k.startswith(f"{r['batch_size']}x")]

    ours = at_batch(r.get("plans", {}))
    notes = [ours[0]] if ours else []
    for prefix, name in (("tv_", "tv"), ("tvc_", "tv compiled")):
        theirs = at_batch(r.get(f"{prefix}plans", {}))
        if theirs and theirs[0] != "compile":
            notes.append(f"{name}: {theirs[0]}")
    return f"{r['mode']} ({'; '.join(notes)})" if notes else r["mode"]


def markdown(rows: list[dict]) -> str:
    """One line per network and mode; ratios are ours/torchvision speed (> 1: ours faster),
    median of the interleaved pairs with the 25th-75th percentile spread. The fast path's
    rows also give its ratio to our own plain eager model, and its mode says what it chose
    to run at batch N (a TorchScript graph or the folded eager model). "% of peak" is the
    achieved GMAC/s at batch N over the device's dense-convolution peak measured in the same
    run (``roofline.peak_layer``), and "ceiling" that peak over torchvision's achieved rate:
    the most any implementation of the same MACs could gain over torchvision there."""
    head = (
        "| model | mode | size | params (M) | GMACs | latency b1 (ms) | tv (ms) | "
        "img/s bN | tv img/s | ratio | vs ours eager | vs tv compiled | % of peak (tv) | "
        "ceiling | train img/s | "
        "tv train | train ratio | "
        "peak MB (infer/train) | compile s (tv) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r.get("skipped"):
            continue
        compiled = _num(r.get("compile_s"))
        twin = r.get("tv_compile_s", r.get("tvc_compile_s"))
        if compiled and twin is not None:
            compiled += f" ({twin:.1f})"
        mem = ""
        if r.get("peak_infer_mb") is not None:
            mem = f"{r['peak_infer_mb']:.0f}/{_num(r.get('peak_train_mb'), '{:.0f}')}"
            if r.get("tv_peak_infer_mb") is not None:
                mem += f" (tv {r['tv_peak_infer_mb']:.0f}/{r['tv_peak_train_mb']:.0f})"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["model"],
                    _mode(r),
                    str(r["input_size"]),
                    f"{r['params'] / 1e6:.2f}",
                    f"{r['macs'] / 1e9:.2f}",
                    _num(r.get("latency_ms")),
                    _num(r.get("tv_latency_ms")),
                    _num(r.get("throughput")),
                    _num(r.get("tv_throughput")),
                    _ratio(r.get("ratio_throughput")),
                    _ratio(r.get("ratio_eager_throughput")),
                    _ratio(r.get("ratio_tvc_throughput")),
                    _share(r),
                    _num(r.get("ceiling_vs_tv"), "{:.2f}"),
                    _num(r.get("train_throughput")),
                    _num(r.get("tv_train_throughput")),
                    _ratio(r.get("ratio_train_throughput")),
                    mem,
                    compiled,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def write(rows: list[dict], out_dir: Path, meta: dict) -> dict[str, Path]:
    """The results files, each written atomically (``atomic_write`` makes the folder and
    turns an unwritable one into ``common.WriteError``, one line)."""
    paths = {k: out_dir / f for k, f in
             (("json", "results.json"), ("csv", "results.csv"), ("md", "table.md"))}  # fmt: skip
    text = json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n"
    atomic_write(paths["json"], lambda tmp: Path(tmp).write_text(text))
    atomic_write(paths["csv"], lambda tmp: _write_csv(rows, Path(tmp)))
    md = markdown(rows) + "\n"
    atomic_write(paths["md"], lambda tmp: Path(tmp).write_text(md))
    return paths


def _write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*COLUMNS, "ratio_p25", "ratio_p75"])
        w.writeheader()
        for r in rows:
            flat = {k: r.get(k) for k in COLUMNS}
            for k in ("ratio_throughput", "ratio_eager_throughput", "ratio_tvc_throughput",
                      "ratio_train_throughput"):  # fmt: skip
                flat[k] = r[k]["median"] if r.get(k) else None
            if r.get("ratio_throughput"):
                flat["ratio_p25"] = r["ratio_throughput"]["p25"]
                flat["ratio_p75"] = r["ratio_throughput"]["p75"]
            w.writerow(flat)
