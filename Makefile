# make demo: classify the sample photos with the real EfficientNet-Lite0 ImageNet weights.
# make test: the whole test suite (what CI runs).
# Both create .venv when it is missing and install the project with constraints.txt.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m nets classify samples/*.jpg --model efficientnet_lite0 --weights imagenet --top 5

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check nets weights tests
	$(VENV)/bin/ruff format --check nets weights tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix nets weights tests
	$(VENV)/bin/ruff format nets weights tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
