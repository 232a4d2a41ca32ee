# make demo: transfer learning on the bundled digits: LeNet-5 from scratch and
#            EfficientNet-Lite0 with its real ImageNet weights (linear probe), then a table.
# make classify: the sample photos through the real EfficientNet-Lite0 ImageNet weights.
# make test: the whole test suite (what CI runs), one worker per core.
# make test-fast: everything not marked slow, for the development loop.
# make docs: the documentation as a static site in site/ (mkdocs, strict about broken links).
# make conformance: every model through every conformance check; writes docs/conformance.md
#                   (long: about an hour on 2 cores; make test runs a cheap part of it).
# make gpu-check: on a GPU machine, the CUDA tests and a short CUDA benchmark (one folder).
# make gpu-train-check: on a GPU machine, the trainer's loop against its bare step (one folder).
# make gpu-all: both, into one folder (OUT/check, OUT/train) packed once with PACK=1: one
#               device call, one archive back (at most 8 files come back from one).
# Both create .venv when it is missing and install the project with constraints.txt.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo classify test test-fast docs conformance lint format clean gpu-check gpu-train-check gpu-all

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m train demo --out runs/demo

classify: $(STAMP)
	$(PY) -m nets classify samples/*.jpg --model efficientnet_lite0 --weights imagenet --top 5

# One pytest worker per core, one torch thread each: on 2 cores about 1.3-2x faster than
# one process with two threads, which contend with each other.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -n auto -m "not slow and not conformance"

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

conformance: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.conformance -o docs/conformance.md

# On the GPU machine, from source (no venv, no install): ../shared/GPU.md. Their settings are
# environment variables or make variables (DEVICE, PY, OUT, PLAN, PACK...: the scripts'
# headers). A device call returns what its command leaves in $OUT, which the scripts would
# also read as their results folder: give them another and copy the archive there.
#   make gpu-all OUT=/tmp/gpu-all PACK=1; cp /tmp/gpu-all.tar.gz /tmp/gpu-all/summary.txt "$OUT"/
gpu-check:
	bash benchmarks/gpu_check.sh

gpu-train-check:
	bash benchmarks/gpu_train_check.sh

# Worst case 470 s: gpu-check's 300 and gpu-train-check's 170 (their headers).
gpu-all:
	bash -c '. benchmarks/gpu_preamble.sh && run_all'

lint: $(STAMP)
	$(VENV)/bin/ruff check common nets weights train benchmarks tests docs/_hooks hubconf.py
	$(VENV)/bin/ruff format --check common nets weights train benchmarks tests docs/_hooks hubconf.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix common nets weights train benchmarks tests docs/_hooks hubconf.py
	$(VENV)/bin/ruff format common nets weights train benchmarks tests docs/_hooks hubconf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
