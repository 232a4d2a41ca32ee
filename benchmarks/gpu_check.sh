#!/usr/bin/env bash
# make gpu-check: a short CUDA benchmark of ResNet-50, then the fast path's and the
# benchmark's CUDA tests, on a machine with one GPU and no network, the project run from
# source (../shared/GPU.md). Everything goes to one folder (OUT); each step has its own time
# limit, so one hang cannot eat the rest; the summary at the end shows the benchmark table,
# every step's seconds and, for each failed step, the end of its log.
#
# Time. Each limit below is LIMIT s + GRACE s (SIGINT at the limit, SIGKILL after the
# grace). The one figure measured on a GPU they rest on: torch.compile of ResNet-50 takes
# ~15 s on an H200 (GPU.md). Nothing else here has run on a GPU: the summary's seconds per
# step, from the first run, are what to resize them from.
#   device      15 + 5   torch, the GPU and the machine (OUT/device.txt)
#   benchmark  110 + 10  ResNet-50 at batch 256 in the modes fast, amp, eager: the headline
#                        first, so that a cut run loses eager. fast compiles ours at batch 1 and
#                        256 and torchvision's compiled twin at both, four compiles: ~60 s; the
#                        network's --timeout 100 leaves it 40 s for the rest, and the step 10 s
#                        of start-up
#   cuda-tests  60 + 15  tests/nets/test_inference.py -k cuda: three compiles (ResNet-18 at two
#                        shapes, ResNet-50 in float16) and CUDA graph captures
#   cuda-smoke  70 + 15  tests/benchmarks/test_benchmarks.py::test_cuda_smoke on its own: ResNet-18 at
#                        32 px in all seven modes, about fourteen (small) compiles; last, as the
#                        likeliest to run out of time
# Worst case: 300 s, the sum of the limits and grace periods (arithmetic on the timeouts,
# not a measurement); with gpu_train_check.sh's 170 s, 470 s for make gpu-all, which fits
# one device call of 8 minutes (Python's start-up is inside each limit). A dry run on the
# CPU gets three times each limit (LIMIT_SCALE, gpu_preamble.sh).
#
#   make gpu-check                                 # CUDA, batch 256, results/cuda-check-<date>
#   make gpu-check DEVICE=cpu BATCH=2 SIZE=64 PY=.venv/bin/python   # a dry run here
#   make gpu-check PLAN=1                          # the steps, limits and commands; runs nothing
#   make gpu-check PACK=1                          # also OUT.tar.gz (see gpu_preamble.sh)
#   NETS="resnet50 mobilenet_v2" MODES="fast amp eager compile" make gpu-check  # more, longer
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-256}
SIZE=${SIZE:-}
PY=${PY:-python3}
# What the targets are stated in, the headline first: fast (float16, compiled and replayed
# from a CUDA graph, beside torchvision eager and torchvision compiled), then amp, then eager.
# The benchmark measures the modes in this order, and a network past its --timeout loses
# its last ones. The dry run runs the same list (fast is float32 on the CPU).
MODES=${MODES:-fast amp eager}
NETS=${NETS:-resnet50}
NETWORK_S=${NETWORK_S:-100}  # each network's --timeout
read -ra nets <<<"$NETS"
OUT=${OUT:-benchmarks/results/${DEVICE}-check-$(date +%F)}
# Every recompilation with its reason, in the logs: dynamo quietly runs a model eagerly
# past its recompile_limit (GPU.md).
export TORCH_LOGS=${TORCH_LOGS-recompiles}
# In the summary: a network past its --timeout, or out of memory, loses its last modes
# without failing the step; and what dynamo said about recompiling.
NOTES='; skipped |Recompiling function|hit config'
PYTEST=("$PY" -m pytest -v -rA -s --durations=0 -p no:cacheprovider)
# shellcheck source=benchmarks/gpu_preamble.sh
source benchmarks/gpu_preamble.sh

begin gpu-check

# 1. The benchmark; its results are rewritten after every mode, so a stopped run keeps
#    what it measured, and the summary shows table.md as it stands.
# shellcheck disable=SC2086  # MODES is a list of words
step benchmark $((NETWORK_S * ${#nets[@]} + 10)) 10 benchmark.txt \
    "$PY" -m benchmarks "${nets[@]}" --modes $MODES --device "$DEVICE" --batch-size "$BATCH" \
    ${SIZE:+--input-size "$SIZE"} --repeats 5 --timeout $((NETWORK_S * LIMIT_SCALE)) \
    --no-charts --out "$OUT"

# 2. The CUDA tests (they skip without a GPU), with the figures they print; the smoke test
#    apart, as it holds most of the compiles.
step cuda-tests 60 15 cuda-tests.txt "${PYTEST[@]}" -k cuda \
    --deselect tests/benchmarks/test_benchmarks.py::test_cuda_smoke tests/nets/test_inference.py tests/benchmarks/test_benchmarks.py
step cuda-smoke 70 15 cuda-smoke.txt "${PYTEST[@]}" tests/benchmarks/test_benchmarks.py::test_cuda_smoke

finish "$OUT/table.md"
