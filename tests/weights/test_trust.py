"""Security and trust in the files the project reads and writes: no file runs code, the
trainer's checkpoint reads without unpickling code, every torch.load in the tree is
weights-only, dtypes are checked, converted files are verified, written files get normal
permissions, and a training folder never mixes two runs."""

from __future__ import annotations

import ast
import builtins
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nets
import train
import weights as wts
from nets.__main__ import main as nets_main
from train.__main__ import main as train_main
from weights.__main__ import main as weights_main

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("nets", "weights", "train", "benchmarks")
SAMPLE = str(ROOT / "samples" / "chelsea.jpg")
QUICK = ["--model", "lenet5", "--data", "digits", "--max-per-class", "5", "--epochs", "1",
         "--num-workers", "0", "--no-progress"]  # fmt: skip


class Payload:
    """Unpickled with full unpickling, this writes ``marker``: what an attacker's file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",))


def write_payload(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A file shaped like the trainer's checkpoint (and like a wrapped state dict) whose
    model entry is the payload."""
    obj = {"model": Payload(marker), "optimizer": {}, "config": {"model": "lenet5"},
           "classes": [str(i) for i in range(10)], "epoch": 1}  # fmt: skip
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "\x1b" not in err[0]
    return err[0]


COMMANDS = {
    "nets classify --weights": lambda f, tmp: nets_main(["classify", SAMPLE, "--weights", f]),
    "weights info": lambda f, tmp: weights_main(["info", f]),
    "nets convert": lambda f, tmp: nets_main(
        ["convert", f, "--arch", "lenet5", "-o", str(tmp / "out.safetensors")]
    ),
    "train eval": lambda f, tmp: train_main(["eval", "--checkpoint", f, "--data", "digits"]),
    "train predict": lambda f, tmp: train_main(
        ["predict", "--checkpoint", f, SAMPLE, "--output", str(tmp / "p.csv")]
    ),
    "train fit --weights": lambda f, tmp: train_main(
        ["fit", *QUICK, "--strategy", "fine-tune", "--weights", f, "--out", str(tmp / "run")]
    ),
    "train fit --resume": lambda f, tmp: train_main(
        ["fit", *QUICK, "--strategy", "scratch", "--resume", "--out", str(Path(f).parent)]
    ),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_reduce_payload_is_refused_unexecuted_by_every_command(tmp_path, capsys, command,
                                                                 legacy):  # fmt: skip
    marker = tmp_path / "ran"
    folder = tmp_path / "resume"
    folder.mkdir()
    # checkpoint.pt is the name --resume reads; the other commands get the same file.
    evil = write_payload(folder / "checkpoint.pt", marker, legacy)
    assert COMMANDS[command](str(evil), tmp_path) == 2
    line = one_error_line(capsys)
    assert "refused without running it" in line and "imports exec" in line, line
    assert not marker.exists(), f"{command} executed the payload"
    assert not (tmp_path / "out.safetensors").exists() and not (tmp_path / "p.csv").exists()


def test_a_payload_in_a_subprocess_is_refused_with_one_line(tmp_path):
    marker = tmp_path / "ran"
    evil = write_payload(tmp_path / "checkpoint.pt", marker)
    proc = subprocess.run(
        [sys.executable, "-m", "train", "eval", "--checkpoint", str(evil)],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "refused without running it" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def _torch_load_calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "torch"
        ):
            yield node


def test_every_torch_load_in_the_tree_is_weights_only():
    """CI-wide: no torch.load call in the packages or the tests omits weights_only=True,
    and the packages call it in one place only (weights.io.load_pickle)."""
    offenders, package_calls = [], []
    files = [p for d in (*PACKAGES, "tests") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 50
    for path in files:
        for call in _torch_load_calls(path):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            kw = {k.arg: k.value for k in call.keywords}
            value = kw.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                offenders.append(where)
            if path.parts[len(ROOT.parts)] in PACKAGES:
                package_calls.append(where)
    assert not offenders, f"torch.load without weights_only=True: {offenders}"
    assert [c.split(":")[0] for c in package_calls] == [str(Path("weights/io.py"))]
    # Nor any other unpickler in the packages.
    for path in (p for d in PACKAGES for p in (ROOT / d).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for bad in ("pickle.load", "allow_pickle=True", "dill", "joblib.load"):
            assert bad not in text, f"{path}: {bad}"


# -- the trainer's own files --------------------------------------------------------------
@pytest.fixture(scope="module")
def lenet_run(module_dir):
    out = module_dir / "lenet"
    train.fit(model="lenet5", data="digits", strategy="scratch", epochs=1, max_per_class=10,
              num_workers=0, progress=False, out=str(out))  # fmt: skip
    return out


def test_the_trainer_checkpoint_reads_weights_only_and_resumes(lenet_run, tmp_path):
    state = torch.load(lenet_run / "checkpoint.pt", weights_only=True)
    assert state["format"] == "nets-train-checkpoint" and state["version"] == 2
    assert state["epoch"] == 1 and set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    # The numpy generator state survives the round trip exactly.
    import numpy as np

    from train.checkpoint import rng_states, set_rng_states

    np.random.seed(123)
    saved = rng_states()
    a = np.random.rand(3)
    set_rng_states(saved)
    assert np.array_equal(a, np.random.rand(3))


@pytest.mark.parametrize("command", ["nets classify", "weights info"])
def test_the_trainer_checkpoint_as_weights_points_to_best(lenet_run, capsys, command):
    ckpt = str(lenet_run / "checkpoint.pt")
    if command == "nets classify":
        assert nets_main(["classify", SAMPLE, "--weights", ckpt]) == 2
    else:
        assert weights_main(["info", ckpt]) == 2
    line = one_error_line(capsys)
    assert "training checkpoint" in line and "best.safetensors" in line, line
    assert "truncated" not in line


def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        wts.io.atomic_write(tmp_path / "a.txt", lambda t: Path(t).write_text("x"))
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.umask(0o027)
        wts.io.atomic_write(tmp_path / "b.txt", lambda t: Path(t).write_text("x"))
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640
        # Replacing a file keeps its mode, as writing it in place would.
        os.chmod(tmp_path / "a.txt", 0o664)
        wts.io.atomic_write(tmp_path / "a.txt", lambda t: Path(t).write_text("y"))
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_a_run_writes_files_with_normal_permissions(lenet_run):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("checkpoint.pt", "best.safetensors", "metrics.json", "loss.png", "log.jsonl"):
        mode = stat.S_IMODE((lenet_run / name).stat().st_mode)
        assert mode == 0o666 & ~mask, (name, oct(mode))


def test_fit_into_a_non_empty_out_needs_resume_or_overwrite(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["fit", *QUICK, "--strategy", "scratch", "--out", str(out)]
    assert train_main(args) == 0
    capsys.readouterr()
    first = (out / "best.safetensors").read_bytes()
    (out / "notes.txt").write_text("mine")  # a user's file beside the run

    assert train_main(args) == 2
    line = one_error_line(capsys)
    assert "is not empty" in line and "--resume" in line and "--overwrite" in line
    assert (out / "best.safetensors").read_bytes() == first  # untouched

    assert train_main([*args, "--resume", "--overwrite"]) == 2
    assert "pass one of them" in one_error_line(capsys)

    # A re-run with --overwrite that fails never leaves the old run's files behind.
    import train.loop as loop

    real = loop.compute_loss

    def poisoned(*a, **k):
        loss, logits = real(*a, **k)
        return loss * float("nan"), logits

    monkeypatch.setattr(loop, "compute_loss", poisoned)
    assert train_main([*args, "--overwrite"]) == 2
    assert "the loss became nan" in one_error_line(capsys)
    left = sorted(p.name for p in out.iterdir())
    assert left == ["notes.txt"], left  # the old run is gone, the user's file is kept

    monkeypatch.setattr(loop, "compute_loss", real)
    assert train_main([*args, "--overwrite"]) == 0
    assert (out / "metrics.json").is_file() and (out / "notes.txt").read_text() == "mine"


def test_fit_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # what a notebook's inline backend stands for here
    try:
        train.fit(model="lenet5", data="digits", strategy="scratch", epochs=1, max_per_class=5,
                  num_workers=0, progress=False, out=str(tmp_path / "r"))  # fmt: skip
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "r" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)


# -- weights files that are not what they say -----------------------------------------------
def _lenet_file(path: Path, dtype: torch.dtype) -> Path:
    model = nets.create_model("lenet5")
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()
    }
    wts.save_safetensors(state, path, {"format": "nets", "arch": "lenet5", "source": "nets"})
    return path


def test_an_integer_file_is_refused_naming_the_tensor(tmp_path, capsys):
    f = _lenet_file(tmp_path / "int.safetensors", torch.int32)
    with pytest.raises(wts.DtypeError, match=r"tensor '[\w.]+' is int32, but it holds a float"):
        nets.create_model("lenet5", weights=str(f))
    assert nets_main(["classify", SAMPLE, "--model", "lenet5", "--weights", str(f)]) == 2
    assert "is int32" in one_error_line(capsys)
    assert weights_main(["info", str(f)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["dtypes"]) == {"int32"}
    assert "is int32" in info["refused_on_loading"]


def test_half_precision_loads_and_info_states_the_cast(tmp_path, capsys):
    f = _lenet_file(tmp_path / "half.safetensors", torch.float16)
    model = nets.create_model("lenet5", weights=str(f))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert weights_main(["info", str(f)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cast_on_loading"] == [f"float16 -> float32 ({info['tensors']} tensors)"]


def test_convert_verifies_the_file_against_the_architecture(tmp_path, capsys):
    import torchvision

    src = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), src)
    out = tmp_path / "out.safetensors"
    assert nets_main(["convert", str(src), "--arch", "resnet50", "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert "does not fit architecture 'resnet50'" in line and "missing" in line, line
    assert not out.exists() and not list(tmp_path.glob(".out.safetensors.*"))
    # The right architecture converts, and the file loads.
    assert nets_main(["convert", str(src), "--arch", "resnet18", "-o", str(out)]) == 0
    nets.create_model("resnet18", weights=str(out))


def test_the_feature_cache_tells_two_files_with_one_official_name_apart(tmp_path):
    from train.datasets import load_data
    from train.features import cache_key

    tag = wts.get_tag("mobilenet_v1_100.ra4_e3600_r224_in1k")
    assert not tag.sha256  # timm publishes no checksum: the file name alone names the tag
    files = []
    for i in range(2):
        torch.manual_seed(i)
        state = nets.create_model(tag.arch).state_dict()
        f = tmp_path / str(i) / tag.file_name
        f.parent.mkdir()
        wts.save_safetensors(state, f, {"format": "nets", "arch": tag.arch, "source": "nets"})
        files.append(f)
    a, b = (nets.create_model(tag.arch, weights=str(f), num_classes=10) for f in files)
    assert a.pretrained_cfg["tag"] == b.pretrained_cfg["tag"] == tag.name
    pre, data = a.pretrained_cfg["preprocessing"], load_data("digits", max_per_class=2)
    cpu = torch.device("cpu")
    assert cache_key(a, pre, data, "off", cpu) != cache_key(b, pre, data, "off", cpu)
    again = nets.create_model(tag.arch, weights=str(files[0]), num_classes=10)
    assert cache_key(again, pre, data, "off", cpu) == cache_key(a, pre, data, "off", cpu)
    # the fast path's precision is part of the key: float16 features on CUDA are others
    assert cache_key(a, pre, data, "auto", torch.device("cuda")) != cache_key(
        a, pre, data, "auto", cpu
    )
