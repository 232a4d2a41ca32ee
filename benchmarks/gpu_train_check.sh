#!/usr/bin/env bash
# make gpu-train-check: the trainer's loop against its bare step on a GPU machine (issue 12's
# figure): fine-tuning ResNet-50 at 224 (the trainer's defaults there: bf16 autocast,
# channels_last, uint8 batches normalised on the GPU) on a folder of ImageNet-sized JPEGs
# (500x375, cut from the sample photos), then the same with the batch normalised in the
# loader workers and with a worker on every core but one; first the trainer's CUDA test.
# From source, like gpu-check (../shared/GPU.md); one folder of results; each step has its
# own time limit (7.5 minutes in all at most).
#
#   make gpu-train-check
#   make gpu-train-check DEVICE=cpu MODEL=lenet5 BATCH=8 PER_CLASS=16 STEPS=3   # a dry run here
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-resnet50}
BATCH=${BATCH:-256}
STEPS=${STEPS:-40}
# Enough images for STEPS batches of training (80% of the folder) and the warm-up's, so
# the timed loop is one epoch's steady pace, not its start.
PER_CLASS=${PER_CLASS:-$(((STEPS + 8) * BATCH * 5 / 4 / 3 + 1))}
PY=${PY:-python3}
OUT=${OUT:-benchmarks/results/${DEVICE}-train-check-$(date +%F)}
DATA=${DATA:-${TMPDIR:-/tmp}/train-check-photos-$PER_CLASS}
# shellcheck source=benchmarks/gpu_preamble.sh
source benchmarks/gpu_preamble.sh

status=0
# 0. The trainer's CUDA test (it skips without a GPU), with the figure it prints.
timeout 60 "$PY" -m pytest -q -s -p no:cacheprovider -k cuda tests/test_train_fit.py 2>&1 \
    | tee "$OUT/cuda-tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# 1. The folder: PER_CLASS JPEGs in each of three classes, written by one process a core
#    into a scratch folder that becomes DATA only when complete.
timeout 90 "$PY" - "$DATA" "$PER_CLASS" <<'EOF' || exit 1
import os, shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from train.demo import write_photo_folder

root, per_class = Path(sys.argv[1]), int(sys.argv[2])
if not root.is_dir():
    n = max(1, min(per_class, os.cpu_count() or 1))
    scratch = root.with_name(root.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    sizes = [per_class // n + (i < per_class % n) for i in range(n)]
    with ProcessPoolExecutor(n) as pool:  # a seed per part: different crops in each
        list(pool.map(write_photo_folder, [scratch / str(i) for i in range(n)], sizes, range(n)))
    for f in sorted(scratch.glob("[0-9]*/*/*.jpg")):
        (scratch / f.parent.name).mkdir(exist_ok=True)
        f.rename(scratch / f.parent.name / f"{f.parent.parent.name}-{f.name}")
    for i in range(n):
        shutil.rmtree(scratch / str(i))
    scratch.rename(root)
classes = sorted(p.name for p in root.iterdir())
print(f"{root}: {len(list(root.glob('*/*.jpg')))} JPEGs of 500x375, classes {classes}")
EOF

# 2. Fine-tuning starts from a weights file: the machine has no network, and the step's
#    speed does not depend on the values, so the family's random initialisation.
WEIGHTS="$DATA-$MODEL.safetensors"
timeout 60 "$PY" -c "import sys, nets; from safetensors.torch import save_file
save_file(nets.create_model(sys.argv[1]).state_dict(), sys.argv[2])" "$MODEL" "$WEIGHTS" || exit 1

# 3. The loop against the bare step, three ways.
run() {  # name, extra options
    local name=$1
    shift
    timeout 80 "$PY" -m benchmarks train-loop --model "$MODEL" --data "$DATA" --device "$DEVICE" \
        --weights "$WEIGHTS" --batch-size "$BATCH" --steps "$STEPS" --warmup 3 "$@" \
        --out "$OUT/$name" 2>&1 | tee "$OUT/$name.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}
run defaults
run normalize-in-loader --no-normalize-on-device
run workers-all-cores --num-workers $(($(nproc) - 1))

echo "gpu-train-check: results in $OUT (exit $status)"
exit $status
