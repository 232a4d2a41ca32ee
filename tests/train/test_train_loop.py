"""The trainer's loop in parts: batches onto the device, the epoch with its throughput
figures, the per-strategy defaults, and the loop's benchmark against its bare step."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import nets
import train
from benchmarks import cli as bench_cli
from train.config import DEFAULTS, TrainConfig, add_config_arguments
from train.errors import TrainError
from train.loop import Step, Throughput, batches, train_epoch
from train.strategy import build_model


def test_throughput_says_what_bounds_a_pass():
    t = Throughput(images=300, wait_s=1.0, step_s=2.0)
    assert t.images_per_s == 100 and t.wait_share == pytest.approx(1 / 3) and t.bound == "step"
    t.add(Throughput(images=100, wait_s=4.0, step_s=1.0))
    assert t.images == 400 and t.wait_share == pytest.approx(5 / 8) and t.bound == "data"
    assert Throughput().images_per_s == 0 and Throughput().wait_share == 0


def test_batches_skip_unreadable_count_and_time():
    loader = [
        (torch.ones(2, 3, 4, 4), torch.tensor([0, 1]), []),
        (torch.empty(0), torch.empty(0, dtype=torch.long), ["a.png", "b.png"]),  # all bad
        (torch.ones(1, 3, 4, 4), torch.tensor([1]), ["c.png"]),
    ]
    skipped, timing = set(), Throughput()
    got = list(batches(loader, torch.device("cpu"), channels_last=True, skipped=skipped,
                       timing=timing))  # fmt: skip
    assert [len(y) for _, y in got] == [2, 1] and skipped == {"a.png", "b.png", "c.png"}
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x, _ in got)
    assert timing.images == 3 and timing.wait_s >= 0 and timing.step_s >= 0
    with pytest.raises(TrainError, match="unreadable image 'a.png' \\(--strict\\)"):
        list(batches(loader, torch.device("cpu"), strict=True))

    # The wait before a pass's first batch (an all-bad batch first counts in it), kept apart
    def slow_start():
        time.sleep(0.05)
        yield loader[1]
        time.sleep(0.02)
        yield loader[0]
        yield loader[2]

    timing = Throughput()
    for _ in batches(slow_start(), torch.device("cpu"), timing=timing):
        time.sleep(0.01)
    assert timing.start_wait_s >= 0.07 and timing.wait_s >= timing.start_wait_s
    assert timing.step_s >= 0.02 and timing.images == 3

    # uint8 handed over, normalised after the copy: as the collate would, layout kept
    u8 = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    scale = lambda x: (x.float() / 255 - 0.5) / 0.25  # noqa: E731
    (x, _), = batches([(u8, torch.tensor([0, 1]), [])], torch.device("cpu"),
                      channels_last=True, normalize=scale)  # fmt: skip
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, scale(u8))


def _step(accum: int) -> tuple[Step, list[int]]:
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    updates: list[int] = []
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: updates.append(s) or 1.0)
    updates.clear()  # the scheduler's own first call
    step = Step(net, opt, sched, torch.amp.GradScaler("cpu", enabled=False),
                nn.CrossEntropyLoss(), list(net.parameters()), accum=accum)  # fmt: skip
    return step, updates


def test_accumulation_steps_a_last_short_group_and_max_steps_stops():
    """5 batches with --accum-steps 2: optimiser steps after batches 2, 4 and 5; the
    benchmark's max_steps ends the epoch early."""
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    step, updates = _step(accum=2)
    metrics = train_epoch(step, itertools.repeat((x, y), 5), 3, torch.device("cpu"),
                          check_finite=lambda loss, i: None)  # fmt: skip
    assert len(updates) == 3 and metrics["count"] == 40
    step, updates = _step(accum=1)
    seen = []
    metrics = train_epoch(step, itertools.repeat((x, y), 9), 3, torch.device("cpu"),
                          check_finite=lambda loss, i: seen.append(i), max_steps=4)  # fmt: skip
    assert seen == [0, 1, 2, 3] and len(updates) == 4 and metrics["count"] == 32


def test_each_epoch_reports_its_throughput(tmp_path, capsys):
    out = tmp_path / "run"
    res = train.fit(model="lenet5", data="digits", strategy="scratch", epochs=2,
                    max_per_class=10, num_workers=0, progress=False, out=str(out))  # fmt: skip
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["train_images_per_s"] > 0 and 0 <= row["data_wait"] <= 1
    assert res["throughput"]["bound"] in ("data", "step")
    assert res["throughput"]["train_images_per_s"] > 0
    printed = capsys.readouterr().out
    assert "img/s, data wait" in printed and "training ran at" in printed
    assert "bound by" in printed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["throughput"] == res["throughput"]


def test_defaults_table_drives_the_run_and_the_help():
    import argparse

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    helps = {a.dest: a.help for a in parser._actions}
    for strategy, d in DEFAULTS.items():
        assert f"{d.epochs} {strategy}" in helps["epochs"]
        assert f"{d.lr['adamw']:g} {strategy}" in helps["lr"]
    assert set(DEFAULTS) == {"linear-probe", "feature-extract", "fine-tune", "scratch"}


def test_unknown_options_are_refused_with_the_close_names(tmp_path):
    with pytest.raises(TrainError, match="unknown training option 'epoch'; did you mean epochs"):
        train.fit(model="lenet5", epoch=3, out=str(tmp_path / "x"))
    with pytest.raises(TrainError, match="unknown training option 'frobnicate'"):
        TrainConfig.from_dict({"frobnicate": 1})
    # a run's stored configuration from another version still reads
    assert TrainConfig.from_dict({"epochs": 2, "gone": 1}, strict=False).epochs == 2


def test_auxiliary_heads_are_declared_by_the_spec():
    assert nets.get_spec("googlenet").aux_heads and nets.get_spec("inception_v3").aux_heads
    assert not nets.get_spec("resnet18").aux_heads
    assert isinstance(build_model("googlenet", 3, None, aux=True).aux, nn.Module)
    plain = build_model("resnet18", 3, None, aux=True)  # no guessing from a TypeError
    assert not hasattr(plain, "aux")


def _jpeg_folder(root: Path, per_class: int = 6) -> Path:
    g = torch.Generator().manual_seed(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = (torch.rand(48, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / c / f"{i}.jpg", quality=85)
    return root


def test_train_loop_benchmark_side_by_side(tmp_path, capsys):
    data = _jpeg_folder(tmp_path / "jpegs")
    argv = ["train-loop", "--model", "lenet5", "--data", str(data), "--strategy", "scratch",
            "--batch-size", "4", "--steps", "2", "--warmup", "1",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert bench_cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| bare step (synthetic batch on cpu) |" in printed and "| loop / bare step |" in printed
    r = json.loads((tmp_path / "o" / "train-loop.json").read_text())
    assert r["bare_step_images_per_s"] > 0 and r["loop_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["loop_images_per_s"] / r["bare_step_images_per_s"],
                                       rel=1e-2)  # fmt: skip
    assert r["batch_size"] == 4 and r["input"] == [1, 32, 32] and r["steps"] == 2
    assert r["compile"] is False and r["warmup_s"] > 0 and r["normalize_on_device"] is False
    assert 0 < r["loop_first_batch_s"] <= r["loop_data_wait"] * r["loop_s"] + 1e-3
    assert r["machine"]["threads"] == torch.get_num_threads() and r["machine"]["cpu_isa"]
    assert not any((tmp_path / "jpegs").glob("**/*.part")) and not Path("runs/x").exists()

    assert bench_cli.main([*argv[:-2], "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --steps must be a positive integer, got 0"

    # A fine-tune from a weights file: what a machine without network (the GPU one) runs.
    start = tmp_path / "lenet5.safetensors"
    save_file(nets.create_model("lenet5").state_dict(), str(start))
    tuned = [*argv[:5], "--strategy", "fine-tune", "--weights", str(start), *argv[7:],
             "--normalize-on-device"]  # fmt: skip
    assert bench_cli.main(tuned) == 0
    assert "lenet5 fine-tune, batch 4" in capsys.readouterr().out
    r = json.loads((tmp_path / "o" / "train-loop.json").read_text())
    assert r["strategy"] == "fine-tune" and r["normalize_on_device"] is True
