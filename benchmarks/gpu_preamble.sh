# Sourced by gpu_check.sh and gpu_train_check.sh from the repository root, with DEVICE, PY
# and OUT set: what both share. Sourcing sets the environment and defines functions only:
#
#   begin LABEL                  the results folder and OUT/device.txt (the probe step); exit 2
#                                when DEVICE=cuda finds no GPU
#   step NAME LIMIT GRACE LOG COMMAND...
#                                COMMAND under its own time limit, its output to the terminal
#                                and to OUT/LOG
#   finish TABLE...              the summary (the tables, every step's seconds, each failed step
#                                with the end of its log, what a dry run did not reach), also in
#                                OUT/summary.txt; the archive; the exit status (1: a step failed)
#   run_all                      make gpu-all: both scripts into one folder, one archive
#
#   PLAN=1   print each step's limit, grace and command and the worst case; run nothing.
#   PACK=1   at the end, pack OUT into OUT.tar.gz beside it: a device call brings back at most
#            8 files, and a results folder holds more (on the device, OUT must then name a
#            folder outside the one that comes back, and the archive be copied into it).

# From source: the checkout, and the Lite0 weights package copied beside it (GPU.md).
export PYTHONPATH="$PWD:$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
# Python's output reaches the log as it is printed, so a step stopped at its limit keeps its
# last lines (a pipe is block-buffered otherwise).
export PYTHONUNBUFFERED=1
PLAN=${PLAN:-}
PACK=${PACK:-}
# A dry run on a CPU (2 cores here) is slower than the GPU at every step, even at its tiny
# sizes: its limits are the GPU's times 3, so that it walks every step to its end.
case ${DEVICE:-cuda} in
    cuda*) LIMIT_SCALE=${LIMIT_SCALE:-1} ;;
    *) LIMIT_SCALE=${LIMIT_SCALE:-3} ;;
esac
NOTES=${NOTES:-}  # an extended regex: matching lines of every log go into the summary
LABEL=gpu
WORST=0    # the sum of every step's limit and grace so far: the script's worst case
DONE=()    # "name exit seconds limit grace log" per step, for the summary
FAILED=()  # "name exit log" per step that did not exit 0

on() { [ -n "${1:-}" ] && [ "$1" != 0 ]; }

step() {
    local name=$1 limit=$2 grace=$3 log=$OUT/$4 rc start
    shift 4
    limit=$((limit * LIMIT_SCALE))
    WORST=$((WORST + limit + grace))
    if on "$PLAN"; then
        printf '  %-20s %4d s + %2d s  %s\n' "$name" "$limit" "$grace" "$*"
        return 0
    fi
    echo "== $name: at most $limit s (then SIGINT, SIGKILL $grace s later) -> ${log#"$OUT"/}"
    start=$SECONDS
    # SIGINT rather than timeout's SIGTERM: Python stops with a KeyboardInterrupt that says
    # where it was, and pytest still prints its failures and summary (on SIGTERM it prints
    # nothing but `F`). The KILL is for a hang that Python cannot interrupt (in C, in CUDA).
    timeout -s INT -k "$grace" "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    DONE+=("$name $rc $((SECONDS - start)) $limit $grace $log")
    [ "$rc" -eq 0 ] || FAILED+=("$name $rc $log")
    return "$rc"
}

# The device line of OUT/device.txt; exit code 3 when a CUDA run finds no GPU. /dev/shm is
# where the loader workers hand their batches over: a small one breaks the train check.
PROBE='
import os, shutil, sys
import torch, torchvision
import torch._dynamo.config as dynamo
cuda = torch.cuda.is_available()
gib = lambda n: f"{n / 2**30:.1f} GiB"
ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
shm = gib(shutil.disk_usage("/dev/shm").total) if os.path.isdir("/dev/shm") else "none"
limit = getattr(dynamo, "recompile_limit", getattr(dynamo, "cache_size_limit", "?"))
print("torch", torch.__version__, "| torchvision", torchvision.__version__, "| CUDA",
      torch.version.cuda, "|", torch.cuda.get_device_name() if cuda else "no GPU", "|",
      os.cpu_count(), "cores |", gib(ram), "RAM | /dev/shm", shm, "| recompile_limit", limit)
sys.exit(3 if sys.argv[1].startswith("cuda") and not cuda else 0)
'

begin() {
    LABEL=$1
    if on "$PLAN"; then
        echo "$LABEL plan (DEVICE=$DEVICE, limits x$LIMIT_SCALE; nothing is run): step, limit + grace, command"
    else
        mkdir -p "$OUT"
    fi
    step device 15 5 device.txt "$PY" - "$DEVICE" <<<"$PROBE"
    if [ $? -eq 3 ]; then
        echo "$LABEL: no CUDA device here (DEVICE=cpu runs the script as a dry run)" >&2
        exit 2
    fi
}

why() {  # exit code -> what it means, for the summary
    case $1 in
        124) echo " (timed out: SIGINT at its limit)" ;;
        137) echo " (killed: still running after SIGINT and the grace, or out of memory)" ;;
    esac
}

excerpt() {  # LOG: pytest's failure section when it has one, else the log's end
    local log=$1
    if grep -qE '^=+ (FAILURES|ERRORS) =+$' "$log"; then
        # From that header to the next `====` header (warnings, durations, the short
        # summary), then the short summary's one line per failed test.
        awk '/^=+ (FAILURES|ERRORS) =+$/ {on = 1; print; next} /^=+ .* =+$/ {on = 0} on' \
            "$log" | tail -n 30
        grep -E '^(FAILED|ERROR) ' "$log"
        grep -E ': KeyboardInterrupt$' "$log"
    else
        tail -n 30 "$log"
    fi
    # Stopped at its limit, pytest names the line it was at; -v's last test is the one.
    if grep -qE '^!+ KeyboardInterrupt !+$' "$log"; then
        echo "the test it stopped in: $(grep -E '^[^ ]+\.py::[^ ]+' "$log" | tail -n 1)"
    fi
}

not_reached() {  # what a dry run of LABEL's script leaves untried: all of it runs on CUDA only
    case $DEVICE in cuda*) return 0 ;; esac
    local items=()
    case $LABEL in
        gpu-check) items=(
            "the fast path's CUDA runners: CUDA graph capture and replay ('cudagraph') and torch.compile replayed from a CUDA graph ('compile+cudagraph', the fast mode's backend on CUDA); here the CPU's 'auto' backend ran"
            "the fast mode in float16 (float32 on the CPU) and torchvision's compiled twin beside it (the tvc_ figures: tvc_throughput, tvc_compile_s)"
            "bf16 autocast on the GPU (the amp mode ran the CPU's autocast here; the bf16 mode is CUDA only)"
            "CUDA memory peaks (peak_infer_mb, peak_train_mb from torch.cuda; here measured in CPU processes)"
            "the roofline's peak layer on the GPU in float16 and bfloat16"
            "the CUDA tests: tests/nets/test_inference.py -k cuda and tests/benchmarks/test_benchmarks.py::test_cuda_smoke skip without a GPU (the -k cuda tests that ran here fake CUDA on the CPU)"
            "the limits' fit: ResNet-50's compiles at 224 px and batch 256 (this run's seconds say nothing about them)"
        ) ;;
        gpu-train-check) items=(
            "the trainer's CUDA test: tests/train/test_train_fit.py::test_cuda_training_run skips without a GPU"
            "bf16 autocast in the training step (--amp auto stays float32 on the CPU)"
            "uint8 batches normalised on the GPU after the copy (on by default on CUDA only; here normalised in the loader)"
            "pinned memory and non-blocking copies to the GPU (the loaders pin on CUDA only)"
            "the CUDA default of loader workers, min(8, CPUs - 1)"
            "the limits' fit: ResNet-50 at batch 256 on ~9,000 JPEGs of 500x375 (this run's seconds say nothing about them)"
        ) ;;
    esac
    echo
    echo "not reached in this dry run (CUDA only):"
    printf '  - %s\n' "${items[@]}"
}

summary() {  # TABLE...
    local t entry name rc secs limit grace log
    echo
    echo "==== $LABEL summary: DEVICE=$DEVICE, results in $OUT ===="
    [ ! -s "$OUT/device.txt" ] || tail -n 1 "$OUT/device.txt"
    for t in "$@"; do
        echo
        echo "-- ${t#"$OUT"/}"
        if [ -s "$t" ]; then cat "$t"; else echo "(not written: its step stopped first)"; fi
    done
    if [ -n "$NOTES" ]; then
        echo
        echo "-- from the logs (lines matching '$NOTES')"
        for entry in ${DONE[@]+"${DONE[@]}"}; do
            read -r name rc secs limit grace log <<<"$entry"
            grep -E "$NOTES" "$log" | sed "s/^/  $name: /"
        done | head -n 20 | grep . || echo "  none"
    fi
    echo
    echo "-- steps: seconds taken of the limit (the script's worst case: $WORST s)"
    for entry in ${DONE[@]+"${DONE[@]}"}; do
        read -r name rc secs limit grace log <<<"$entry"
        printf '  %-20s %4d s of %4d s  exit %s%s\n' "$name" "$secs" "$limit" "$rc" "$(why "$rc")"
    done
    for entry in ${FAILED[@]+"${FAILED[@]}"}; do
        read -r name rc log <<<"$entry"
        echo
        echo "-- FAILED: $name, exit $rc$(why "$rc"); the end of ${log#"$OUT"/}:"
        excerpt "$log"
    done
    not_reached
}

pack() {  # DIR -> DIR.tar.gz beside it
    local dir=${1%/}
    tar -czf "$dir.tar.gz" -C "$(dirname "$dir")" "$(basename "$dir")" &&
        echo "packed: $dir.tar.gz ($(du -h "$dir.tar.gz" | cut -f1)); tar -xzf unpacks it"
}

finish() {  # TABLE...: the files whose contents the summary shows first
    if on "$PLAN"; then
        echo "worst case: $WORST s (arithmetic: the sum of the limits and grace periods above)"
        exit 0
    fi
    summary "$@" | tee "$OUT/summary.txt"
    echo "$LABEL: ${#FAILED[@]} of ${#DONE[@]} steps failed; results in $OUT"
    if on "$PACK"; then pack "$OUT"; fi
    [ ${#FAILED[@]} -eq 0 ] || exit 1
    exit 0
}

run_all() {  # make gpu-all: gpu-check, then gpu-train-check, into OUT/check and OUT/train
    local out=${OUT:-benchmarks/results/${DEVICE:-cuda}-all-$(date +%F)} check train plans
    out=${out%/}
    if on "$PLAN"; then
        plans=$(OUT=$out/check bash benchmarks/gpu_check.sh; OUT=$out/train bash benchmarks/gpu_train_check.sh)
        echo "$plans"
        echo "both: $(($(sed -n 's/^worst case: \([0-9]*\) s.*/\1/p' <<<"$plans" | paste -sd+))) s"
        return 0
    fi
    OUT=$out/check PACK= bash benchmarks/gpu_check.sh
    check=$?
    [ "$check" -ne 2 ] || return 2  # no GPU here: the train check would refuse too
    OUT=$out/train PACK= bash benchmarks/gpu_train_check.sh
    train=$?
    cat "$out/check/summary.txt" "$out/train/summary.txt" >"$out/summary.txt" 2>/dev/null
    # gpu-train-check's summary is just above; gpu-check's scrolled away with its output.
    cat "$out/check/summary.txt" 2>/dev/null
    echo
    echo "gpu-all: gpu-check exit $check, gpu-train-check exit $train; both summaries in $out/summary.txt"
    if on "$PACK"; then pack "$out"; fi
    [ "$check" -eq 0 ] && [ "$train" -eq 0 ]
}
