"""The GPU machine's scripts (benchmarks/gpu_*.sh), checked here without a GPU: their time
limits add up to what their headers state and fit one device call, the benchmark measures
the headline mode first, a step past its limit is stopped with SIGINT and reported with the
end of its log, a dry run names what it did not reach, and train-loop takes --cache-memory.
Nothing here runs a network: the scripts' PLAN mode runs nothing, and the step machinery is
tried on small shell and Python commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks import train_loop
from train.errors import TrainError

ROOT = Path(__file__).resolve().parents[2]
CHECK, TRAIN, PREAMBLE = (
    ROOT / "benchmarks" / f for f in ("gpu_check.sh", "gpu_train_check.sh", "gpu_preamble.sh")
)
DEVICE_CALL_S = 480  # what one device call may take, start-up apart: 8 minutes
SETTINGS = ("OUT", "PACK", "PLAN", "DEVICE", "PY", "MODES", "NETS", "NETWORK_S", "EXTRA",
            "LIMIT_SCALE", "BATCH", "STEPS", "PER_CLASS", "MODEL", "DATA", "NOTES")  # fmt: skip
STEP = re.compile(r"^  (\S+) +(\d+) s \+ +(\d+) s  (.*)$")


def _env(**settings: str) -> dict[str, str]:
    """This environment without the scripts' settings (a caller's OUT would redirect them),
    plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return {**env, **settings}


def _bash(script: str | Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    cmd = ["bash", str(script), *args] if isinstance(script, Path) else ["bash", "-c", script]
    return subprocess.run(cmd, cwd=ROOT, env=_env(**settings), capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def _plan(script: Path, **settings: str) -> tuple[list[tuple[str, int, int, str]], int]:
    """The steps (name, limit, grace, command) and the worst case a PLAN=1 run prints."""
    res = _bash(script, PLAN="1", OUT="/nonexistent/plan", **settings)
    assert res.returncode == 0, res.stderr
    steps = [(m[1], int(m[2]), int(m[3]), m[4]) for m in map(STEP.match, res.stdout.splitlines())
             if m]  # fmt: skip
    (worst,) = re.findall(r"^worst case: (\d+) s \(arithmetic", res.stdout, re.M)
    assert not Path("/nonexistent/plan").exists()
    return steps, int(worst)


def _header(script: Path) -> tuple[list[tuple[str, int, int]], int]:
    """The steps (name, limit, grace) and the worst case stated in ``script``'s header."""
    head = script.read_text().split("\nset -uo pipefail")[0]
    steps = [(m[1], int(m[2]), int(m[3]))
             for m in re.finditer(r"^#   (\S+) +(\d+) \+ (\d+) ", head, re.M)]  # fmt: skip
    (worst,) = re.findall(r"^# Worst case: (\d+) s, the sum of the limits and grace", head, re.M)
    return steps, int(worst)


@pytest.mark.parametrize("script", [CHECK, TRAIN, PREAMBLE], ids=lambda p: p.name)
def test_scripts_parse(script):
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("script", [CHECK, TRAIN], ids=lambda p: p.name)
def test_worst_case_is_the_sum_of_the_limits_the_header_states(script):
    steps, worst = _plan(script)
    assert worst == sum(limit + grace for _, limit, grace, _ in steps)
    assert _header(script) == ([s[:3] for s in steps], worst)
    # Every step under a limit: the scripts call `timeout` only through the preamble's step.
    for line in script.read_text().splitlines():
        assert not re.search(r"(?<![-\w])timeout\s", line.split("#")[0]), line
    assert PREAMBLE.read_text().count("timeout -s INT -k") == 1


def test_both_scripts_fit_one_device_call():
    (_, check), (_, train) = _plan(CHECK), _plan(TRAIN)
    assert check + train < DEVICE_CALL_S
    res = _bash(". benchmarks/gpu_preamble.sh && run_all", PLAN="1", OUT="/nonexistent/all")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == f"both: {check + train} s"
    assert "bash -c '. benchmarks/gpu_preamble.sh && run_all'" in (ROOT / "Makefile").read_text()
    # A dry run's limits are wider (this CPU is slower than the GPU at everything); the
    # extra runs are opt-in, each with its limit counted.
    cpu_steps, _ = _plan(CHECK, DEVICE="cpu")
    assert [s[1] for s in cpu_steps] == [3 * s[1] for s in _plan(CHECK)[0]]
    extra, more = _plan(TRAIN, EXTRA="1")
    assert [s[0] for s in extra[-2:]] == ["normalize-in-loader", "workers-all-cores"]
    assert more == train + sum(s[1] + s[2] for s in extra[-2:])


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_the_benchmark_measures_the_headline_first(device):
    steps, _ = _plan(CHECK, DEVICE=device)
    (bench,) = [cmd for name, _, _, cmd in steps if name == "benchmark"]
    words = bench.split()
    assert words[words.index("benchmarks") + 1] == "resnet50"
    modes = words[words.index("--modes") + 1 : words.index("--device")]
    assert modes == ["fast", "amp", "eager"]
    # The smoke test has a step and a limit of its own, out of the -k cuda step.
    tests = {name: cmd for name, _, _, cmd in steps}
    assert "--deselect tests/benchmarks/test_benchmarks.py::test_cuda_smoke" in tests["cuda-tests"]
    assert tests["cuda-smoke"].endswith("tests/benchmarks/test_benchmarks.py::test_cuda_smoke")
    assert all("-v -rA" in tests[n] and "--durations=0" in tests[n] for n in tests if "cuda" in n)


def test_the_train_check_measures_cache_and_disk():
    steps, _ = _plan(TRAIN)
    runs = {name: cmd for name, _, _, cmd in steps if "train-loop" in cmd}
    assert list(runs) == ["defaults", "from-disk"]
    assert "--cache-memory" not in runs["defaults"]
    assert "--cache-memory 0 " in runs["from-disk"]


def test_steps_stop_with_sigint_and_the_summary_shows_why(tmp_path):
    """A step past its limit gets SIGINT (Python says where it was, pytest still reports),
    a failing one its exit code; the summary shows the tables, each failed step with the end
    of its log (pytest's failure section rather than its durations), and PACK=1 packs the
    folder."""
    (tmp_path / "test_a.py").write_text("def test_fails():\n    assert 1 + 1 == 3\n")
    (tmp_path / "test_b.py").write_text("import time\ndef test_sleeps():\n    time.sleep(60)\n")
    out = tmp_path / "out"
    script = f"""
        set -uo pipefail
        . benchmarks/gpu_preamble.sh
        LABEL=gpu-check
        mkdir -p "$OUT"
        echo '| a table |' > "$OUT/table.md"
        step fine 5 1 fine.txt echo fine
        step exits 5 1 exits.txt bash -c 'echo one line; exit 3'
        step slow 1 5 slow.txt {sys.executable} -c 'import time; time.sleep(30)'
        cd {tmp_path}
        step pytest 6 5 pytest.txt {sys.executable} -m pytest -v -rA --durations=0 \\
            -p no:cacheprovider test_a.py test_b.py
        finish "$OUT/table.md"
    """
    res = _bash(script, OUT=str(out), DEVICE="cpu", LIMIT_SCALE="1", PACK="1")
    assert res.returncode == 1, res.stderr
    summary = res.stdout.split("==== gpu-check summary")[1]
    assert (out / "summary.txt").read_text().split("==== gpu-check summary")[1] in summary
    assert "-- table.md\n| a table |" in summary
    assert re.search(r"  fine +\d+ s of +5 s  exit 0\n", summary)
    assert "-- FAILED: exits, exit 3; the end of exits.txt:\none line" in summary
    slow = summary.split("-- FAILED: slow, exit 124 (timed out: SIGINT at its limit)")[1]
    assert "KeyboardInterrupt" in slow.split("-- FAILED")[0]
    # pytest stopped at its limit: the failure before, and where it stopped.
    failure = summary.split("-- FAILED: pytest, exit 124")[1].split("not reached")[0]
    assert "assert 1 + 1 == 3" in failure and "FAILED test_a.py::test_fails" in failure
    assert "test_b.py:3: KeyboardInterrupt" in failure and "slowest durations" not in failure
    assert "the test it stopped in: test_b.py::test_sleeps" in failure
    with tarfile.open(f"{out}.tar.gz") as tar:
        names = set(tar.getnames())
    assert {f"out/{f}.txt" for f in ("fine", "exits", "slow", "summary")} <= names


def test_a_dry_run_names_what_it_did_not_reach():
    reached = {}
    for label in ("gpu-check", "gpu-train-check"):
        for device in ("cpu", "cuda"):
            res = _bash(f". benchmarks/gpu_preamble.sh && LABEL={label} && not_reached",
                        DEVICE=device)  # fmt: skip
            assert res.returncode == 0, res.stderr
            reached[label, device] = res.stdout
    assert reached["gpu-check", "cuda"] == reached["gpu-train-check", "cuda"] == ""
    check, train = reached["gpu-check", "cpu"], reached["gpu-train-check", "cpu"]
    for out in (check, train):
        assert out.strip().startswith("not reached in this dry run (CUDA only):")
    for item in ("CUDA graph capture", "compile+cudagraph", "float16", "tvc_", "bf16 autocast",
                 "CUDA memory peaks", "test_cuda_smoke"):  # fmt: skip
        assert item in check, item
    for item in ("test_cuda_training_run", "bf16 autocast", "normalised on the GPU",
                 "pinned memory"):  # fmt: skip
        assert item in train, item


def test_train_loop_takes_cache_memory_into_the_config(tmp_path):
    base = ["--model", "lenet5", "--data", "digits"]
    for given, want in (
        ([], None),
        (["--cache-memory", "0"], 0.0),
        (["--cache-memory", "2.5"], 2.5),
    ):
        args = train_loop.parser().parse_args([*base, *given])
        assert train_loop._config(args, str(tmp_path)).cache_memory == want
    with pytest.raises(TrainError, match="--cache-memory must be a number of GiB >= 0"):
        train_loop._config(train_loop.parser().parse_args([*base, "--cache-memory", "-1"]), "x")


def test_train_loop_table_says_where_the_images_came_from():
    row = {"model": "resnet50", "strategy": "fine-tune", "batch_size": 256, "input": [3, 224, 224],
           "dtype": "bfloat16", "channels_last": True, "compile": False,
           "normalize_on_device": True, "num_workers": 8, "steps": 20, "warmup_s": 4.0,
           "device": "cuda:0", "data": "/tmp/photos", "bare_step_images_per_s": 4000.0,
           "loop_images_per_s": 3000.0, "ratio": 0.75, "loop_data_wait": 0.2,
           "loop_first_batch_s": 0.5, "loop_s": 2.0}  # fmt: skip
    cached = {**row, "cache_memory": None, "cache_budget_gib": 32.0, "in_memory": True}
    disk = {**row, "cache_memory": 0.0, "cache_budget_gib": 0.0, "in_memory": False}
    head = train_loop.table(cached).splitlines()[0]
    assert "images cached in memory (--cache-memory default 32 GiB)" in head
    assert "images decoded from disk (--cache-memory 0 GiB)" in train_loop.table(disk)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_passes_its_settings_to_the_scripts():
    res = subprocess.run(["make", "-s", "gpu-all", "PLAN=1", "OUT=/nonexistent/all"], cwd=ROOT,
                         env=_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "gpu-check plan (DEVICE=cuda" in res.stdout and "gpu-train-check plan" in res.stdout
    assert "--out /nonexistent/all/check" in res.stdout
    assert "--out /nonexistent/all/train/defaults" in res.stdout
