"""Faults: SIGKILL at random moments, a NaN in the input, unwritable folders and a full disk.

The SIGKILL tests run training in child processes forked by ``tests/fault_worker.py serve`` (which
imports the training stack once) and share the session's XLA compilation cache, so a restart
costs its tracing and a few steps.
"""

import errno
import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import jax
import numpy as np
import pytest

from segtube_jax import io_utils
from segtube_jax.errors import OutputError, SegtubeError
from segtube_jax.evaluation import detection_writers, detector_eval, report, score_detections
from segtube_jax.training import (
  NonFiniteLossError,
  checkpointing,
  input_pipeline,
  train_and_evaluate,
)
from tests import detector_testing
from tests.conftest import PROJECT_ROOT, tiny_training_config

# ---------------------------------------------------------------------------------------------
# SIGKILL

_KILL_CONFIG = {
  "train.num_steps": 12,
  "train.checkpoint_every": 1,
  "train.log_every": 1,
  "train.async_checkpoints": True,
  "train.keep_checkpoints": 3,
  "model.shared_trunk": True,
}
_TMP_SUFFIX = ".orbax-checkpoint-tmp"
_TIMEOUT = 240.0  # Seconds for any one wait; a run takes a few.


class _Server:
  """``fault_worker.py serve``: forks training runs on request; their pids are ours to kill."""

  def __init__(self):
    env = dict(
      os.environ,
      JAX_COMPILATION_CACHE_DIR=str(jax.config.jax_compilation_cache_dir),
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
      OPENBLAS_NUM_THREADS="1",
    )
    self.proc = subprocess.Popen(
      [sys.executable, "tests/fault_worker.py", "serve"],
      cwd=PROJECT_ROOT,
      env=env,
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      text=True,
    )
    self.replies: queue.Queue = queue.Queue()
    self.cpu_seconds: list[float] = []  # Of each finished run, for the record.
    self.running: int | None = None
    threading.Thread(target=self._read, daemon=True).start()
    ready = self._reply()
    assert ready.get("ready"), ready

  def _read(self):
    for line in self.proc.stdout:
      self.replies.put(json.loads(line))
    self.replies.put({"eof": True})

  def _reply(self, timeout=_TIMEOUT) -> dict:
    reply = self.replies.get(timeout=timeout)
    assert "eof" not in reply, f"fault_worker server exited ({self.proc.poll()})"
    return reply

  def start(self, workdir, root, log, finalize_delay=0.0, overrides=None) -> int:
    request = {
      "root": str(root),
      "workdir": str(workdir),
      "overrides": {**_KILL_CONFIG, **(overrides or {})},
      "log": str(log),
      "finalize_delay": finalize_delay,
    }
    self.proc.stdin.write(json.dumps(request) + "\n")
    self.proc.stdin.flush()
    self.running = self._reply()["pid"]
    return self.running

  def exit_code(self, pid, timeout=_TIMEOUT) -> int:
    reply = self._reply(timeout)
    assert reply["pid"] == pid, reply
    self.running = None
    self.cpu_seconds.append(reply["cpu_s"])
    return reply["exit"]

  def close(self):
    if self.running is not None:  # A failed test left its run going.
      try:
        os.kill(self.running, signal.SIGKILL)
      except ProcessLookupError:
        pass
    self.proc.stdin.close()
    try:
      self.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
      self.proc.kill()
      self.proc.wait()


@pytest.fixture(scope="module")
def server():
  s = _Server()
  yield s
  s.close()


def _complete_steps(workdir: pathlib.Path) -> list[int]:
  """Steps whose folder carries its final name (Orbax renames a finished temporary folder)."""
  ck = workdir / "checkpoints"
  return sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) if ck.is_dir() else []


def _wait_for(
  log: pathlib.Path, pattern: str, server: _Server, pid: int, count: int = 1
) -> re.Match:
  """The ``count``-th match of ``pattern`` in the run's log; fails if the run ends first."""
  deadline = time.monotonic() + _TIMEOUT
  while time.monotonic() < deadline:
    matches = (
      list(re.finditer(pattern, log.read_text(errors="replace"), re.M)) if log.exists() else []
    )
    if len(matches) >= count:
      return matches[count - 1]
    if not server.replies.empty():
      pytest.fail(
        f"run {pid} ended (exit {server.exit_code(pid)}) before /{pattern}/ x{count}:\n"
        + log.read_text(errors="replace")[-3000:]
      )
    time.sleep(0.02)
  pytest.fail(f"timed out waiting for /{pattern}/ in {log}")


def _steps_logged(log: pathlib.Path) -> list[int]:
  return [int(k) for k in re.findall(r"step (\d+)/\d+ loss", log.read_text(errors="replace"))]


def _resumed_from(text: str) -> int | None:
  m = re.search(r"Restored checkpoint step (\d+)", text)
  return int(m.group(1)) if m else None


@pytest.fixture(scope="module")
def uninterrupted(server, tiny_synthetic, tmp_path_factory):
  """(step, params) of the kill config run without interruption."""
  workdir = tmp_path_factory.mktemp("uninterrupted") / "w"
  pid = server.start(workdir, tiny_synthetic, workdir.parent / "log")
  code = server.exit_code(pid)
  assert code == 0, (workdir.parent / "log").read_text()[-3000:]
  return checkpointing.latest_params(workdir)


def _kill_and_resume(
  server, root, workdir: pathlib.Path, kills: int, seed: int, overrides=None
) -> list[dict]:
  """Kills ``kills`` runs in a row, each restarted in ``workdir``; then lets the last one finish.

  Even-numbered kills land in a checkpoint save: on the 1st or 2nd "finalizing" line of a step
  folder (the run then waits before renaming it; the first kill on the 2nd, so that later runs
  resume). Odd-numbered ones land a random 0-1 s after the run's first step (at the latest on
  step N-3), while the next steps run and their checkpoints save in the background. Each restart
  must resume from the newest step folder that has its final name.
  """
  rng = np.random.default_rng(seed)
  num_steps = _KILL_CONFIG["train.num_steps"]
  events = []
  for i in range(kills + 1):
    before = _complete_steps(workdir)
    log = workdir.parent / f"log{i}"
    in_save = i % 2 == 0 and i < kills
    pid = server.start(workdir, root, log, 0.75 if in_save else 0.0, overrides)
    event = {"run": i, "complete_before": before}
    if i == kills:  # The last run finishes.
      code = server.exit_code(pid)
      text = log.read_text(errors="replace")
      assert code == 0, text[-3000:]
    else:
      if in_save:
        nth = 2 if i == 0 else int(rng.integers(1, 3))  # The first kill leaves step 1 complete.
        pattern = rf"^FAULT_WORKER finalizing (.*/checkpoints/(\d+){re.escape(_TMP_SUFFIX)})$"
        m = _wait_for(log, pattern, server, pid, nth)
        os.kill(pid, signal.SIGKILL)
        event.update(mode="in save", saving=int(m.group(2)), tmp=m.group(1))
      else:
        delay = float(rng.uniform(0.0, 1.0))
        _wait_for(log, r"step \d+/\d+ loss", server, pid)
        deadline = time.monotonic() + delay
        # Never later than step N-3: every run is killed before the end, and later runs still
        # have the two saves an "in save" kill may wait for.
        while time.monotonic() < deadline and max(_steps_logged(log), default=0) < num_steps - 3:
          time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        event.update(mode="random", delay=round(delay, 3))
      code = server.exit_code(pid)
      text = log.read_text(errors="replace")
      assert code == -signal.SIGKILL, f"run {i} was not killed (exit {code}):\n{text[-3000:]}"
      if in_save:
        # Killed between the end of the write and the rename: only the temporary folder exists.
        event["mid_save"] = (
          pathlib.Path(event["tmp"]).is_dir()
          and not (workdir / "checkpoints" / str(event["saving"])).exists()
        )
    event["resumed_from"] = _resumed_from(text)
    event["cpu_s"] = server.cpu_seconds[-1]
    events.append(event)
    assert event["resumed_from"] == (before[-1] if before else None), events
  return events


@pytest.mark.slow  # ~70 s on 2 cores; `make test` runs it (ten kills in a row, as issue 6 asks).
@pytest.mark.parametrize("kills", [10])
def test_sigkill_at_random_moments_resumes_bit_exact(
  server, uninterrupted, tiny_synthetic, tmp_path, kills
):
  events = _kill_and_resume(server, tiny_synthetic, tmp_path / "w", kills, seed=kills)
  print("\n".join(map(str, events)))
  assert sum(e.get("mid_save", False) for e in events) >= 1, (
    events
  )  # Some kill hit a half-written checkpoint.
  assert events[-1]["resumed_from"] is not None, events
  step, params = checkpointing.latest_params(tmp_path / "w")
  ref_step, ref_params = uninterrupted
  assert step == ref_step == _KILL_CONFIG["train.num_steps"]
  jax.tree.map(np.testing.assert_array_equal, ref_params, params)
  assert not list(
    (tmp_path / "w" / "checkpoints").glob(f"*{_TMP_SUFFIX}*")
  )  # Leftovers were cleaned up.
  # Steps logged by a killed run after its last checkpoint are dropped on resume: one row each.
  rows = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
  train_steps = [r["step"] for r in rows if r["split"] == "train"]
  assert train_steps == sorted(set(train_steps)) and train_steps[-1] == ref_step, train_steps


def test_data_workers_killed_in_a_save_resume_bit_exact(
  server, uninterrupted, tiny_synthetic, tmp_path
):
  """Input worker processes (2) through two kills, the first inside a checkpoint save: the run
  ends with the parameters of the uninterrupted run, which read its input with threads only."""
  events = _kill_and_resume(
    server, tiny_synthetic, tmp_path / "w", 2, seed=2, overrides={"data_workers": 2}
  )
  assert events[0]["mode"] == "in save" and events[-1]["resumed_from"] is not None, events
  step, params = checkpointing.latest_params(tmp_path / "w")
  ref_step, ref_params = uninterrupted
  assert step == ref_step
  jax.tree.map(np.testing.assert_array_equal, ref_params, params)


# ---------------------------------------------------------------------------------------------
# NaN in the input


class _NaNClips:
  """The training batches with float32 clips (the step normalises any dtype) and NaN pixels in
  every clip of batch number ``index`` (counted from the start of training)."""

  def __init__(self, dataset, index: int):
    self.dataset, self.index = dataset, index

  def __iter__(self):
    return _NaNIterator(iter(self.dataset), self.index)


class _NaNIterator:
  def __init__(self, it, index):
    self.it, self.index, self.count = it, index, 0

  def __next__(self):
    batch = dict(next(self.it))
    clips = np.asarray(batch["clips"], np.float32)
    if self.count == self.index:
      clips[:, :, 0, 0, 0, :] = np.nan  # First pixel of the first frame of every clip.
    batch["clips"] = clips
    self.count += 1
    return batch

  def get_state(self):
    return self.it.get_state()

  def set_state(self, state):
    self.it.set_state(state)

  def close(self):
    self.it.close()


def test_nan_in_input_clips_stops_naming_the_step_and_keeps_last_good_checkpoint(
  tiny_synthetic, tmp_path, monkeypatch
):
  # The SIGKILL tests' config: the resumed run reuses their compiled programs.
  config = tiny_training_config(tiny_synthetic, **_KILL_CONFIG)
  real = input_pipeline.train_dataset

  def with_nan(*args, **kwargs):
    dataset, num_classes = real(*args, **kwargs)
    return _NaNClips(dataset, index=2), num_classes  # The 3rd batch: step 3.

  monkeypatch.setattr(input_pipeline, "train_dataset", with_nan)
  workdir = tmp_path / "w"
  with pytest.raises(
    NonFiniteLossError,
    match=r"loss is nan at step 3; .*last good checkpoint \(step 2\) in "
    + re.escape(str((workdir / "checkpoints").absolute())),
  ):
    train_and_evaluate(config, workdir)
  assert _complete_steps(workdir) == [1, 2]  # The NaN step was never saved.
  step, params = checkpointing.latest_params(workdir)
  assert step == 2 and all(np.isfinite(x).all() for x in jax.tree.leaves(params))
  monkeypatch.setattr(
    input_pipeline, "train_dataset", real
  )  # Clean data: the same command resumes.
  train_and_evaluate(config, workdir)
  step, resumed = checkpointing.latest_params(workdir)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert step == 12 and [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 13))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(resumed))


# ---------------------------------------------------------------------------------------------
# Leftovers of a killed save


def test_restart_skips_and_removes_leftovers_of_a_killed_save(tmp_path):
  def state(step):
    return {"params": {"w": np.arange(4.0) + step}, "step": np.asarray(step, np.int32)}

  manager = checkpointing.make_manager(tmp_path, keep=3, async_save=True)
  for step in (1, 2, 3):
    checkpointing.save(manager, step, state(step), {"position": step})
  manager.wait_until_finished()
  manager.close()
  ck = tmp_path / "checkpoints"
  # Saves killed half-way: step 4 before its items were renamed, step 7 just after its folder was made.
  (ck / f"4{_TMP_SUFFIX}" / f"state{_TMP_SUFFIX}").mkdir(parents=True)
  (ck / f"4{_TMP_SUFFIX}" / f"state{_TMP_SUFFIX}" / "d").write_bytes(b"\0" * 10)
  (ck / f"7{_TMP_SUFFIX}").mkdir()
  # A deletion of the oldest step (keep=3) killed half-way.
  removed = [p for p in sorted((ck / "1").rglob("*")) if p.is_file()][:3]
  for p in removed:
    p.unlink()
  manager = checkpointing.make_manager(tmp_path, keep=3, async_save=True)
  step, restored, data = checkpointing.restore(manager, state(0))
  assert (step, data) == (3, {"position": 3})
  np.testing.assert_array_equal(restored["params"]["w"], state(3)["params"]["w"])
  checkpointing.save(manager, 4, state(4), {"position": 4})
  manager.wait_until_finished()
  manager.close()
  assert sorted(p.name for p in ck.iterdir()) == ["2", "3", "4"]
  assert checkpointing.latest_params(tmp_path)[0] == 4


# ---------------------------------------------------------------------------------------------
# Unwritable folders and a full disk

_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(params=["read-only folder", "file in the way", "permission denied (simulated)"])
def blocked(request, tmp_path, monkeypatch):
  """(folder that cannot be written, the cause's message): under a 0o500 folder, under a file, or
  one whose files cannot be created (as root, who ignores permissions)."""
  if request.param == "permission denied (simulated)":
    folder = tmp_path / "denied"
    folder.mkdir()
    mkstemp = tempfile.mkstemp

    def deny(*args, dir=None, **kwargs):  # pylint: disable=redefined-builtin
      if dir is not None and pathlib.Path(dir) == folder:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
      return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", deny)
    return folder, r"Permission denied \(EACCES\)"
  if request.param == "read-only folder":
    if _AS_ROOT:
      pytest.skip("root ignores folder permissions")
    parent = tmp_path / "read_only"
    parent.mkdir()
    parent.chmod(0o500)
    request.addfinalizer(lambda: parent.chmod(0o700))
    return parent / "out", r"Permission denied \(EACCES\)"
  (tmp_path / "a_file").write_text("not a folder\n")
  return tmp_path / "a_file" / "out", r"Not a directory \(ENOTDIR\)"


def test_unwritable_training_workdir(tiny_synthetic, blocked):
  workdir, cause = blocked
  with pytest.raises(
    OutputError, match=rf"^training workdir {re.escape(str(workdir))} is not writable: {cause}$"
  ):
    train_and_evaluate(tiny_training_config(tiny_synthetic), workdir)


@pytest.mark.parametrize("how", ["read-only workdir", "file in the way"])
def test_unwritable_evaluation_folder_fails_before_detecting(
  tiny_synthetic, tmp_path_factory, tmp_path, how
):
  if how == "read-only workdir" and _AS_ROOT:
    pytest.skip("root ignores folder permissions")
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides())
  workdir = detector_testing.copy_workdir(
    detector_testing.trained_workdir(tiny_synthetic, tmp_path_factory), tmp_path / "w"
  )
  if how == "read-only workdir":
    workdir.chmod(0o500)
    message = r"is not writable: Permission denied \(EACCES\)$"
  else:
    (workdir / "eval").write_text("a file where the eval folder goes\n")
    message = "is a file, not a folder$"
  calls = []
  try:
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(detector_eval.alternating, "run_alternating", lambda *a, **k: calls.append(a))
      with pytest.raises(
        OutputError,
        match=rf"^evaluation output folder {re.escape(str(workdir / 'eval'))} {message}",
      ):
        detector_eval.evaluate(config, workdir)
  finally:
    workdir.chmod(0o700)
  assert not calls  # Failed before detecting anything.


def test_unwritable_scoring_out(blocked, tmp_path):
  folder, cause = blocked
  # The folder is checked before the (here missing) inputs are read.
  with pytest.raises(
    OutputError, match=rf"^folder of --out {re.escape(str(folder))} is not writable: {cause}$"
  ):
    score_detections.run_scoring(
      tmp_path / "missing.txt", tmp_path / "missing", out=folder / "metrics.json"
    )
  (tmp_path / "taken").mkdir()
  with pytest.raises(OutputError, match=r"--out .*taken is a folder; expected a file name"):
    score_detections.run_scoring(
      tmp_path / "missing.txt", tmp_path / "missing", out=tmp_path / "taken"
    )


class _FullDiskFile:
  """A file object whose writes fail as on a full disk."""

  def __init__(self, f):
    self._f = f

  def write(self, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  def __getattr__(self, name):
    return getattr(self._f, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self._f.close()


def _writers():
  seg = detection_writers.DetectedSegment("A", 0, 0, 10, 0.5, 25.0)
  masks = np.zeros((3, 8, 8), bool)
  return {
    "metrics.json": lambda out: score_detections.write_metrics(
      {"mAP": [0.5]}, out / "metrics.json"
    ),
    "detections.json": lambda out: detection_writers.write_activitynet_json(
      {"v": [seg]}, out / "detections.json"
    ),
    "detections.txt": lambda out: detection_writers.write_thumos14_txt(
      {"v": [seg]}, out / "detections.txt", ["A"]
    ),
    "figures/ap_per_class.png": lambda out: report.write_report(
      out, metrics={}, per_class_ap={"A": 0.5}
    ),
    "masks/000001.png": lambda out: detector_eval.write_masks(
      out / "masks", masks, np.array([False, True, True])
    ),
    "experiment.json": lambda out: io_utils.write_json_atomic(
      out / "experiment.json", {"classes": ["A"]}
    ),
  }


@pytest.mark.parametrize("name", list(_writers()))
def test_full_disk_leaves_no_partial_file_and_keeps_earlier_results(tmp_path, monkeypatch, name):
  out = tmp_path / "out"
  earlier = {
    name: b"earlier result\n",
    "report.md": b"earlier report\n",
    "masks/000000.png": b"earlier mask\n",
  }
  for rel, data in earlier.items():
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_bytes(data)
  fdopen = os.fdopen
  monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FullDiskFile(fdopen(*a, **k)))
  with pytest.raises(
    OutputError,
    match=rf"^{re.escape(str(out / name))}: cannot write .*: "
    r"No space left on device \(ENOSPC\)$",
  ) as raised:
    _writers()[name](out)
  assert isinstance(raised.value, SegtubeError) and raised.value.errno == errno.ENOSPC
  assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == earlier


def test_full_disk_during_a_metrics_append_leaves_no_torn_line(tmp_path, monkeypatch):
  path = tmp_path / "metrics.jsonl"
  io_utils.append_text(path, '{"step": 1}\n')
  write = os.write
  monkeypatch.setattr(
    os, "write", lambda fd, data: write(fd, data[: len(data) // 2])
  )  # Short write: disk full.
  with pytest.raises(
    OutputError, match=rf"^{re.escape(str(path))}: cannot write metrics log: .*ENOSPC"
  ):
    io_utils.append_text(path, '{"step": 2, "loss": 0.5}\n', what="metrics log")
  monkeypatch.setattr(os, "write", write)
  io_utils.append_text(path, '{"step": 2}\n')
  assert path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_output_error_is_an_oserror_and_ensure_writable_dir_leaves_nothing(tmp_path):
  assert issubclass(OutputError, OSError) and issubclass(OutputError, SegtubeError)
  assert io_utils.ensure_writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
  assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == []
  io_utils.write_text_atomic(tmp_path / "t.txt", "x")
  assert oct((tmp_path / "t.txt").stat().st_mode & 0o777) == oct(io_utils.FILE_MODE)


def test_checkpoint_folder_in_the_way(tmp_path):
  (tmp_path / "checkpoints").write_text("not a folder\n")
  with pytest.raises(
    OutputError, match=rf"^checkpoint folder {re.escape(str(tmp_path / 'checkpoints'))} is a file"
  ):
    checkpointing.make_manager(tmp_path)
