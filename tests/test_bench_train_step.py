"""Smoke test of bench/train_step.py: one tiny step per framework, no timing assertions."""

import importlib.util
import os

import pytest

from tests.conftest import load_bench


@pytest.mark.slow  # ~30 s on 2 CPU cores, nearly all of it XLA compiling the two networks.
def test_bench_runs_tiny_config(monkeypatch, capsys):
  bench = load_bench("train_step")
  argv = ["--config", "tiny", "--steps", "1", "--warmup", "0"]
  has_torch = importlib.util.find_spec("torch") is not None
  if has_torch:
    argv.append("--torch")
    # main() sets it with setdefault; pin it here so it is restored after the test.
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
  rows = bench.main(argv)
  assert [(r.config, r.framework) for r in rows] == (
    [("tiny", "jax")] + ([("tiny", "pytorch")] if has_torch else [])
  )
  assert all(r.clips_per_s > 0 and len(r.all_clips_per_s) == 1 for r in rows)
  table = capsys.readouterr().out
  assert "clips/s" in table and "JAX/PyTorch" in table and "load average" in table
