"""Multi-host data parallelism: two processes on localhost train as one.

Two worker processes (tests/multihost_worker.py; 1 CPU device each, cross-process collectives
through gloo) join through ``config.distributed='auto'`` and the JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID environment, train the tiny config for 3 steps with the pmap
step, then resume a copy of that workdir from its step-2 checkpoint. Meanwhile this process
trains the same config alone, for the reference.

The model is the tiny one made leaner still (one shared trunk, one LSTM layer, XLA's conv3d):
the second process cannot use the persistent compilation cache (JAX writes it from process 0
only and keys it per process), so it compiles every program of every run, and on 2 cores that
compile time is the test's time.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from segtube_jax.errors import ConfigError
from segtube_jax.training import checkpointing, distributed, input_pipeline, train_and_evaluate
from tests.conftest import PROJECT_ROOT, tiny_training_config

# Dropout off: its masks derive from the device index, and one device of the reference holds
# what two devices hold here. SGD: Adam's first step is ~lr * sign(g), which would turn float
# reduction-order noise in tiny gradients into full-size differences. Constant learning rate.
OVERRIDES = {
  "model.dropout_rate": 0.0,
  "optimizer.name": "sgd",
  "optimizer.schedule": "constant",
  "model.shared_trunk": True,
  "model.lstm_layers": 1,
  "model.conv_norm": "none",
  "model.input_diff": False,
  "model.feature_skip": False,
  "model.conv_impl": "conv3d",
}
NUM_PROCESSES = 2
TIMEOUT_S = (
  300  # The job took 128-151 s on 2 cores shared with a load of 11-15; it needs ~70 CPU-s.
)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(
  spec_path: pathlib.Path, out: pathlib.Path, cache: pathlib.Path
) -> list[tuple[subprocess.Popen, pathlib.Path]]:
  port = _free_port()
  procs = []
  for i in range(NUM_PROCESSES):
    env = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      XLA_FLAGS="--xla_force_host_platform_device_count=1",
      JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
      JAX_NUM_PROCESSES=str(NUM_PROCESSES),
      JAX_PROCESS_ID=str(i),
      JAX_COMPILATION_CACHE_DIR=str(cache),
    )
    log = out / f"process{i}.log"
    with open(log, "w", encoding="utf-8") as f:
      procs.append(
        (
          subprocess.Popen(
            [sys.executable, "tests/multihost_worker.py", str(spec_path), str(out)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
          ),
          log,
        )
      )
  return procs


def _finish(procs, deadline: float) -> list[str]:
  """Waits for every worker; on timeout or failure dumps their stacks, kills them and fails."""
  # One failed worker leaves the other blocked in a collective: stop waiting at the first failure.
  while (
    time.time() < deadline
    and any(p.poll() is None for p, _ in procs)
    and not any(p.poll() not in (None, 0) for p, _ in procs)
  ):
    time.sleep(0.2)
  hung = [proc for proc, _ in procs if proc.poll() is None]
  for proc in hung:
    proc.send_signal(signal.SIGUSR1)  # faulthandler: where each one is stuck.
  if hung:
    time.sleep(1.0)
  for proc in hung:
    proc.kill()
    proc.wait()
  logs = [log.read_text(errors="replace") for _, log in procs]
  tails = "\n".join(
    f"--- process {i} (rc {p.returncode}) ---\n{text[-4000:]}"
    for i, ((p, _), text) in enumerate(zip(procs, logs))
  )
  assert not hung, f"workers killed (still running; time limit {TIMEOUT_S} s):\n{tails}"
  assert all(p.returncode == 0 for p, _ in procs), tails
  return logs


def _flat(params) -> dict[str, np.ndarray]:
  return {
    jax.tree_util.keystr(k): np.asarray(v)
    for k, v in jax.tree_util.tree_flatten_with_path(params)[0]
  }


def _npz(path: pathlib.Path) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], **tolerance) -> None:
  assert a.keys() == b.keys() and a
  for k in a:
    if tolerance:
      np.testing.assert_allclose(a[k], b[k], err_msg=k, **tolerance)
    else:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_written_once(workdir: pathlib.Path) -> None:
  """One checkpoint tree per step, its arrays written by process 0 alone, no leftovers."""
  root = workdir / "checkpoints"
  assert sorted(p.name for p in root.iterdir()) == ["1", "2", "3"]
  for step in root.iterdir():
    assert sorted(p.name for p in step.iterdir() if p.is_dir()) == ["data", "state"]
    assert [p.name for p in (step / "state").glob("ocdbt.process_*")] == ["ocdbt.process_0"]
    assert not [p for p in step.rglob("*") if "tmp" in p.name]


def test_two_processes_train_like_one_and_resume(tiny_synthetic, tmp_path):
  config = tiny_training_config(tiny_synthetic, **OVERRIDES, **{"train.num_steps": 3})
  input_pipeline.ensure_built(config, tmp_path)  # Packed here, before three processes read it.
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  spec = {
    "dataset": str(tiny_synthetic),
    "overrides": OVERRIDES,
    "runs": [
      {"workdir": str(straight), "num_steps": 3},
      {"workdir": str(resumed), "num_steps": 3, "resume_from": [str(straight), 2]},
    ],
  }
  spec_path, out = tmp_path / "spec.json", tmp_path / "out"
  spec_path.write_text(json.dumps(spec))
  out.mkdir()
  deadline = time.time() + TIMEOUT_S
  procs = _launch(spec_path, out, tmp_path / "xla_cache")
  try:
    reference = train_and_evaluate(
      config, tmp_path / "single"
    )  # One process, one device, meanwhile.
  finally:
    logs = _finish(procs, deadline)

  infos = [
    [json.loads((out / f"run{r}_process{p}.json").read_text()) for p in range(NUM_PROCESSES)]
    for r in range(2)
  ]
  for run in infos:
    assert [
      (i["process_index"], i["process_count"], i["local_devices"], i["step"]) for i in run
    ] == [(p, NUM_PROCESSES, 1, 3) for p in range(NUM_PROCESSES)]
    # Process 0's data position is the one saved; the other's must be the same to resume.
    assert run[0]["data"] == run[1]["data"]
    assert run[0]["validation"] == run[1]["validation"]  # Summed over processes: one answer.
  params = [[_npz(out / f"run{r}_process{p}.npz") for p in range(NUM_PROCESSES)] for r in range(2)]

  # Both processes hold the same parameters, and the one checkpoint has them.
  _assert_same(params[0][0], params[0][1])
  _assert_same(params[0][0], _flat(checkpointing.latest_params(straight)[1]))
  # Equal to one process on the same global batches, up to float reduction order: here the
  # global batch's gradient is a sum over two devices, there one device sums the whole batch.
  _assert_same(
    params[0][0], _flat(checkpointing.latest_params(tmp_path / "single")[1]), rtol=1e-5, atol=1e-6
  )
  for key in ("proposal_windows", "classification_windows", "action_windows"):
    assert infos[0][0]["validation"][key] == reference[key]  # Every validation window once.
  np.testing.assert_allclose(
    infos[0][0]["validation"]["proposal_loss"], reference["proposal_loss"], rtol=1e-4
  )

  # Resumed from step 2 by both processes, it ends bit-exact where the uninterrupted run ended.
  assert all(log.count("Restored checkpoint step 2") == 1 for log in logs)
  _assert_same(params[1][0], params[0][0])
  _assert_same(params[1][1], params[0][0])
  _assert_same(_flat(checkpointing.latest_params(resumed)[1]), params[0][0])

  # Process 0 alone writes: one checkpoint tree per step, one metrics row per step, one event file.
  _assert_written_once(straight)
  _assert_written_once(resumed)
  rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["split"]) for r in rows] == [
    (1, "train"),
    (2, "train"),
    (3, "train"),
    (3, "validation"),
  ]
  assert len(list((straight / "tensorboard").iterdir())) == 1
  assert json.loads((straight / "experiment.json").read_text())["config"]["distributed"] == "auto"
  assert not any("Traceback" in log for log in logs)


def _as_process(monkeypatch, index: int, count: int) -> None:
  monkeypatch.setattr(jax, "process_index", lambda: index)
  monkeypatch.setattr(jax, "process_count", lambda: count)


def test_process_shares_make_the_single_process_batches(tiny_synthetic, tmp_path, monkeypatch):
  config = tiny_training_config(tiny_synthetic)
  data_dir, name = input_pipeline.ensure_built(config, tmp_path)
  single = [
    next(it)
    for it in [iter(input_pipeline.train_dataset(config, data_dir, name, 4)[0])]
    for _ in range(3)
  ]
  shares = []
  for p in range(2):
    _as_process(monkeypatch, p, 2)
    it = iter(input_pipeline.train_dataset(config, data_dir, name, 2)[0])
    shares.append([next(it) for _ in range(3)])
  for k, batch in enumerate(single):  # Process p holds elements p, p + 2 of each global batch.
    for p in range(2):
      for key, value in batch.items():
        np.testing.assert_array_equal(
          shares[p][k][key], value[p::2], err_msg=f"batch {k} process {p} {key}"
        )
  # Evaluation: every process steps through as many batches, since each is a collective step (3
  # processes: the 52 validation sequences make shards of 18, 17 and 17, the short ones pad),
  # and together they hold each validation window once.
  monkeypatch.undo()
  single = list(input_pipeline.eval_batches(config, data_dir, name, "validation", 1))
  counts, windows = [], 0
  for p in range(3):
    _as_process(monkeypatch, p, 3)
    batches = list(input_pipeline.eval_batches(config, data_dir, name, "validation", 1))
    counts.append(len(batches))
    windows += sum(int((b["proposal_labels"] >= 0).sum()) for b in batches)
  assert counts == [-(-len(single) // 3)] * 3 and len(single) % 3
  assert windows == sum(int((b["proposal_labels"] >= 0).sum()) for b in single) > 0


def test_distributed_modes(monkeypatch):
  jax.devices()  # This process computes with JAX already, as any test process may have.
  for var in (
    "JAX_COORDINATOR_ADDRESS",
    "SLURM_JOB_ID",
    "OMPI_MCA_orte_hnp_uri",
    "TPU_WORKER_HOSTNAMES",
    "TPU_PROCESS_ADDRESSES",
  ):
    monkeypatch.delenv(var, raising=False)
  assert distributed.detect_launch() is None
  assert distributed.initialize("auto") is False and distributed.initialize("off") is False
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t1k-0")
  assert distributed.detect_launch() is None  # One host: nothing to join.
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t1k-0,t1k-1")
  assert distributed.detect_launch() == "tpu"
  monkeypatch.delenv("TPU_WORKER_HOSTNAMES")
  for var, value in (
    ("SLURM_JOB_ID", "7"),
    ("SLURM_STEP_NODELIST", "n[1-2]"),
    ("SLURM_PROCID", "0"),
    ("SLURM_LOCALID", "0"),
    ("SLURM_NTASKS", "1"),
  ):
    monkeypatch.setenv(var, value)
  assert distributed.detect_launch() is None  # A one-task job step.
  monkeypatch.setenv("SLURM_NTASKS", "4")
  assert distributed.detect_launch() == "slurm"
  with pytest.raises(
    ConfigError, match=r"config.distributed must be one of \('auto', 'on', 'off'\), got 'yes'"
  ):
    distributed.initialize("yes")
  # Devices already in use: joining a job is impossible, and says so (no attempt to connect).
  with pytest.raises(
    ConfigError, match=r"distributed='auto' \(slurm launch\): jax.distributed.initialize failed"
  ):
    distributed.initialize("auto")
