"""The benchmark's smoke test: a tiny run through the Python API, checking the report's
fields and files. No test asserts a time."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CountingBackend

import nets
from benchmarks import cli, report, roofline, runner, timing
from benchmarks.models import build_pair, has_twin
from benchmarks.runner import NetworkTimeout, Settings, deadline, measure_model, subjects


def test_smoke_run_writes_the_report(tmp_path, capsys):
    out = tmp_path / "res"
    argv = ["resnet18", "--input-size", "32", "--batch-size", "2", "--repeats", "1"]
    assert cli.main([*argv, "--modes", "eager", "fast", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| model | mode | size | params (M) | GMACs | latency b1 (ms) |")
    for name in ("results.json", "results.csv", "table.md"):
        assert (out / name).stat().st_size > 0
    for name in ("accuracy_vs_cost.png", "throughput.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["command"].startswith("python -m benchmarks resnet18")
    assert {"cpu", "torch", "torchvision", "threads"} <= set(data["meta"]["machine"])
    # Which kernels the CPU allows: figures from an AVX2 and an AVX-512 host differ by far
    # more than the noise, so a result that does not say which it was cannot be compared.
    machine = data["meta"]["machine"]
    assert machine["cpu_isa"] == torch.backends.cpu.get_cpu_capability()
    assert set(machine["cpu_flags"]) <= set(report._ISA_FLAGS)
    assert isinstance(machine["cpu_native_bf16"], bool)
    rows = {r["mode"]: r for r in data["rows"]}
    assert set(rows) == {"eager", "fast"}
    eager = rows["eager"]
    assert eager["params"] == 11_689_512 and eager["macs"] > 0 and eager["torchvision"]
    assert eager["max_abs_diff_vs_tv"] < 1e-4  # the same weights and input as torchvision
    for key in ("latency_ms", "throughput", "train_throughput"):
        assert eager[key] > 0 and eager[f"tv_{key}"] > 0
        assert set(eager[f"ratio_{key}"]) == {"median", "p25", "p75"}
    assert {"peak_infer_mb", "peak_train_mb", "tv_peak_infer_mb", "tv_peak_train_mb"} <= set(eager)
    # The roofline: achieved GMAC/s from the row's own figures, over the conv peak of the run.
    assert eager["gmacs_s"] == pytest.approx(eager["macs"] * eager["throughput"] / 1e9)
    assert eager["peak_gmacs_s"] > 0 and eager["peak_layer"].endswith("batch 8, float32")
    assert eager["share_of_peak"] == pytest.approx(eager["gmacs_s"] / eager["peak_gmacs_s"])
    assert eager["ceiling_vs_tv"] == pytest.approx(eager["peak_gmacs_s"] / eager["tv_gmacs_s"])
    assert "| % of peak (tv) | ceiling |" in table
    fast = rows["fast"]
    assert fast["throughput"] > 0 and "train_throughput" not in fast
    assert fast["tv_throughput"] > 0 and fast["eager_throughput"] > 0  # both references
    assert set(fast["ratio_eager_throughput"]) == {"median", "p25", "p75"}
    # Tracing and timing the plans is the fast path's compile time; the twin stays eager.
    assert fast["compile_s"] > 0 and "tv_compile_s" not in fast
    assert set(fast["plans"]) == {"1x3x32x32", "2x3x32x32"}
    assert set(fast["plans"].values()) <= {"torchscript", "eager"}
    assert set(fast["plan_why"]) == set(fast["plans"])  # and why: the measured ratio
    assert all("eager" in why for why in fast["plan_why"].values())
    assert data["meta"]["settings"]["fast_backend"] == "auto"
    assert f"| fast ({fast['plans']['2x3x32x32']}) |" in table


def test_model_without_twin_and_skipped_mode(tmp_path):
    out = tmp_path / "res"
    modes = ["eager", "bf16", "fast", "compile"]
    argv = ["lenet5", "--batch-size", "2", "--repeats", "1", "--modes", *modes]
    argv += ["--fast-backend", "compile"]
    assert cli.main([*argv, "--no-memory", "--no-charts", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    eager, bf16, fast, compiled = rows
    assert compiled["throughput"] > 0 and compiled["train_throughput"] > 0  # torch.compile
    # Compilation is a figure of its own, outside the steady-state timings.
    assert compiled["compile_s"] > 0 and compiled["train_compile_s"] > 0
    assert fast["compile_s"] > 0 and "eager_compile_s" not in fast and "tv_compile_s" not in fast
    assert fast["plans"] == {"1x1x32x32": "compile", "2x1x32x32": "compile"}
    assert set(fast["plan_check"].values()) == {
        "max difference within 0.001 of the largest logit (float32)"
    }
    # torch.compile as a user calls it: what each first call really ran, per shape
    assert compiled["plans"] == {
        "1x1x32x32": "compile", "2x1x32x32": "compile", "train 2x1x32x32": "compile"
    }  # fmt: skip
    assert "plan_why" not in compiled  # nothing fell back
    assert not eager["torchvision"] and "tv_throughput" not in eager
    assert "CUDA" in bf16["skipped"]
    # no torchvision twin: the fast path is still measured against our eager model
    assert "tv_throughput" not in fast and fast["ratio_eager_throughput"]["median"] > 0


def test_amp_and_both_fast_modes(tmp_path):
    """amp (bf16 autocast + channels_last) runs ours and the twin alike, training included;
    fast runs at the device's best precision (float32 on the CPU, float16 on CUDA) and
    fast-fp32 in float32, both against torchvision eager and our own eager model."""
    out = tmp_path / "res"
    argv = ["resnet18", "--input-size", "32", "--batch-size", "2", "--repeats", "1",
            "--modes", "amp", "fast", "fast-fp32", "--no-memory", "--no-charts",
            "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    amp, fast, fp32 = json.loads((out / "results.json").read_text())["rows"]
    assert amp["mode"] == "amp" and amp["train_throughput"] > 0 and amp["tv_train_throughput"] > 0
    assert amp["ratio_throughput"]["median"] > 0 and "plans" not in amp
    for row in (fast, fp32):
        assert row["dtype"] == "float32" and row["tv_throughput"] > 0
        assert row["eager_throughput"] > 0 and "train_throughput" not in row
        assert "tvc_throughput" not in row  # the compiled twin is a CUDA reference
    assert runner.fast_dtype("fast", torch.device("cuda")) == torch.float16
    assert runner.fast_dtype("fast-fp32", torch.device("cuda")) == torch.float32
    # inductor then a CUDA graph on CUDA; the timed automatic choice on the CPU
    assert runner.fast_backend(torch.device("cuda")) == "compile"
    assert runner.fast_backend(torch.device("cpu")) == "auto"
    table = (out / "table.md").read_text()
    assert "| vs tv compiled |" in table and "| fast-fp32 (" in table


def test_runner_computes_only_on_the_target_device():
    """Every tensor the runner computes with is on the target device. On the meta device
    (shapes, no values) a CPU model meeting a meta input raises, exactly as the CPU models
    met a CUDA input when the runner first ran on a GPU."""
    meta = torch.device("meta")
    settings = Settings(device=meta, input_size=32, batch_size=2, repeats=1, memory=False,
                        modes=("eager", "channels_last", "fast"))  # fmt: skip
    subj = subjects("resnet18", settings)
    for module in (subj.ours, subj.theirs):
        assert {t.device for t in [*module.parameters(), *module.buffers()]} == {meta}
    assert subj.x1.device == subj.xb.device == meta and subj.xb.shape == (2, 3, 32, 32)
    rows = measure_model("resnet18", settings, log=lambda s: None)
    assert [r["mode"] for r in rows] == ["eager", "channels_last", "fast"]
    assert rows[0]["max_abs_diff_vs_tv"] is None  # no values on meta to compare
    assert "peak_gmacs_s" not in rows[0]  # nor time to measure a peak in
    assert all(r["throughput"] > 0 for r in rows) and rows[0]["train_throughput"] > 0


def test_results_are_written_after_every_row(tmp_path, monkeypatch):
    """A run stopped in its second mode keeps the first mode's row on disk."""

    real = runner.iter_measure

    def stopped(name, settings, log):
        gen = real(name, settings, log)
        yield next(gen)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "iter_measure", stopped)
    out = tmp_path / "res"
    argv = ["lenet5", "--batch-size", "2", "--repeats", "1", "--modes", "eager", "fast",
            "--no-memory", "--no-charts", "--out", str(out)]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["mode"] for r in rows] == ["eager"] and rows[0]["throughput"] > 0
    assert "| lenet5 | eager |" in (out / "table.md").read_text()


def test_a_network_past_its_timeout_is_skipped_with_a_note(tmp_path, capsys):
    out = tmp_path / "res"
    argv = ["lenet5", "alexnet", "--batch-size", "2", "--repeats", "1", "--modes", "eager",
            "fast", "--no-memory", "--no-charts", "--timeout", "0.001",
            "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["model"], r["mode"]) for r in rows] == [
        ("lenet5", "eager"), ("lenet5", "fast"), ("alexnet", "eager"), ("alexnet", "fast")
    ]  # fmt: skip
    assert all(r["skipped"] == "ran past --timeout 0.001 s" for r in rows)
    assert "lenet5: ran past --timeout 0.001 s; skipped eager, fast" in capsys.readouterr().err
    import signal

    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left behind
    with pytest.raises(SystemExit):
        cli.main(["lenet5", "--timeout", "0"])


def test_a_timeout_wrapped_or_swallowed_by_a_library_still_ends_the_network():
    """torch.compile wraps an exception from inside its backend (BackendCompilerFailed) or
    logs it and falls back to eager: either way the network must end as timed out."""
    import time

    with pytest.raises(NetworkTimeout):
        with deadline(0.05):
            try:
                time.sleep(2)
            except NetworkTimeout as exc:
                raise RuntimeError("backend failed") from exc
    t = time.perf_counter()
    with pytest.raises(NetworkTimeout):
        with deadline(0.05):
            try:
                time.sleep(2)
            except NetworkTimeout:
                pass  # swallowed: the alarm fires again a second later
            time.sleep(5)
    assert time.perf_counter() - t < 2.5


def test_peak_layer_is_the_fastest_candidate(monkeypatch):
    """The peak is the best rate over the candidate layers, each really run once here."""
    calls = []

    def rate(call, macs, device):
        assert call().shape[1] in (4, 8)  # the convolution runs, in the dtype asked for
        calls.append(macs)
        return {2 * 4 * 4**2 * 4 * 3**2: 5.0, 2 * 8 * 2**2 * 4 * 1: 7.0}[macs]  # n cout hw cin kk

    monkeypatch.setattr(roofline, "_rate", rate)
    shapes = ((4, 4, 3, 4), (4, 8, 1, 2))
    peak = roofline.peak_layer(torch.device("cpu"), shapes=shapes, batch=2)
    assert len(calls) == 2 and peak.gmacs_s == 7.0 and peak.dtype == torch.float32
    assert peak.shape == "1x1 conv 4->8 at 2x2, batch 2" and peak.macs == 256
    assert roofline.peak_layer(torch.device("meta")) is None


def test_peak_layer_rate_is_real_and_shares_use_the_same_samples():
    peak = roofline.peak_layer(torch.device("cpu"), shapes=((16, 16, 3, 16),), batch=2)
    assert 0.01 < peak.gmacs_s < 1e5  # GMAC/s of a real convolution on this machine
    # Shares pair each sample with the peak layer's sample timed beside it: a machine
    # twice as slow in the second sample leaves the share alone.
    row = {"macs": 1e9, "batch_size": 2, "throughput": 1.0, "tv_throughput": 1.0,
           "throughput_samples": [1.0, 2.0], "tv_throughput_samples": [2.0, 4.0]}  # fmt: skip
    roofline.annotate(row, peak, [peak.macs / 4e9, peak.macs / 2e9])  # 4 then 2 GMAC/s
    assert row["share_of_peak"] == pytest.approx(0.5) and row["tv_share_of_peak"] == 0.25
    assert row["ceiling_vs_tv"] == pytest.approx(4.0) and row["peak_gmacs_s"] == 3.0
    cuda = torch.device("cuda")
    assert runner.mode_dtype("amp", torch.device("cpu")) == torch.bfloat16
    assert runner.mode_dtype("fast", cuda) == torch.float16
    assert runner.mode_dtype("channels_last", cuda) == torch.float32


def test_twins_come_from_the_weights_registry():
    assert has_twin("resnet50") and has_twin("mobilenet_v2") and has_twin("googlenet")
    assert not has_twin("lenet5") and not has_twin("inception_v4")  # timm weights only


def test_twin_holds_the_same_weights():
    ours, theirs = build_pair("googlenet")  # transform_input and no aux heads, as ours
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


def test_select_patterns():
    names = cli.select(["resnet5*", "resnet18", "resnet50"])
    assert "resnet50" in names and names[-1] == "resnet18" and len(set(names)) == len(names)
    with pytest.raises(nets.UnknownModelError, match="did you mean"):
        cli.select(["resnet51"])


def test_ratio_is_ours_over_theirs_speed():
    fast, slow = timing.Samples([1.0, 1.0, 1.0]), timing.Samples([2.0, 2.0, 4.0])
    assert timing.ratio_stats(fast, slow)["median"] == 2.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_smoke(tmp_path):
    out = tmp_path / "res"
    argv = ["resnet18", "--device", "cuda", "--input-size", "32", "--batch-size", "2"]
    assert cli.main([*argv, "--repeats", "1", "--no-charts", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["mode"] for r in rows] == list(runner.MODES) and not any("skipped" in r for r in rows)
    assert all(r["peak_infer_mb"] > 0 for r in rows)
    fast = rows[runner.MODES.index("fast")]
    assert fast["dtype"] == "float16" and fast["tvc_throughput"] > 0 and fast["tvc_compile_s"] > 0
    assert rows[runner.MODES.index("amp")]["train_throughput"] > 0


def test_unwritable_out_is_one_line_before_any_measurement(tmp_path, capsys, monkeypatch):
    """--out is checked before the first network: a file in its place, or a folder that
    refuses new files (read-only, simulated: the tests run as root, where chmod does not
    bite), is one line and exit code 2, with nothing measured and nothing left behind."""
    import errno
    import tempfile

    measured = []
    monkeypatch.setattr(cli, "iter_measure", lambda *a, **k: measured.append(a) or iter(()))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["lenet5", "--repeats", "1", "--no-charts"]
    assert cli.main([*argv, "--out", str(blocker / "res")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out") and "is a file" in err and "\n" not in err

    def read_only(*_a: object, **_k: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert cli.main([*argv, "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out: cannot create folder '{tmp_path / 'ro'}' (Read-only file system)"
    assert not measured and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_out_of_memory_skips_the_network_with_one_line(tmp_path, capsys, monkeypatch):
    """CUDA running out of memory in one network (simulated: the CPU run raises what CUDA
    would) skips that network's remaining modes with the batch size and a smaller one to
    try; the run goes on with the next network and keeps every row."""
    real = runner.iter_measure

    def oom_for_lenet(name, settings, log):
        gen = real(name, settings, log)
        yield next(gen)
        if name == "lenet5":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB")
        yield from gen

    monkeypatch.setattr(cli, "iter_measure", oom_for_lenet)
    out = tmp_path / "res"
    argv = ["lenet5", "zfnet", "--batch-size", "2", "--input-size", "64", "--repeats", "1",
            "--modes", "eager", "fast", "--no-memory", "--no-charts",
            "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["model"], r["mode"], "skipped" in r) for r in rows] == [
        ("lenet5", "eager", False), ("lenet5", "fast", True),
        ("zfnet", "eager", False), ("zfnet", "fast", False),
    ]  # fmt: skip
    why = rows[1]["skipped"]
    assert why == "out of GPU memory at --batch-size 2: its remaining modes are skipped; " \
        "try --batch-size 1"  # fmt: skip
    assert f"lenet5: {why}; skipped fast" in capsys.readouterr().err


def test_chart_command_draws_the_registrys_tags(tmp_path, monkeypatch, capsys):
    """python -m benchmarks chart: the accuracy-vs-cost bubbles alone, no timing; notop tags
    have no accuracy of their own and no bubble. (The smoke run above draws every tag.)"""
    import weights
    from benchmarks import charts

    tags = ["resnet18.tv_in1k", "keras_nasnet_mobile.keras_in1k",
            "keras_nasnet_mobile.keras_notop_in1k"]  # fmt: skip
    monkeypatch.setattr(weights, "list_tags", lambda: tags)
    points = charts.tag_points()
    assert [p["tag"] for p in points] == tags[:2]
    assert points[1]["family"] == "nasnet" and points[1]["top1"] == 74.4
    assert 0.5 < points[1]["gmacs"] < 0.6  # NASNet-A Mobile: 564 M multiply-adds (paper)
    out = tmp_path / "chart.png"
    assert cli.main(["chart", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 weights tags drawn" in capsys.readouterr().out
    for bad, needle in ((tmp_path / "missing" / "c.png", "does not exist"),
                        (tmp_path / "c.jpg", "expected a .png")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["chart", "-o", str(bad)])
        assert exit_info.value.code == 2 and needle in capsys.readouterr().err
        assert not bad.exists()


# ---- What ran is what the figures say: compiled plans, like-for-like twins, memory ----


def test_compiling_modes_over_more_networks_than_the_recompile_limit(tmp_path, monkeypatch):
    """compile and fast-fp32 (compiled) over more networks than dynamo's recompile limit
    allows one ``forward``: each compiling mode starts from empty caches, so every plan says
    compile, and exactly as many graphs were compiled as the plans say. Without the resets,
    plans past the limit say eager and why, and the count still matches them. The limit is
    lowered to 3 (two networks in both modes need ten graphs, as nine networks need more
    than the default 8 allows); a counting backend stands in for inductor (the same caches
    and limits, without its minutes)."""
    names = ["lenet5", "zfnet"]

    def run(out: str) -> tuple[list[dict], int]:
        backend = CountingBackend()
        monkeypatch.setattr(runner, "COMPILE_MODE_OPTIONS", {"backend": backend})
        monkeypatch.setattr(nets.inference, "COMPILE_OPTIONS", {"backend": backend})
        monkeypatch.setattr(runner, "COMPILE_OPTIONS", {"backend": backend})
        # zfnet's smallest input: a size below it is refused, not measured at another.
        argv = [*names, "--input-size", "47", "--batch-size", "2", "--repeats", "1",
                "--modes", "compile", "fast-fp32", "--fast-backend", "compile",
                "--no-memory", "--no-charts", "--out", str(tmp_path / out)]  # fmt: skip
        torch._dynamo.reset()
        with torch._dynamo.config.patch(recompile_limit=3):
            assert cli.main(argv) == 0
        rows = json.loads((tmp_path / out / "results.json").read_text())["rows"]
        return rows, len(backend.runs)

    def plans(rows: list[dict]) -> list[tuple[str, str]]:
        return [(v, r.get("plan_why", {}).get(k, "")) for r in rows for k, v in r["plans"].items()]

    rows, graphs = run("reset")
    assert [r["mode"] for r in rows] == ["compile", "fast-fp32"] * len(names)
    ran = [runner for runner, _ in plans(rows)]
    assert set(ran) == {"compile"} and graphs == len(ran) == 10
    assert rows[1]["plans"] == {"1x1x47x47": "compile", "2x1x47x47": "compile"}
    assert set(rows[2]["plans"]) == {"1x3x47x47", "2x3x47x47", "train 2x3x47x47"}

    monkeypatch.setattr(runner, "reset_compiler", lambda: None)
    rows, graphs = run("no-reset")
    ran = [runner for runner, _ in plans(rows)]
    assert "eager" in ran and graphs == ran.count("compile") < 10
    why = [w for runner, w in plans(rows) if runner == "eager"]
    assert all("recompile limit" in w for w in why), why


def test_compiled_twin_is_compiled_as_the_fast_path_compiles(monkeypatch):
    """torchvision's compiled twin (the CUDA reference of the fast modes) with static shapes
    and the fast path's inductor options, as ours: never a dynamic-shape recompile."""
    calls = []

    def record(model, **kwargs):
        calls.append(kwargs)
        return model

    monkeypatch.setattr(torch, "compile", record)
    _, theirs = build_pair("resnet18")
    runner.compiled_twin(theirs, torch.float32)
    fast = nets.optimize_for_inference(nets.create_model("resnet18"), backend="compile")
    with torch.no_grad():
        fast(torch.randn(1, 3, 32, 32))
    twin, ours = calls
    assert twin["dynamic"] is False and ours["dynamic"] is False
    assert {k: v for k, v in ours.items() if k != "fullgraph"} == twin
    assert twin["options"] == {"freezing": True}


def test_references_per_mode_and_device():
    """Which models are timed beside ours: logic alone, so the CUDA case is tested here."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert runner.references("fast", cuda, twin=True) == ["", "tv_", "eager_", "tvc_"]
    assert runner.references("fast-fp32", cpu, twin=True) == ["", "tv_", "eager_"]
    assert runner.references("fast", cuda, twin=False) == ["", "eager_"]
    assert runner.references("amp", cuda, twin=True) == ["", "tv_"]
    assert runner.references("compile", cpu, twin=False) == [""]
    # whose first calls are watched for a fall-back to eager (ours plans itself when fast)
    x = torch.empty(2, 3, 8, 8, device="meta")
    assert runner._watched("compile", ["", "tv_"], x, train=True) == {
        "": "train 2x3x8x8", "tv_": "train 2x3x8x8"}  # fmt: skip
    assert runner._watched("fast", ["", "tv_", "eager_", "tvc_"], x) == {"tvc_": "2x3x8x8"}


def test_training_step_runs_backward_outside_autocast():
    """The benchmark's step: forward and loss under autocast, backward outside it."""
    from benchmarks import memory

    model = nets.create_model("lenet5")
    seen = []
    model.head.fc.weight.register_hook(lambda g: seen.append(torch.is_autocast_enabled("cpu")) or g)
    inside = []
    model.register_forward_hook(lambda *_: inside.append(torch.is_autocast_enabled("cpu")))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 1, 32, 32)
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    memory.train_step(model, opt, x, autocast=autocast)
    assert inside == [True] and seen == [False]


def test_cuda_peak_is_what_the_call_adds(monkeypatch):
    """The peak counts what the measured call allocated above what was already there (the
    models and their state), read from torch.cuda's allocator counters, here simulated."""
    from benchmarks import memory

    state = {"allocated": 900 * 2**20, "peak": 0}

    def reset(_device: object) -> None:
        state["peak"] = state["allocated"]

    def call() -> None:
        state["peak"] = state["allocated"] + 64 * 2**20  # activations of one call

    monkeypatch.setattr(torch.cuda, "synchronize", lambda _d=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda _d=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", reset)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda _d=None: state["peak"])
    assert memory.cuda_peak(call, torch.device("cuda")) == 64.0
    assert memory.tracks(torch.device("cuda")) and not memory.tracks(torch.device("cpu"))


def test_compile_mode_measures_the_inference_peak_in_eval_mode(tmp_path, monkeypatch):
    """In compile mode the compiled models are trained in place: the inference peak comes
    after, with them back in eval mode (measured in train mode it would recompile inside the
    measurement). The peak's call is recorded on the CPU by standing in for CUDA's figures."""
    from benchmarks import memory

    modes_seen = []

    def peak(fn, _device):  # noqa: ANN001
        fn()
        modes_seen.append(state["training"])
        return 1.0

    state = {"training": None}
    model = nets.create_model("lenet5")
    monkeypatch.setattr(memory, "tracks", lambda _d: True)
    monkeypatch.setattr(memory, "cuda_peak", peak)
    monkeypatch.setattr(runner, "COMPILE_MODE_OPTIONS", {"backend": CountingBackend()})
    real_infer = runner._infer_fn

    def infer_fn(m, x, mode, device):  # noqa: ANN001
        run = real_infer(m, x, mode, device)

        def traced() -> None:
            state["training"] = m.training
            run()

        return traced

    monkeypatch.setattr(runner, "_infer_fn", infer_fn)
    monkeypatch.setattr(runner, "_train_fn", lambda m, x, mode, d: lambda: state.update(
        training=m.training))  # fmt: skip
    del model
    settings = Settings(device=torch.device("cpu"), batch_size=2, repeats=1, modes=("compile",))
    (row,) = measure_model("lenet5", settings, log=lambda s: None)
    # the training peak, then the inference peak in eval mode
    assert modes_seen == [True, False] and row["peak_infer_mb"] == row["peak_train_mb"] == 1.0


def test_table_says_when_a_compiled_reference_ran_eagerly():
    row = {"model": "resnet18", "mode": "fast", "batch_size": 2, "input_size": 32,
           "params": 1, "macs": 1, "plans": {"2x3x32x32": "compile+cudagraph float16"},
           "tvc_plans": {"1x3x32x32": "compile", "2x3x32x32": "eager"}}  # fmt: skip
    assert "| fast (compile+cudagraph float16; tv compiled: eager) |" in report.markdown([row])
    row["tvc_plans"]["2x3x32x32"] = "compile"
    assert "| fast (compile+cudagraph float16) |" in report.markdown([row])


# ---- Bad input is one line and exit code 2, before any work (command-line sweep) ----


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["lenett5"], ["error: unknown model 'lenett5'; did you mean lenet5"]),
        (["zzz*"], ["error: no registered model matches 'zzz*'", "python -m nets list"]),
        (["lenet5", "--repeats", "0"], ["--repeats must be a positive integer, got 0"]),
        (["lenet5", "--batch-size", "-2"], ["--batch-size must be a positive integer, got -2"]),
        (["lenet5", "--batch-size", "abc"], ["--batch-size must be a positive integer, got 'abc'"]),
        (["lenet5", "--input-size", "0"], ["--input-size must be a positive integer, got 0"]),
        (["lenet5", "--threads", "0"], ["--threads must be a positive integer, got 0"]),
        (["lenet5", "--timeout", "-1"], ["--timeout must be a positive number, got -1"]),
        (["lenet5", "--input-size", "8"],
         ["--input-size 8 is below lenet5's smallest input, 32x32: pass at least 32"]),
        (["lenet5", "alexnet", "--input-size", "40"],
         ["--input-size 40 is below alexnet's smallest input, 63x63"]),
        (["alexnet", "zfnet", "--input-size", "8"],
         ["--input-size 8 is below the smallest input of 2 of the models (alexnet 63x63"]),
        (["train-loop", "--model", "lenet_5", "--data", "digits"],
         ["error: unknown model 'lenet_5'; did you mean lenet5"]),
        (["train-loop", "--model", "lenet5", "--data", "digits", "--steps", "x"],
         ["--steps must be an integer, got 'x'"]),
        (["train-loop", "--model", "lenet5", "--data", "digits", "--batch-size", "0"],
         ["--batch-size must be a positive integer, got 0"]),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_any_measurement(tmp_path, capsys, monkeypatch, argv, needles):
    """Each was a traceback (our own UnknownModelError, StatisticsError, "negative
    dimension"), a run that measured nothing for 16 s and left an empty table.md, or a
    measurement at another size than asked: now one line, exit code 2, nothing written."""
    measured = []
    monkeypatch.setattr(cli, "iter_measure", lambda *a, **k: measured.append(a) or iter(()))
    out = tmp_path / "res"
    try:
        code = cli.main([*argv, "--out", str(out)])
    except SystemExit as exc:  # argparse's type checks: the same one line
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], err
    assert "usage:" not in err[0] and not measured and not out.exists()


def test_settings_refuse_what_the_command_line_refuses():
    """The Python API's Settings check as the options do: 0 is never "not given"."""
    cpu = torch.device("cpu")
    cases = [({"repeats": 0}, "Settings.repeats must be a positive integer, got 0"),
             ({"batch_size": -2}, "Settings.batch_size must be a positive integer"),
             ({"input_size": 0}, "Settings.input_size must be a positive integer"),
             ({"timeout": 0.0}, "Settings.timeout must be a positive number")]  # fmt: skip
    for bad, needle in cases:
        with pytest.raises(ValueError, match=needle):
            Settings(device=cpu, **bad)
    assert Settings(device=cpu, input_size=None, timeout=None).repeats == 7


def test_checkpointing_command_measures_and_writes(tmp_path, capsys):
    """python -m benchmarks checkpointing: the activations kept fall with checkpointing, the
    step times and their ratio are there, and the folder gets results.json and table.md."""
    from benchmarks.cli import main

    out = tmp_path / "ckpt"
    code = main(["checkpointing", "resnet18", "--batch-size", "2", "--input-size", "64",
                 "--repeats", "1", "--out", str(out)])  # fmt: skip
    assert code == 0
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["model"] == "resnet18" and row["act_mb_ckpt"] < row["act_mb_plain"]
    assert row["time_ratio"] == row["step_s_ckpt"] / row["step_s_plain"] > 0
    assert "| resnet18 | 2 x 64 |" in (out / "table.md").read_text()
    capsys.readouterr()
    for bad, says in ((["--repeats", "0"], "--repeats must be a positive integer"),
                      (["--input-size", "60", "inception_v3"], "needs --input-size 75"),
                      (["nonet"], "unknown model 'nonet'")):  # fmt: skip
        try:
            code = main(["checkpointing", *bad])
        except SystemExit as exc:  # argparse's own refusals exit
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1
