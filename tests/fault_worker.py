"""Runs training for tests/test_faults.py to SIGKILL: one run, or a server forking pre-imported runs.

One run:  python tests/fault_worker.py run DATA_ROOT WORKDIR '{"train.num_steps": 8}' [--finalize_delay S]
Server:   python tests/fault_worker.py serve

A run trains ``tiny_training_config(DATA_ROOT, **overrides)`` into WORKDIR, with the trainer's
log (``Restored checkpoint step N``, ``step k/N loss ...``) on stderr. Set
JAX_COMPILATION_CACHE_DIR, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 and
JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 so that restarts load the compiled programs.

``serve`` imports JAX, Flax, Orbax and the trainer once (about half of a run's CPU time), then
reads one JSON request per stdin line (``{"root", "workdir", "overrides", "log",
"finalize_delay"}``), forks a child process that runs it with stdout and stderr appended to
``log``, and answers ``{"pid": PID}`` at once and ``{"pid": PID, "exit": CODE, "cpu_s": S}``
when the child ends (CODE is -9 for SIGKILL; S its user + system CPU seconds). The child is an
ordinary process: killing it kills the run. Forking is only safe from a single-threaded
process, so the server checks it has one thread (run it with OPENBLAS_NUM_THREADS=1: NumPy's
BLAS otherwise starts one) and never touches JAX's backend itself.

``finalize_delay`` (seconds) widens the window in which a checkpoint is half-written: before
Orbax renames a finished temporary step folder into place, the run prints
``FAULT_WORKER finalizing <tmp folder>`` and sleeps that long, so a kill sent on that line lands
while the temporary folder exists and the final one does not. Nothing else changes.
"""

import asyncio
import json
import os
import pathlib
import sys
import traceback

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

MARKER = "FAULT_WORKER finalizing "


def _delay_finalize(seconds: float) -> None:
  from orbax.checkpoint._src.path import atomicity  # pylint: disable=import-outside-toplevel

  original = atomicity.AtomicRenameTemporaryPath.finalize

  async def finalize(self):
    print(MARKER + str(self.get()), flush=True)
    await asyncio.sleep(seconds)
    await original(self)

  atomicity.AtomicRenameTemporaryPath.finalize = finalize


def run(root: str, workdir: str, overrides: dict, finalize_delay: float = 0.0) -> dict:
  """One training run of the tiny config; returns its validation metrics."""
  from absl import logging  # pylint: disable=import-outside-toplevel

  from segtube_jax.training import train_and_evaluate  # pylint: disable=import-outside-toplevel
  from tests.conftest import tiny_training_config  # pylint: disable=import-outside-toplevel

  logging.set_verbosity(logging.INFO)
  logging.use_absl_handler()
  if finalize_delay > 0:
    _delay_finalize(finalize_delay)
  return train_and_evaluate(tiny_training_config(root, **overrides), workdir)


def _child(request: dict) -> None:
  """In the forked child: log to the request's file, train, and exit without returning."""
  code = 0
  try:
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    result = run(
      request["root"], request["workdir"], request["overrides"], request.get("finalize_delay", 0.0)
    )
    print("FAULT_WORKER done " + json.dumps(result), flush=True)
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    code = 3
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access


def _threads() -> int:
  tasks = pathlib.Path("/proc/self/task")
  return len(list(tasks.iterdir())) if tasks.is_dir() else 1


def serve() -> None:
  """Pre-imports the training stack, then forks one child per request line on stdin."""
  # pylint: disable=import-outside-toplevel,unused-import
  import jax  # noqa: F401
  import orbax.checkpoint  # noqa: F401
  import tensorboardX  # noqa: F401

  from segtube_jax.training import trainer  # noqa: F401
  from tests import conftest  # noqa: F401

  # pylint: enable=import-outside-toplevel,unused-import
  if _threads() != 1:
    print(
      json.dumps(
        {
          "error": f"{_threads()} threads after imports; forking is unsafe "
          "(set OPENBLAS_NUM_THREADS=1)"
        }
      ),
      flush=True,
    )
    return
  print(json.dumps({"ready": True}), flush=True)
  for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      _child(request)
    print(json.dumps({"pid": pid}), flush=True)
    _, status, usage = os.wait4(pid, 0)
    print(
      json.dumps(
        {
          "pid": pid,
          "exit": os.waitstatus_to_exitcode(status),
          "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        }
      ),
      flush=True,
    )


def main(argv: list[str]) -> None:
  command, *args = argv[1:] or [""]
  if command == "serve" and not args:
    serve()
  elif command == "run" and len(args) == 3:
    root, workdir, overrides = args
    result = run(root, workdir, json.loads(overrides), flags.FLAGS.finalize_delay)
    print("FAULT_WORKER done " + json.dumps(result), flush=True)
  else:
    raise app.UsageError(
      f"expected 'run DATA_ROOT WORKDIR OVERRIDES' or 'serve', got {argv[1:]}", exitcode=2
    )


if __name__ == "__main__":
  flags.DEFINE_float(
    "finalize_delay", 0.0, "run: seconds to sleep before Orbax finalizes a checkpoint."
  )
  app.run(main)
