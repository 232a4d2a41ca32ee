"""Shared test helpers: reference models with random weights, saved as their files are."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest
import torch
from torch import nn

# Two cores: one process with two threads, or (make test) two xdist workers with one each.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


# The archs whose weights files a collected test checks against their source
# (``@pytest.mark.parity(arch, ...)``): tests/weights/test_parity.py holds every Keras tag to one.
PARITY = pytest.StashKey[set]()
COLLECTED_FILES = pytest.StashKey[set]()


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect: what the whole suite covers
def pytest_collection_modifyitems(config, items):
    marks = (m for item in items for m in item.iter_markers("parity"))
    config.stash[PARITY] = {arch for m in marks for arch in m.args}
    config.stash[COLLECTED_FILES] = {item.path.name for item in items}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own weights cache, so nothing depends on the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("NETS_CACHE_DIR", str(cache))
    yield
    # Downloaded and converted files add up to gigabytes over a run: removed as we go.
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_compiler():
    """A test that compiles leaves dynamo's caches empty for the next: every network shares
    one ``forward``, and graphs left over from earlier tests would count against dynamo's
    recompile limit of the next test that compiles (past it, it runs eagerly)."""
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    yield
    if counters["stats"]["unique_graphs"] != graphs:
        torch._dynamo.reset()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory, request):
    """A folder shared by one test module's fixtures (reference checkpoints, data sets),
    removed when the module is done: the retention policy only cleans ``tmp_path``."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm non-trivial statistics and affine terms, so that a mapping that mixes
    up two BatchNorms (or drops eps) changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                if m.weight is not None:  # Keras-style BatchNorm may have no scale
                    m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return model


def calibrate_bn(model: nn.Module, size: int, *, n: int = 16, widen: float = 1.1) -> nn.Module:
    """BatchNorm running statistics measured on ``n`` random images (one training-mode pass,
    affine terms kept), the variances then widened by ``widen``; returns the model in eval.

    With statistics drawn at random, the signal of a deep network with squeeze-excite or
    depthwise blocks dies out: every image gives the same logits to 1e-6, and a parity test
    could not see a wrong mapping. At exactly one batch's statistics some networks turn
    chaotic instead (float32 rounding grows to 1e-2 of the logits); 10% wider keeps the
    images apart and the rounding small. Parity tests check that their images differ."""
    g = torch.Generator().manual_seed(5)
    return calibrate_bn_on(model, torch.randn(n, 3, size, size, generator=g), widen=widen)


def calibrate_bn_on(model: nn.Module, x: torch.Tensor, *, widen: float = 1.0) -> nn.Module:
    """BatchNorm running statistics measured on the batch ``x``, as training leaves them (a
    plain average over one training-mode pass), variances times ``widen``; returns the model
    in eval with each BatchNorm's momentum as it was."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the pass
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
        m.running_var.mul_(widen)
    return model.eval()


def assert_input_matters(logits: torch.Tensor) -> None:
    """A parity comparison means something: the logits are not near zero, and the batch's
    first two images get logits that differ by over 1% of their scale (with BatchNorm
    statistics that kill the signal, a wrong mapping would pass unseen)."""
    scale = logits.abs().max()
    assert scale > 1e-2, f"logits up to {scale:.2g}: a comparison of near-zero numbers"
    spread = (logits[0] - logits[1]).abs().max() / scale
    assert spread > 1e-2, f"the two images' logits differ by {spread:.2g} of their scale"


def assert_same_logits(ours: nn.Module, ref: nn.Module, x: torch.Tensor, **tol) -> None:
    """``ours(x)`` equals ``ref(x)`` on a batch of at least two images that the reference
    tells apart (``assert_input_matters``)."""
    assert x.shape[0] >= 2, "a parity batch needs two images to show it depends on them"
    with torch.no_grad():
        expected = ref(x)
        torch.testing.assert_close(ours(x), expected, **tol)
    assert_input_matters(expected)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def save_reference(tmp_path):
    """Save a reference model's state dict the way its publisher distributes it."""

    def save(model: nn.Module, name: str = "reference.pth") -> str:
        path = tmp_path / name
        torch.save(model.state_dict(), path)
        return str(path)

    return save


def run_main(capsys, *argv: str) -> tuple[int, list[str]]:
    """``python -m train ARGV`` in this process: its exit code and its stderr lines."""
    from train.__main__ import main

    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def one_line(code: int, err: list[str], *needles: str) -> str:
    """Exit code 2 and exactly one ``error: ...`` line that names every needle."""
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


@contextlib.contextmanager
def tf32(allowed: bool):
    """cuDNN's and cuBLAS's TF32 for float32 set to ``allowed``, restored by hand afterwards:
    pytest's monkeypatch cannot undo ``torch.backends.cuda.matmul.allow_tf32`` (it tries to
    delete the attribute of torch's module object and raises at teardown)."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.fixture
def no_tf32():
    """True float32 on CUDA for the test (cuDNN convolutions default to TF32)."""
    with tf32(False):
        yield


class CountingBackend:
    """A torch.compile backend that runs each graph as traced and counts its calls: dynamo's
    caches and limits are met exactly as with inductor, at a fraction of its compile time."""

    def __init__(self) -> None:
        self.runs: list[int] = []  # calls of each compiled graph, in the order compiled

    def __call__(self, gm: torch.fx.GraphModule, _example_inputs: list) -> object:
        index = len(self.runs)
        self.runs.append(0)

        def run(*args: object) -> object:
            self.runs[index] += 1
            return gm.forward(*args)

        return run
