"""Peak memory of inference and of one training step.

On CUDA: the caching allocator's peak (``torch.cuda.max_memory_allocated``) during the
measured call, less what was allocated when it started: the models, their frozen constants,
gradients and optimiser state already on the GPU (every model of the mode, ours and the
references) are not the call's. So the inference figure is activations and workspace, and
the training figure what one step adds to the weights, last step's gradients and the
momentum it starts from. On the CPU the only honest figure is the process's peak resident
set, and ``ru_maxrss`` only ever grows: each network is therefore measured in a fresh Python
subprocess, and the figure is the peak minus the peak after the imports (weights,
activations, workspace and allocator slack of that one network; 0 where the network
needs less than importing torch did).
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

import nets

from .models import twin_kwargs


def _rss_mb() -> float:
    """Peak resident set of this process, MiB. VmHWM, not ru_maxrss: a child started by a
    large process inherits the parent's ru_maxrss across exec, which hides its own peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> None:
    """One SGD step on ``x``; the forward pass and the loss run under ``autocast()``, the
    backward pass outside it (autocast's documentation: backward ops run in the dtype
    autocast chose for the matching forward ops anyway)."""
    with autocast():
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(
            logits, torch.zeros(len(x), dtype=torch.long, device=x.device)
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def probe(name: str, impl: str, batch: int, size: int) -> dict[str, float]:
    """Run in a fresh process: CPU peak resident memory increase, inference then training."""
    base = _rss_mb()  # the peak so far (imports): only what this network adds counts
    if impl == "ours":
        model = nets.create_model(name)
    else:
        with torch.device("meta"):  # only to read which torchvision options match ours
            shape = nets.create_model(name)
        model = torchvision.models.get_model(name, **twin_kwargs(shape))
    model.eval()
    x = torch.randn(batch, getattr(model, "in_chans", 3), size, size)
    with torch.no_grad():
        model(x)
    infer = _rss_mb() - base
    model.train()
    train_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), x)
    return {"infer_mb": infer, "train_mb": _rss_mb() - base}


def cpu_peak(name: str, impl: str, batch: int, size: int) -> dict[str, float] | None:
    cmd = [sys.executable, "-m", "benchmarks.memory", name, impl, str(batch), str(size)]
    try:
        repo = Path(__file__).resolve().parents[1]  # benchmarks runs from the repository
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900, cwd=repo)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def tracks(device: torch.device) -> bool:
    """Whether ``cuda_peak`` can measure on ``device`` (the CPU's figures come from
    ``cpu_peak``, a process of their own)."""
    return device.type == "cuda"


def cuda_peak(fn: Callable[[], object], device: torch.device) -> float:
    """MiB that ``fn`` added at its peak to what was allocated on ``device`` before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    name, impl, batch, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(probe(name, impl, batch, size)))
