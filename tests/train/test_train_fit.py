"""train: every strategy end to end on the bundled digits, freezing, the feature cache,
checkpoints, export, kill-and-resume, two processes, and the error paths of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import nets
import train
from train.__main__ import main
from train.datasets import eval_transform, load_data
from train.features import FeaturePass, cache_info, extract

ROOT = Path(__file__).resolve().parents[2]
LITE0 = "efficientnet_lite0"
# Small real data for the 224x224 pretrained network: a few digits per class.
SMALL = dict(data="digits", max_per_class=3, batch_size=16, num_workers=0, progress=False)


def run_module(*args, env=None, check=True):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def lite0_imagenet():
    return nets.create_model(LITE0, weights="imagenet", num_classes=10).state_dict()


@pytest.mark.slow
def test_lenet5_from_scratch_on_digits_reaches_97_percent(tmp_path):
    out = tmp_path / "lenet"
    res = train.fit(model="lenet5", data="digits", strategy="scratch", epochs=10,
                    num_workers=0, progress=False, out=str(out))  # fmt: skip
    assert res["strategy"] == "scratch" and res["val_images"] == 359
    assert res["top1"] >= 0.97, res["top1"]
    assert res["top5"] >= res["top1"]
    for name in ("checkpoint.pt", "best.safetensors", "log.jsonl", "metrics.json", "loss.png",
                 "accuracy.png", "confusion.png"):  # fmt: skip
        assert (out / name).is_file(), name
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 11))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["top1"] == res["top1"] and len(metrics["confusion"]) == 10
    assert sum(map(sum, metrics["confusion"])) == 359
    assert set(metrics["per_class"]) == {str(i) for i in range(10)}

    # The export loads through the public API, strictly, with its classes and preprocessing.
    model = nets.create_model("lenet5", weights=str(out / "best.safetensors"), num_classes=10)
    assert model.pretrained_cfg["preprocessing"].input_size == 32
    assert model.pretrained_cfg.preprocessing_from.startswith("the metadata of")
    assert model.pretrained_cfg.class_names == tuple(str(i) for i in range(10))
    ev = train.evaluate_checkpoint(out / "best.safetensors", "digits")
    assert ev["top1"] == pytest.approx(res["top1"])
    # predict writes a CSV
    images, labels = train.load_digits_arrays()
    from train.datasets import digits_image

    (tmp_path / "images").mkdir()
    for i in range(3):
        digits_image(images[i]).resize((32, 32)).save(tmp_path / "images" / f"img{i}.png")
    csv_path = tmp_path / "pred.csv"
    assert main(["predict", "--checkpoint", str(out / "best.safetensors"), str(tmp_path / "images"),
                 "--output", str(csv_path)]) == 0  # fmt: skip
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "path,prediction,confidence,top" and len(rows) == 4
    assert [r.split(",")[1] for r in rows[1:]] == [str(int(labels[i])) for i in range(3)]


@pytest.mark.parametrize(
    "options, dtype",
    [
        (dict(amp="bf16"), "bfloat16"),
        (dict(amp="fp16", clip_grad=1.0, accum_steps=2), "float16"),  # the gradient scaler
        (dict(channels_last=False), None),  # channels_last is the default on the CPU
        (dict(compile=True), None),
    ],
    ids=["bf16", "fp16-scaler-clip-accum", "no-channels-last", "compile"],
)
def test_loop_options_train_on_the_cpu(tmp_path, capsys, options, dtype):
    """The options a GPU run uses, run on the CPU (autocast, the fp16 gradient scaler with
    unscaling for clipping, channels_last, torch.compile): LeNet-5 still learns the digits
    and its export loads into a plain model."""
    out = tmp_path / "run"
    # 4 epochs at lr 1e-2 reach 0.87-0.89 here (8 at the default 3e-3 did the same work
    # twice over): each option's code path runs from the first step.
    res = train.fit(model="lenet5", data="digits", strategy="scratch", epochs=4, lr=1e-2,
                    max_per_class=60, num_workers=0, progress=False, out=str(out),
                    **options)  # fmt: skip
    header = next(ln for ln in capsys.readouterr().out.splitlines() if "process(es)" in ln)
    assert header.endswith(f"| {dtype}") if dtype else "float16" not in header, header
    channels_last = options.get("channels_last", True)
    assert ("| channels_last" in header) == channels_last, header
    assert res["channels_last"] is channels_last
    assert res["top1"] >= 0.8, res["top1"]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert set(state["model"]) == set(nets.create_model("lenet5").state_dict())
    if options.get("amp") == "fp16":
        assert state["scaler"]["scale"] > 0  # the scaler ran and its state is resumable
    model = nets.create_model("lenet5", weights=str(out / "best.safetensors")).eval()
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_channels_last_by_default_except_segmentation_on_the_cpu():
    from train.tasks import task_for

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    classification, segmentation = task_for("classification"), task_for("segmentation")
    assert classification.default_channels_last(cpu)
    assert not segmentation.default_channels_last(cpu)
    assert classification.default_channels_last(cuda)
    assert segmentation.default_channels_last(cuda)


def _fit_digits(out: Path, **options) -> dict:
    return train.fit(model="lenet5", data="digits", strategy="scratch", epochs=2, lr=1e-2,
                     max_per_class=30, num_workers=0, progress=False, out=str(out),
                     **options)  # fmt: skip


def test_normalising_on_the_device_repeats_the_run_exactly(tmp_path, capsys):
    """The uint8 hand-over (CUDA's default) forced on the CPU: the same batches reach the
    model, so the run's metrics and weights are bit for bit those of the loader's
    normalising."""
    from train.tasks.classification import default_normalize_on_device

    assert default_normalize_on_device(torch.device("cuda"))
    assert not default_normalize_on_device(torch.device("cpu"))
    ref = _fit_digits(tmp_path / "loader")
    assert "normalised on the device" not in capsys.readouterr().out
    res = _fit_digits(tmp_path / "device", normalize_on_device=True)
    header = next(ln for ln in capsys.readouterr().out.splitlines() if "process(es)" in ln)
    assert "| normalised on the device" in header, header
    assert (ref["normalize_on_device"], res["normalize_on_device"]) == (False, True)
    assert [h["train_loss"] for h in res["history"]] == [h["train_loss"] for h in ref["history"]]
    assert (res["top1"], res["confusion"]) == (ref["top1"], ref["confusion"])
    a, b = (load_file(tmp_path / d / "best.safetensors") for d in ("loader", "device"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_run(tmp_path, capsys):
    """The trainer's defaults on CUDA (bf16 autocast, channels_last, uint8 batches
    normalised on the GPU): LeNet-5 learns the digits, the device normalises exactly as the
    loader would, and the checkpoint loads on the CPU."""
    from train.augment import BatchNormalize
    from train.loop import batches

    res = train.fit(model="lenet5", data="digits", strategy="scratch", epochs=4, lr=1e-2,
                    max_per_class=60, num_workers=2, progress=False, device="cuda",
                    out=str(tmp_path / "run"))  # fmt: skip
    header = next(ln for ln in capsys.readouterr().out.splitlines() if "process(es)" in ln)
    for part in ("on cuda", "| channels_last", "| normalised on the device", "| bfloat16"):
        assert part in header, header
    assert res["normalize_on_device"] and res["top1"] >= 0.8, res["top1"]
    model = nets.create_model("lenet5", weights=str(tmp_path / "run" / "best.safetensors"))
    assert model.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 10)

    pre = model.pretrained_cfg.preprocessing
    normalize = BatchNormalize(pre, 1)
    u8 = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    loader = [(u8, torch.arange(8), [])]
    ((on_gpu, _),) = batches(loader, torch.device("cuda"), channels_last=True, normalize=normalize)
    assert on_gpu.is_cuda and on_gpu.is_contiguous(memory_format=torch.channels_last)
    diff = (on_gpu.cpu() - normalize(u8)).abs().max().item()
    print(f"\nnormalised on the GPU against the loader: max abs diff {diff:.2e}")
    assert diff <= 1e-6  # the same two float32 operations (scale, then subtract and divide)


def test_linear_probe_caches_features_equal_to_a_fresh_forward(tmp_path, lite0_imagenet):
    cache = tmp_path / "cache"
    res = train.fit(model=LITE0, strategy="linear-probe", epochs=3, cache_dir=str(cache),
                    out=str(tmp_path / "probe"), **SMALL)  # fmt: skip
    assert res["strategy"] == "linear-probe" and res["weights"] == "imagenet"
    files = list(cache.glob("*.safetensors"))
    assert len(files) == 1 and res["feature_cache"] == str(files[0])
    cached = load_file(str(files[0]))
    assert cached["train_x"].shape == (30, 1280)

    model = nets.create_model(LITE0, weights="imagenet", num_classes=10).eval()
    pre = model.pretrained_cfg["preprocessing"]
    split = load_data("digits", max_per_class=3)
    fresh = []
    with torch.no_grad():
        for item, _ in split.train:
            from train.datasets import ImageDataset

            x = ImageDataset([(item, 0)], eval_transform(pre, 3))[0][0].unsqueeze(0)
            fresh.append(model.forward_head(model.forward_features(x), pre_logits=True))
    torch.testing.assert_close(cached["train_x"], torch.cat(fresh), rtol=1e-4, atol=1e-5)
    # Both through the fast path, whose per-shape choice (oneDNN graph or eager) is timed
    # afresh each time: equal within float32 reordering.
    x, _, _ = extract(model, split.val, pre, FeaturePass(torch.device("cpu")))
    torch.testing.assert_close(cached["val_x"], x, rtol=1e-4, atol=1e-5)
    info = cache_info(files[0])
    assert info["fast_path"] == "float32" and float(info["images_per_s"]) > 0
    assert res["throughput"]["feature_images_per_s"] == float(info["images_per_s"])

    # Frozen: everything but the classifier equals the ImageNet weights.
    state = torch.load(tmp_path / "probe" / "checkpoint.pt", weights_only=True)["model"]
    for k, v in lite0_imagenet.items():
        if not k.startswith("head.fc."):
            torch.testing.assert_close(state[k], v, rtol=0, atol=0, msg=k)
    assert not torch.equal(state["head.fc.weight"], lite0_imagenet["head.fc.weight"])

    # A second run reads the cache instead of running the backbone.
    again = train.fit(model=LITE0, strategy="linear-probe", epochs=3, cache_dir=str(cache),
                      out=str(tmp_path / "probe2"), **SMALL)  # fmt: skip
    assert again["feature_cache"] == res["feature_cache"] and again["top1"] == res["top1"]


def test_feature_extract_freezes_backbone_and_batchnorm(tmp_path, lite0_imagenet):
    res = train.fit(model=LITE0, strategy="feature-extract", epochs=1,
                    out=str(tmp_path / "fe"), **SMALL)  # fmt: skip
    assert res["strategy"] == "feature-extract"
    state = torch.load(tmp_path / "fe" / "checkpoint.pt", weights_only=True)["model"]
    for k, v in lite0_imagenet.items():  # parameters and BatchNorm running statistics
        if k.startswith(("stem.", "stages.")):
            torch.testing.assert_close(state[k], v, rtol=0, atol=0, msg=k)
    assert not torch.equal(state["head.fc.weight"], lite0_imagenet["head.fc.weight"])


def test_fine_tune_from_stage_with_frozen_batchnorm(tmp_path, lite0_imagenet):
    res = train.fit(model=LITE0, strategy="fine-tune", unfreeze_from=4, freeze_bn=True,
                    epochs=1, lr=1e-2, out=str(tmp_path / "ft"), **SMALL)  # fmt: skip
    assert res["strategy"] == "fine-tune"
    state = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)["model"]
    bn = {n for n, m in nets.create_model(LITE0).named_modules()
          if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}  # fmt: skip
    changed = []
    for k, v in lite0_imagenet.items():
        module = k.rsplit(".", 1)[0]
        if k.startswith(("stem.", "stages.0.", "stages.1.", "stages.2.", "stages.3.")) or (
            module in bn
        ):
            torch.testing.assert_close(state[k], v, rtol=0, atol=0, msg=k)
        elif not torch.equal(state[k], v):
            changed.append(k)
    assert any(k.startswith("stages.4.") for k in changed)


def test_auto_explains_its_choice(tmp_path, capsys):
    res = train.fit(
        model="lenet5", strategy="auto", epochs=1, max_per_class=10, data="digits",
        num_workers=0, progress=False, out=str(tmp_path / "a"),
    )  # fmt: skip
    assert res["strategy"] == "scratch" and "no pretrained weights" in res["reason"]
    assert "auto: chose scratch" in capsys.readouterr().out
    res = train.fit(model=LITE0, strategy="auto", epochs=1, cache_dir=str(tmp_path / "c"),
                    out=str(tmp_path / "b"), **SMALL)  # fmt: skip
    assert res["strategy"] == "linear-probe" and "3 training images" in res["reason"]


def _fit_args(out, *extra):
    return ["-m", "train", "fit", "--model", "lenet5", "--data", "digits", "--strategy",
            "scratch", "--epochs", "3", "--max-per-class", "30", "--num-workers", "0",
            "--no-progress", "--out", str(out), *extra]  # fmt: skip


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    run_module(*_fit_args(tmp_path / "whole"))
    killed = run_module(*_fit_args(tmp_path / "killed"),
                        env={"TRAIN_TEST_KILL_AFTER_EPOCH": "2"}, check=False)  # fmt: skip
    assert killed.returncode == -9, killed.stderr  # SIGKILL after epoch 2's checkpoint
    assert not (tmp_path / "killed" / "metrics.json").exists()
    state = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    # Resumed with another --strategy on the command line: the checkpoint's wins, and
    # the log says so (it is decided before anything depends on it).
    resumed = run_module(*_fit_args(tmp_path / "killed", "--resume", "--strategy",
                                    "feature-extract"))  # fmt: skip
    assert "resuming" in resumed.stdout
    assert "the checkpoint trains scratch; --strategy feature-extract is ignored" in (
        resumed.stdout
    )

    a = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    b = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    for key in ("top1", "top5", "per_class", "confusion", "best_epoch"):
        assert a[key] == b[key], key
    la = [json.loads(x) for x in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    timings = ("seconds", "train_images_per_s", "data_wait")  # the machine's, not the run's
    for ra, rb in zip(la, lb, strict=True):
        for key in timings:
            assert ra.pop(key) >= 0 and rb.pop(key) >= 0
        assert ra == rb
    # eval on the last checkpoint gives the last epoch's validation figures.
    ev = train.evaluate_checkpoint(tmp_path / "whole" / "checkpoint.pt", "digits")
    assert ev["top1"] == la[-1]["val_top1"] and ev["count"] == 300
    wa = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["model"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path):
    out = tmp_path / "ddp"
    proc = run_module("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      *_fit_args(out)[0:], env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert "2 process(es) on cpu" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["val_images"] == 300  # every validation image once, over both ranks
    log = (out / "log.jsonl").read_text().splitlines()
    assert len(log) == 3  # written by rank 0 only
    assert proc.stdout.count("best epoch") == 1


@pytest.mark.slow
def test_two_process_linear_probe_equals_one_process(tmp_path):
    """Every rank trains the same head on the same cached features: two processes give the
    single process's metrics and head exactly, each validation image counted once."""
    cache = tmp_path / "cache"
    args = ["-m", "train", "fit", "--model", LITE0, "--data", "digits", "--strategy",
            "linear-probe", "--epochs", "4", "--max-per-class", "3", "--num-workers", "0",
            "--no-progress", "--cache-dir", str(cache)]  # fmt: skip
    env = {"OMP_NUM_THREADS": "1"}  # the same kernels in both runs, bit for bit
    run_module(*args, "--out", str(tmp_path / "one"), env=env)
    proc = run_module("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      *args, "--out", str(tmp_path / "two"), env=env)  # fmt: skip
    assert "2 process(es) on cpu" in proc.stdout and "features: cached" in proc.stdout
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["world_size"] == 2 and two["val_images"] == one["val_images"] == 30
    for key in ("top1", "top5", "per_class", "confusion", "best_epoch"):
        assert one[key] == two[key], key
    wa = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)["model"]
    for k in ("head.fc.weight", "head.fc.bias"):
        assert torch.equal(wa[k], wb[k]), k


def test_resume_with_other_classes_or_model_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "r"
    train.fit(model="lenet5", data="digits", strategy="scratch", epochs=1, max_per_class=5,
              num_workers=0, progress=False, out=str(out))  # fmt: skip
    from test_train_data import write_digit_folder

    folder = write_digit_folder(tmp_path / "three", per_class=4)
    base = ["fit", "--strategy", "scratch", "--num-workers", "0", "--no-progress", "--resume",
            "--out", str(out)]  # fmt: skip
    assert main([*base, "--model", "lenet5", "--data", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classes differ" in err[0], err
    assert main([*base, "--model", "mobilenet_v3_small", "--data", "digits",
                 "--max-per-class", "5"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trains 'lenet5', not 'mobilenet_v3_small'" in err[0], err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import train.loop as loop

    real = loop.compute_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss, logits = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 2 else loss), logits

    monkeypatch.setattr(loop, "compute_loss", poisoned)
    out = tmp_path / "nan"
    # 10 per class: 80 training images, two batches of 64 per epoch; epoch 2 turns NaN.
    code = main(["fit", "--model", "lenet5", "--data", "digits", "--strategy", "scratch",
                 "--epochs", "3", "--max-per-class", "10", "--num-workers", "0",
                 "--no-progress", "--out", str(out)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the loss became nan at epoch 2" in err[0], err
    assert "last good checkpoint" in err[0]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_demo_table():
    from train.demo import format_table

    row = dict(model="lenet5", strategy="scratch", weights=None, epochs_run=20, best_epoch=16,
               top1=0.9916, top5=1.0, seconds=71.2)  # fmt: skip
    table = format_table([row])
    assert "| lenet5 | scratch | none | 20 (best 16) | 99.16% | 100.00% | 71 s |" in table
