# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv from requirements.txt when it is missing (or older than requirements.txt).
# On an accelerator: `make venv ACCEL=cuda12` (NVIDIA GPU) or `make venv ACCEL=tpu` (Cloud TPU)
# adds requirements-$(ACCEL).txt, the plugin pinned to the same jax; `make test` stays CPU-only.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo
ACCEL ?= cpu
ifeq ($(filter $(ACCEL),cpu cuda12 tpu),)
$(error ACCEL must be cpu, cuda12 or tpu, got '$(ACCEL)')
endif
# requirements-$(ACCEL).txt includes requirements.txt.
REQUIREMENTS := $(if $(filter-out cpu,$(ACCEL)),requirements-$(ACCEL).txt,requirements.txt)
STAMP := $(VENV)/.installed-$(ACCEL)

.PHONY: demo test test-fast venv bench clean

$(STAMP): requirements.txt $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQUIREMENTS)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m segtube_jax.demo --workdir $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -ra --durations=15 -n 2 --dist loadfile tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(PY) bench/train_step.py
	$(PY) bench/temporal.py
	$(PY) bench/segment.py
	$(PY) bench/evaluate_speed.py
	$(PY) bench/accelerator.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
