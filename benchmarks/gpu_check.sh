#!/usr/bin/env bash
# make gpu-check: the CUDA tests and a short benchmark of ResNet-50, MobileNet-v2 and
# EfficientNet-B0, on a machine with one GPU and no network, the project run from source
# (../shared/GPU.md). Everything goes to one folder; each step has its own time limit, so
# one hang cannot eat the rest. At most 5 minutes in all (120 s of tests, 180 s of benchmark).
#
#   make gpu-check                                   # CUDA, batch 256, results/cuda-check-<date>
#   make gpu-check DEVICE=cpu BATCH=2 SIZE=64        # a dry run of the script here
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-256}
SIZE=${SIZE:-}
PY=${PY:-python3}
# What the targets are stated in: fast (float16, compiled and replayed from a CUDA graph,
# beside torchvision eager and torchvision compiled) and amp; compiling takes most of the
# time, so fast-fp32 and compile are left to MODES="..." or the full benchmark.
if [ "$DEVICE" = cuda ]; then MODES=${MODES:-eager amp fast}; fi
MODES=${MODES:-eager fast fast-fp32}
OUT=${OUT:-benchmarks/results/${DEVICE}-check-$(date +%F)}
# shellcheck source=benchmarks/gpu_preamble.sh
source benchmarks/gpu_preamble.sh

status=0
# 1. The CUDA tests (they skip without a GPU), with the figures they print.
timeout 120 "$PY" -m pytest -q -s -p no:cacheprovider -k cuda \
    tests/test_inference.py tests/test_benchmarks.py 2>&1 | tee "$OUT/cuda-tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# 2. Three networks in the modes above; --timeout bounds each network and
#    the results are rewritten after every mode, so a stopped run keeps what it measured.
timeout 180 "$PY" -m benchmarks resnet50 mobilenet_v2 efficientnet_b0 --device "$DEVICE" \
    --batch-size "$BATCH" ${SIZE:+--input-size "$SIZE"} --modes $MODES --repeats 5 --timeout 58 \
    --no-charts --out "$OUT" 2> >(tee "$OUT/benchmark-log.txt" >&2) | tee "$OUT/table-printed.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "gpu-check: results in $OUT (exit $status)"
exit $status
