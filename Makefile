# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv from requirements.txt when it is missing (or older than requirements.txt).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo

.PHONY: demo test test-fast venv bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m segtube_jax.demo --workdir $(DEMO_DIR)

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -ra --durations=15 tests

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" tests

bench: $(VENV)/.installed
	$(PY) bench/train_step.py
	$(PY) bench/temporal.py
	$(PY) bench/segment.py
	$(PY) bench/evaluate_speed.py
	$(PY) bench/accelerator.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
