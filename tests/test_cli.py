"""Smoke tests of the command lines, in a subprocess as a user runs them, and their bad
input: one line and exit code 2, checked in process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch


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


# -- the command-line sweep: one line and exit code 2, in process ---------------------------
def _main(package: str):
    import importlib

    module = "benchmarks.cli" if package == "benchmarks" else f"{package}.__main__"
    return importlib.import_module(module).main


def _one_line(capsys, package: str, argv: list[str]) -> str:
    """The exit code (2) and the single stderr line of ``python -m PACKAGE ARGV``."""
    try:
        code = _main(package)(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert "usage:" not in err[0] and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    ("package", "argv", "expected"),
    [
        ("train", ["fit", "--batch-size", "abc"],
         "error: --batch-size must be an integer, got 'abc' (see python -m train fit --help)"),
        ("train", ["fit", "--lr", "fast"],
         "error: --lr must be a number, got 'fast' (see python -m train fit --help)"),
        ("train", ["eval", "--checkpoint", "x", "--batch-size", "many"],
         "error: --batch-size must be an integer, got 'many' (see python -m train eval --help)"),
        ("train", ["fitt"], "(see python -m train --help)"),
        ("nets", ["summary", "resnet18", "--input-size", "abc"],
         "error: --input-size must be a positive integer, got 'abc' (see python -m nets "
         "summary --help)"),
        ("nets", ["summary", "resnet18", "--input-size", "0"],
         "error: --input-size must be a positive integer, got 0 (see python -m nets summary "
         "--help)"),
        ("nets", ["summary", "resnet18", "--input-size", "-3"],
         "--input-size must be a positive integer, got -3"),
        ("nets", ["cost", "resnet18", "--input-size", "0"],
         "--input-size must be a positive integer, got 0"),
        ("nets", ["export", "resnet18", "-o", "x.onnx", "--input-size", "0"],
         "--input-size must be a positive integer, got 0"),
        ("nets", ["classify", "samples/coffee.jpg", "--top", "0"],
         "error: --top must be a positive integer, got 0 (see python -m nets classify --help)"),
        ("nets", ["classify", "samples/coffee.jpg", "--top", "-3"],
         "--top must be a positive integer, got -3"),
        ("nets", ["show", "cam", "samples/coffee.jpg", "-o", "c.png", "--top-k", "0"],
         "--top-k must be a positive integer, got 0"),
        ("weights", ["info"],
         "error: the following arguments are required: file (see python -m weights info --help)"),
        ("benchmarks", ["lenet5", "--batch-size", "abc"],
         "error: --batch-size must be a positive integer, got 'abc' (see python -m benchmarks "
         "--help)"),
        ("benchmarks", ["train-loop", "--model", "lenet5", "--data", "digits", "--steps", "x"],
         "(see python -m benchmarks train-loop --help)"),
        ("benchmarks", ["chart"], "(see python -m benchmarks chart --help)"),
    ],
)  # fmt: skip
def test_a_bad_option_is_one_line_and_how_to_get_help(capsys, package, argv, expected):
    """Not argparse's usage block (31 lines for train fit) before its one line."""
    line = _one_line(capsys, package, argv)
    assert line == expected if expected.startswith("error: ") else expected in line, line


def test_a_bad_option_in_a_subprocess_is_one_line(tmp_path):
    for package, argv in (("train", ["fit", "--batch-size", "abc"]),
                          ("nets", ["summary", "resnet18", "--input-size", "0"])):  # fmt: skip
        assert_one_line_error(run(package, *argv, env_cache=str(tmp_path)), "--help")


@pytest.fixture
def segmentation_best(tmp_path) -> str:
    """What a segmentation run exports (best.safetensors of unet_lenet5, its classes and
    preprocessing), without the run."""
    import nets
    from train import checkpoint

    model = nets.create_model("unet_lenet5", num_classes=3)
    path = tmp_path / "best.safetensors"
    checkpoint.export_model(model, path, classes=["background", "circle", "square"],
                            preprocessing=model.pretrained_cfg.preprocessing)  # fmt: skip
    return str(path)


def test_classify_with_a_segmentation_checkpoint_is_one_line(capsys, segmentation_best):
    line = _one_line(capsys, "nets", ["classify", "samples/coffee.jpg", "--weights",
                                      segmentation_best])  # fmt: skip
    assert line == (
        f"error: unet_lenet5 ({segmentation_best}) is a segmentation network (a class per "
        "pixel), not a classifier: python -m train predict --checkpoint FILE IMAGE writes its "
        "masks"
    )
    line = _one_line(capsys, "nets", ["classify", "samples/coffee.jpg", "--model", "unet",
                                      "--weights", "none"])  # fmt: skip
    assert "unet is a segmentation network" in line


def test_classify_refuses_any_model_without_class_scores(capsys, monkeypatch, segmentation_best):
    """Past the family check (a network it does not know for one), the output's shape is
    checked: one line, not decode_predictions' ValueError."""
    import dataclasses

    import nets.__main__ as cli_module

    real = cli_module.get_spec
    monkeypatch.setattr(
        cli_module, "get_spec", lambda name: dataclasses.replace(real(name), family="other")
    )
    line = _one_line(capsys, "nets", ["classify", "samples/coffee.jpg", "--weights",
                                      segmentation_best])  # fmt: skip
    assert line == (
        "error: unet_lenet5 returned shape [1, 3, 32, 32], not one score per class: classify "
        "needs a classifier"
    )


def test_convert_writes_safetensors_names_only_and_never_over_a_foreign_file(tmp_path, capsys):
    import nets

    src = tmp_path / "lenet5.pth"
    torch.save(nets.create_model("lenet5").state_dict(), src)
    convert = ["convert", str(src), "--arch", "lenet5", "-o"]
    line = _one_line(capsys, "nets", [*convert, str(tmp_path / "r18.pth")])
    assert "the file written is safetensors; give a name ending in .safetensors" in line
    assert str(tmp_path / "r18.safetensors") in line and not (tmp_path / "r18.pth").exists()
    text = tmp_path / "existing.txt"
    text.write_text("notes")
    _one_line(capsys, "nets", [*convert, str(text)])
    assert text.read_text() == "notes"
    foreign = tmp_path / "other.safetensors"  # not ours: another tool's file, or rubbish
    foreign.write_bytes(b"someone else's bytes")
    line = _one_line(capsys, "nets", [*convert, str(foreign)])
    assert line == (
        f"error: -o/--output '{foreign}' exists and is not a checkpoint written by nets: pass "
        "--overwrite to replace it, or another -o"
    )
    assert foreign.read_bytes() == b"someone else's bytes"
    main = _main("nets")
    assert main([*convert, str(foreign), "--overwrite"]) == 0
    capsys.readouterr()
    # Ours now: converted again over it without --overwrite.
    assert main([*convert, str(foreign)]) == 0
    assert "14 tensors for lenet5" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "existing.txt", "lenet5.pth", "other.safetensors"
    ]  # fmt: skip
