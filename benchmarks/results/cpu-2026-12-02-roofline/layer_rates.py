"""Where a network's convolution time goes: each conv of the fast path's folded channels_last
model timed alone on its own input (best of 3 after 2 warm-up calls), summed by kind.

python benchmarks/results/cpu-2026-12-02-roofline/layer_rates.py mobilenet_v2 resnet50
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import nets  # noqa: E402
from benchmarks.roofline import peak_layer  # noqa: E402

torch.set_grad_enabled(False)


def best_seconds(call) -> float:
    for _ in range(2):
        call()
    out = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        call()
        out = min(out, time.perf_counter() - t)
    return out


def layer_rates(name: str, batch: int = 8) -> dict:
    model = nets.create_model(name).eval()
    x = torch.randn(batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    fast = nets.optimize_for_inference(model, x, backend="eager").model
    inputs = {}

    def keep(m, i, o) -> None:  # a hook that returned a value would replace the output
        inputs[m] = (i[0], o.numel())

    hooks = [
        m.register_forward_hook(keep) for m in fast.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    fast(x)
    for h in hooks:
        h.remove()
    kinds = {"depthwise": [0.0, 0.0], "dense": [0.0, 0.0]}  # seconds, MACs
    for conv, (inp, outs) in inputs.items():
        kind = "depthwise" if conv.groups > 1 and conv.groups == conv.in_channels else "dense"
        s = best_seconds(lambda c=conv, i=inp: c._conv_forward(i, c.weight, c.bias))
        kinds[kind][0] += s
        kinds[kind][1] += outs * conv.weight[0].numel()
    return {k: (s * 1000, macs / s / 1e9 if s else 0.0) for k, (s, macs) in kinds.items()}


if __name__ == "__main__":
    peak = peak_layer(torch.device("cpu"))
    print(f"conv peak: {peak.gmacs_s:.1f} GMAC/s ({peak.shape})")
    for name in sys.argv[1:]:
        for kind, (ms, rate) in layer_rates(name).items():
            if ms:
                print(f"{name} {kind}: {ms:.1f} ms per batch of 8, {rate:.1f} GMAC/s")
