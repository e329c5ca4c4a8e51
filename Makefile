# Every target sets up what it needs: a virtual environment in .venv with the CPU build of PyTorch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := $(VENV)/.extras

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU wheel first, so the open-ended torch requirement does not pull a CUDA build
	$(PY) -m pip install --quiet "torch==2.13.0" || $(PY) -m pip install --quiet "torch>=2.4"
	$(PY) -m pip install --quiet -e ".[dev,viz]"
	touch $(STAMP)

# what the tests of other worlds and formats need: pygame, gym-pusht, minari (with jax, for its DataCollector), av
$(EXTRAS): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,viz,gym,pusht,minari,video]"
	touch $(EXTRAS)

demo: $(STAMP)
	$(VENV)/bin/amia demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check amia tests benchmarks

test: lint $(EXTRAS)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) benchmarks/ablation.py

clean:
	rm -rf $(VENV) runs
