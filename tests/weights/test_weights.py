"""The weights package: formats, the store, the registry, conversion and its errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
import torchvision
from conftest import randomize_bn
from PIL import Image

import nets
import weights
from weights import registry, store


@pytest.fixture(scope="module")
def resnet18_ref():
    torch.manual_seed(0)
    return randomize_bn(torchvision.models.resnet18()).eval()


@pytest.fixture
def tv_file(resnet18_ref, save_reference):
    return save_reference(resnet18_ref, "resnet18-random.pth")


# -- formats ---------------------------------------------------------------------------------
def test_formats_are_recognised_by_content_not_name(resnet18_ref, tmp_path):
    sd = resnet18_ref.state_dict()
    zip_file, legacy = tmp_path / "weights.bin", tmp_path / "weights.safetensors"
    torch.save(sd, zip_file)
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)  # misleading suffix on purpose
    ours = tmp_path / "ours.pth"
    weights.save_safetensors({"stem.conv.weight": torch.zeros(2)}, ours, {"format": "nets"})
    assert weights.sniff_format(zip_file) == "torch-zip"
    assert weights.sniff_format(legacy) == "torch-pickle"
    assert weights.sniff_format(ours) == "safetensors"
    for f in (zip_file, legacy):
        loaded, _ = weights.read_checkpoint(f)
        assert loaded.keys() == sd.keys()


def test_wrapped_and_dataparallel_checkpoints_are_unwrapped(resnet18_ref, tmp_path):
    sd = {f"module.{k}": v for k, v in resnet18_ref.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": sd}, path)
    model = nets.create_model("resnet18", weights=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), resnet18_ref(x))


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint at all")
    with pytest.raises(weights.CheckpointFormatError, match="is not a checkpoint"):
        nets.create_model("resnet18", weights=text)
    with pytest.raises(weights.CheckpointFormatError, match="is not a checkpoint"):
        nets.create_model("resnet18", weights="samples/chelsea.jpg")


@pytest.mark.parametrize("kind", ["zip", "legacy", "safetensors"])
def test_truncated_checkpoint(kind, tv_file, tmp_path):
    if kind == "safetensors":
        src = tmp_path / "full.safetensors"
        weights.save_safetensors(torch.load(tv_file, weights_only=True), src, {})
    elif kind == "legacy":
        src = tmp_path / "full.pth"
        torch.save(
            torch.load(tv_file, weights_only=True), src, _use_new_zipfile_serialization=False
        )
    else:
        src = tv_file
    data = open(src, "rb").read()
    cut = tmp_path / f"cut-{kind}.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(weights.CorruptCheckpointError, match="truncated or corrupted"):
        nets.create_model("resnet18", weights=cut)


def test_corrupted_bytes_inside_a_zip_checkpoint(tv_file, tmp_path):
    data = bytearray(open(tv_file, "rb").read())
    data[len(data) - 200 : len(data) - 100] = b"\x00" * 100  # the zip's central directory
    bad = tmp_path / "bad.pth"
    bad.write_bytes(bytes(data))
    with pytest.raises(weights.CorruptCheckpointError):
        nets.create_model("resnet18", weights=bad)


def test_checkpoint_of_another_architecture_lists_every_problem(tv_file):
    with pytest.raises(weights.IncompatibleCheckpointError) as err:
        nets.create_model("resnet34", weights=tv_file)
    e = err.value
    assert e.missing and not e.unexpected  # resnet18 has a subset of resnet34's blocks
    assert "resnet34" in str(e) and "missing" in str(e) and "\n" not in str(e)
    # resnet18's keys plus one stranger, into resnet50: all three kinds in one error.
    sd = torch.load(tv_file, weights_only=True)
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tv_file)
    with pytest.raises(weights.IncompatibleCheckpointError) as err:
        nets.create_model("resnet50", weights=tv_file)
    e = err.value
    assert e.missing and e.unexpected and e.mismatched
    msg = str(e)
    assert "missing" in msg and "unexpected" in msg and "mis-shaped" in msg


def test_cli_reports_a_bad_checkpoint_in_one_line(tv_file):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nets",
            "classify",
            "samples/chelsea.jpg",
            "--model",
            "resnet50",
            "--weights",
            tv_file,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


# -- store -----------------------------------------------------------------------------------
def _local_tag(tv_file, **changes):
    tag = registry.get_tag("resnet18.tv_in1k")
    url = f"file://{tv_file}"
    changes = {"url": url, "sha256": weights.sha256_of(tv_file), **changes}
    return dataclasses.replace(tag, **changes)


def test_download_verify_convert_and_cache(tv_file, resnet18_ref, monkeypatch):
    tag = _local_tag(tv_file)
    monkeypatch.setitem(registry._TAGS, tag.name, tag)
    model = nets.create_model("resnet18", weights="imagenet").eval()
    assert model.pretrained_cfg["tag"] == "resnet18.tv_in1k"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), resnet18_ref(x))
    downloaded = weights.cache_dir() / "downloads" / tag.file_name
    converted = store.converted_path(tag)
    assert downloaded.is_file() and converted.is_file()
    _, meta = weights.read_checkpoint(converted)
    assert meta["tag"] == tag.name and meta["source"] == "torchvision"
    assert meta["source_sha256"] == tag.sha256 and meta["resize_size"] == "256"
    # The converted file alone is enough from now on.
    downloaded.unlink()
    monkeypatch.setitem(
        registry._TAGS, tag.name, dataclasses.replace(tag, url="http://127.0.0.1:9/x")
    )
    again = nets.create_model("resnet18", weights="resnet18.tv_in1k").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), resnet18_ref(x))
    assert not [p for p in weights.cache_dir().rglob("*.part")]


def test_checksum_mismatch_leaves_no_file(tv_file, monkeypatch):
    tag = _local_tag(tv_file, sha256="0123abcd")
    monkeypatch.setitem(registry._TAGS, tag.name, tag)
    with pytest.raises(weights.ChecksumError, match="sha256"):
        nets.create_model("resnet18", weights="imagenet")
    assert not list((weights.cache_dir() / "downloads").iterdir())


def test_unreachable_url_says_what_to_fetch(tv_file, monkeypatch):
    tag = _local_tag(tv_file)
    tag = dataclasses.replace(tag, url="http://127.0.0.1:9/models/resnet18-f37072fd.pth")
    monkeypatch.setitem(registry._TAGS, tag.name, tag)
    with pytest.raises(weights.DownloadError) as err:
        nets.create_model("resnet18", weights="resnet18.tv_in1k")
    msg = str(err.value)
    assert tag.url in msg and "pass its path" in msg and "\n" not in msg


def test_unknown_tag_and_missing_file():
    with pytest.raises(weights.UnknownTagError, match="did you mean resnet50.tv_in1k"):
        nets.create_model("resnet50", weights="resnet50.tv_in1")
    with pytest.raises(weights.CheckpointFormatError, match="neither a registered tag"):
        nets.create_model("resnet50", weights="/no/such/file.pth")
    with pytest.raises(weights.UnknownTagError, match="is for 'resnet50'"):
        nets.create_model("resnet18", weights="resnet50.tv_in1k")


# -- registry facts --------------------------------------------------------------------------
def test_registry_matches_torchvision_metadata():
    for name in weights.list_tags("*.tv*_in1k"):
        tag = weights.get_tag(name)
        version = "IMAGENET1K_V2" if ".tv2_" in name else "IMAGENET1K_V1"
        tv = torchvision.models.get_model_weights(tag.arch)[version]
        assert tag.url == tv.url
        assert tv.url.rsplit("-", 1)[1].startswith(tag.sha256)
        assert tag.num_params == tv.meta["num_params"]
        assert tag.top1 == pytest.approx(tv.meta["_metrics"]["ImageNet-1K"]["acc@1"])
        assert tag.top5 == pytest.approx(tv.meta["_metrics"]["ImageNet-1K"]["acc@5"])
        t = tv.transforms()
        p = tag.preprocessing
        assert (p.resize_size, p.input_size) == (t.resize_size[0], t.crop_size[0])
        assert p.interpolation == t.interpolation.value
        assert list(p.mean) == t.mean and list(p.std) == t.std
        default = torchvision.models.get_model_weights(tag.arch).DEFAULT
        assert (weights.default_tag(tag.arch) == name) == (default == tv)


def test_categories_are_torchvisions():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    assert list(weights.categories()) == _IMAGENET_CATEGORIES


def test_transforms_match_torchvision_presets():
    image = Image.open("samples/coffee.jpg").convert("RGB")
    ours = weights.transforms("resnet50.tv2_in1k")(image)
    ref = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()(image)
    assert ours.shape == ref.shape == (3, 224, 224)
    torch.testing.assert_close(ours, ref, atol=2e-2, rtol=0)  # PIL vs tensor resampling
    assert (ours - ref).abs().mean() < 2e-3


def test_decode_predictions_best_first():
    logits = torch.full((2, 1000), -5.0)
    logits[0, 285], logits[0, 281] = 4.0, 3.0
    logits[1, 967] = 6.0
    decoded = weights.decode_predictions(logits, top=3)
    assert [d[0] for d in decoded[0][:2]] == [285, 281]
    assert decoded[0][0][1] == "Egyptian cat" and decoded[1][0][1] == "espresso"
    assert decoded[0][0][2] > decoded[0][1][2] > decoded[0][2][2]
    probs = logits.softmax(1)
    assert decoded[1][0][2] == pytest.approx(float(probs[1, 967]))
    with pytest.raises(ValueError, match="10 classes"):
        weights.decode_predictions(torch.zeros(1, 10), categories_=["a"] * 3)


# -- conversions through the command line ----------------------------------------------------
def test_cli_convert_then_info_then_load(tv_file, resnet18_ref, tmp_path):
    out = tmp_path / "resnet18.safetensors"
    run = [sys.executable, "-m", "weights"]
    proc = subprocess.run(
        [sys.executable, "-m", "nets", "convert", tv_file, "--arch", "resnet18", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    info = subprocess.run(run + ["info", str(out)], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["container"] == "safetensors" and data["layout"] == "nets"
    assert data["metadata"]["arch"] == "resnet18"
    assert data["metadata"]["source_sha256"] == weights.sha256_of(tv_file)
    model = nets.create_model("resnet18", weights=out).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), resnet18_ref(x))
    bad = subprocess.run(run + ["info", "samples/rocket.jpg"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


def test_first_conv_adapts_to_other_channel_counts(tv_file, resnet18_ref):
    x = torch.randn(2, 1, 64, 64)
    gray = nets.create_model("resnet18", weights=tv_file, in_chans=1).eval()
    six = nets.create_model("resnet18", weights=tv_file, in_chans=6).eval()
    with torch.no_grad():
        rgb = resnet18_ref(x.expand(-1, 3, -1, -1))
        torch.testing.assert_close(gray(x), rgb)
        # Six channels carrying the RGB image twice give the RGB response.
        x3 = torch.randn(2, 3, 64, 64)
        torch.testing.assert_close(six(torch.cat([x3, x3], 1)), resnet18_ref(x3))


def test_block_grouping_tables_agree_with_the_models():
    # The MobileNet converters read our grouping of blocks into stages from the model's keys
    # (the loading path hands them over); their tables serve only a conversion without a
    # model, and must say the same.
    from weights.keras import mobilenet, record
    from weights.layouts import block_prefixes
    from weights.torchvision import mobilenet as torchvision_mobilenet

    tables = {
        arch: torchvision_mobilenet._positions(arch) for arch in torchvision_mobilenet.STAGE_BLOCKS
    }
    tables["keras_mobilenet"] = record.by_resolution(mobilenet.MOBILENET_STRIDES)
    tables["keras_mobilenet_v2"] = record.by_resolution(mobilenet.MOBILENET_V2_STRIDES)
    for arch, table in tables.items():
        with torch.device("meta"):
            keys = list(nets.create_model(arch).state_dict())
        assert block_prefixes(keys, record.DEPTHWISE) == table, arch
