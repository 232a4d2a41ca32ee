"""Smoke tests of the command lines, in a subprocess as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys


def run(*args: str, env_cache: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NETS_CACHE_DIR": env_cache}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=300
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr


def test_help(tmp_path):
    for package in ("nets", "weights"):
        proc = run(package, "--help", env_cache=str(tmp_path))
        assert proc.returncode == 0 and "usage" in proc.stdout


def test_list(tmp_path):
    proc = run("nets", "list", env_cache=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "25,557,032" in lines["resnet50"] and "resnet50.tv2_in1k" in lines["resnet50"]
    assert "80.9" in lines["resnet50"]
    assert "4,652,008" in lines["efficientnet_lite0"]
    assert "31,031,810" in lines["unet"] and lines["unet_<model>"].split()[1] == "unet"


def test_summary_counts_like_keras(tmp_path):
    proc = run("nets", "summary", "resnet50", env_cache=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # 25,557,032 trainable weights plus 53,120 BatchNorm moving means and variances.
    assert "Total params: 25,610,152" in out
    assert "Trainable params: 25,557,032" in out
    assert "Non-trainable params: 53,120" in out
    assert "(None, 64, 112, 112)" in out and "(None, 1000)" in out
    small = run(
        "nets",
        "summary",
        "efficientnet_lite0",
        "--input-size",
        "64",
        "--depth",
        "2",
        env_cache=str(tmp_path),
    )
    assert small.returncode == 0 and "(None, 1280, 2, 2)" in small.stdout


def test_classify_samples_with_real_weights(tmp_path):
    proc = run(
        "nets",
        "classify",
        "samples/chelsea.jpg",
        "samples/coffee.jpg",
        "--top",
        "3",
        env_cache=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "samples/chelsea.jpg" and len(lines) == 8
    assert any(cat in lines[1] for cat in ("tiger cat", "Egyptian cat", "tabby"))
    assert lines[5].startswith("  espresso (") and lines[5].endswith("%)")


def test_bad_input_exits_2_with_one_line(tmp_path):
    cache = str(tmp_path)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    assert_one_line_error(
        run("nets", "classify", str(not_image), env_cache=cache), "is not an image"
    )
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(open("samples/coffee.jpg", "rb").read()[:5000])
    assert_one_line_error(run("nets", "classify", str(cut), env_cache=cache), "truncated")
    assert_one_line_error(
        run("nets", "summary", "resnet05", env_cache=cache), "unknown model 'resnet05'", "resnet50"
    )
    assert_one_line_error(
        run("nets", "summary", "resnet18", "--input-size", "16", env_cache=cache), "at least 32x32"
    )
    assert_one_line_error(
        run("nets", "classify", "samples/rocket.jpg", "--weights", str(not_image), env_cache=cache),
        "is not a checkpoint",
    )
    assert_one_line_error(
        run(
            "nets",
            "convert",
            "samples/rocket.jpg",
            "--arch",
            "resnet18",
            "-o",
            str(tmp_path / "x.safetensors"),
            env_cache=cache,
        ),
        "is not a checkpoint",
    )
    assert not (tmp_path / "x.safetensors").exists()
