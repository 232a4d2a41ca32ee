#!/usr/bin/env bash
# make gpu-train-check: the trainer's loop against its bare step on a GPU machine (issue 12's
# figure): fine-tuning ResNet-50 at 224 (the trainer's defaults there: bf16 autocast,
# channels_last, uint8 batches normalised on the GPU) on a folder of ImageNet-sized JPEGs
# (500x375, cut from the sample photos), twice: with the trainer's defaults, under which the
# 128 GiB machine's image cache (a quarter of the RAM) holds the whole folder, so the loop
# augments from memory; and with --cache-memory 0, decoding every JPEG from disk, as a folder
# too large for the cache is read. First the trainer's CUDA test. From source, like
# gpu-check (../shared/GPU.md); one folder of results; the summary at the end shows the two
# tables, every step's seconds and, for each failed step, the end of its log.
#
# Time. Each limit below is LIMIT s + GRACE s (SIGINT at the limit, SIGKILL after the
# grace). None of these steps has run on a GPU: the limits are a share of gpu-all's 470 s,
# and the summary's seconds per step, from the first run, are what to resize them from.
#   device      15 + 5   torch, the GPU and the machine (OUT/device.txt)
#   cuda-test   30 + 15  tests/train/test_train_fit.py -k cuda: LeNet-5 on the digits, 4 epochs
#   photos      20 + 5   the JPEG folder (one process a core) and the weights file
#   defaults    40 + 5   train-loop, the trainer's defaults: the folder decoded into memory
#                        first, then augmented from there
#   from-disk   30 + 5   train-loop --cache-memory 0: every image decoded in the loop
# Worst case: 170 s, the sum of the limits and grace periods (arithmetic on the timeouts,
# not a measurement); with gpu_check.sh's 300 s, 470 s for make gpu-all. STEPS is 20 (it
# was 40) for that. EXTRA=1 adds two runs, 45 s + 5 s each: the batch normalised in the
# loader workers (--no-normalize-on-device) and, from disk, a loader worker on every core
# but one. A dry run on the CPU gets three times each limit (LIMIT_SCALE, gpu_preamble.sh).
#
#   make gpu-train-check
#   make gpu-train-check DEVICE=cpu MODEL=lenet5 BATCH=8 PER_CLASS=16 STEPS=3 PY=.venv/bin/python
#   make gpu-train-check PLAN=1                     # the steps, limits and commands; runs nothing
#   make gpu-train-check PACK=1                     # also OUT.tar.gz (see gpu_preamble.sh)
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-resnet50}
BATCH=${BATCH:-256}
STEPS=${STEPS:-20}
# Enough images for STEPS batches of training (80% of the folder) and the warm-up's, so
# the timed loop is one epoch's steady pace, not its start.
PER_CLASS=${PER_CLASS:-$(((STEPS + 8) * BATCH * 5 / 4 / 3 + 1))}
PY=${PY:-python3}
EXTRA=${EXTRA:-}
OUT=${OUT:-benchmarks/results/${DEVICE}-train-check-$(date +%F)}
DATA=${DATA:-${TMPDIR:-/tmp}/train-check-photos-$PER_CLASS}
# Fine-tuning starts from a weights file: the machine has no network, and the step's speed
# does not depend on the values, so the family's random initialisation.
WEIGHTS="$DATA-$MODEL.safetensors"
PYTEST=("$PY" -m pytest -v -rA -s --durations=0 -p no:cacheprovider)
# shellcheck source=benchmarks/gpu_preamble.sh
source benchmarks/gpu_preamble.sh

begin gpu-train-check

# 1. The trainer's CUDA test (it skips without a GPU), with the figure it prints.
step cuda-test 30 15 cuda-test.txt "${PYTEST[@]}" -k cuda tests/train/test_train_fit.py

# 2. The folder: PER_CLASS JPEGs in each of three classes, written by one process a core
#    into a scratch folder that becomes DATA only when complete; then the weights file.
#    Without them the runs cannot start: the summary now.
step photos 20 5 photos.txt "$PY" - "$DATA" "$PER_CLASS" "$MODEL" "$WEIGHTS" <<'EOF' || finish
import os, shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from safetensors.torch import save_file

import nets
from train.demo import write_photo_folder

root, per_class, model, weights = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
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
if not os.path.exists(weights):
    save_file(nets.create_model(model).state_dict(), weights + ".partial")
    os.replace(weights + ".partial", weights)
print(f"{weights}: {model}'s random initialisation")
EOF

# 3. The loop against the bare step.
run() {  # name, limit, extra options
    local name=$1 limit=$2
    shift 2
    step "$name" "$limit" 5 "$name.txt" "$PY" -m benchmarks train-loop --model "$MODEL" \
        --data "$DATA" --device "$DEVICE" --weights "$WEIGHTS" --batch-size "$BATCH" \
        --steps "$STEPS" --warmup 3 "$@" --out "$OUT/$name"
}
run defaults 40
run from-disk 30 --cache-memory 0
tables=("$OUT/defaults/train-loop.md" "$OUT/from-disk/train-loop.md")
if on "$EXTRA"; then
    run normalize-in-loader 45 --no-normalize-on-device
    run workers-all-cores 45 --cache-memory 0 --num-workers $(($(nproc) - 1))
    tables+=("$OUT/normalize-in-loader/train-loop.md" "$OUT/workers-all-cores/train-loop.md")
fi

finish "${tables[@]}"
