"""The training batch stream: grain threads, or worker processes that each run threads.

Decoding JPEG chunks and assembling clips is Python and NumPy work that holds the GIL for much
of its time, so threads alone stop scaling at a few cores (docs/scaling.md). With
``config.data_workers`` > 0 the batches are made by grain's multiprocessing prefetch
(``IterDataset.mp_prefetch``): worker w makes batches w, w + N, w + 2N, ... of the same
deterministic ``MapDataset`` and the stream interleaves them back in order, so the batches do
not depend on the worker count (nor on the thread count).

The data position is the index of the next batch, ``{"next_index": k}`` (the state grain's own
thread iterator has, so checkpoints written before workers existed still resume): restoring it
restarts the stream at batch k, with any worker count.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import tempfile
import threading
import time
from typing import Any

from absl import flags
import grain
import numpy as np

from segtube_jax.errors import DatasetError, SegtubeError

# Where a worker notes the video it is loading: a worker killed by the OS (out of memory) can
# say nothing itself, so the stream names the video from its last note.
PROGRESS_ENV = "SEGTUBE_INPUT_PROGRESS_DIR"


def resolve_workers(data_workers: int) -> int:
  """Worker processes for ``config.data_workers``: -1 is one per host core, at most 32."""
  if data_workers >= 0:
    return data_workers
  return max(1, min(os.cpu_count() or 1, 32))


def note_progress(video_id: str) -> None:
  """In a worker process: records that it is loading ``video_id`` (no-op elsewhere)."""
  folder = os.environ.get(PROGRESS_ENV)
  if folder:
    try:
      note = pathlib.Path(folder, str(os.getpid()))
      tmp = note.with_suffix(".tmp")
      tmp.write_text(video_id)
      os.replace(tmp, note)  # Atomic: a reader never sees a half-written note.
    except OSError:
      pass  # The stream was closed and its folder removed: nothing waits for this note.


def _exit_with_parent(worker_index: int, worker_count: int) -> None:
  """In each worker process: exits when the training process is gone (even if it was SIGKILLed).

  Daemon processes end with a parent that exits, not with one that is killed; a worker blocked
  on a full buffer would then live on and hold its memory.
  """
  del worker_index, worker_count
  parent = os.getppid()

  def watch() -> None:
    while os.getppid() == parent:
      time.sleep(0.5)
    os._exit(0)  # pylint: disable=protected-access

  threading.Thread(target=watch, daemon=True, name="segtube-parent-watch").start()


def _dead_workers(folder: pathlib.Path) -> list[tuple[int, str]]:
  """(pid, last video) of the workers that noted progress in ``folder`` and no longer run."""
  dead = []
  for path in sorted(folder.iterdir()):
    if not path.name.isdigit():
      continue
    pid = int(path.name)
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      dead.append((pid, path.read_text()))
    except PermissionError:
      pass
  return dead


class TrainBatches:
  """Iterator over training batches with a worker-count-independent, checkpointable position.

  Args:
    batches: the (infinite) ``MapDataset`` of this process's training batches.
    num_threads: grain read threads (per worker process with workers).
    prefetch: batches read ahead per thread pool.
    workers: worker processes; 0 reads in this process with threads only.
  """

  def __init__(
    self,
    batches: grain.MapDataset,
    num_threads: int,
    prefetch: int,
    workers: int,
  ):
    self._batches, self._workers = batches, workers
    # grain reads with at most prefetch_buffer_size threads in flight: a smaller buffer idles them.
    self._options = grain.ReadOptions(
      num_threads=num_threads, prefetch_buffer_size=max(prefetch, num_threads)
    )
    self._progress_dir: str | None = None
    self._index = 0
    self._it = None

  def _start(self) -> None:
    ds = self._batches[self._index :] if self._index else self._batches
    stream = ds.to_iter_dataset(self._options)
    if self._workers > 0:
      # The workers note the video they load here; spawned, they inherit the environment.
      self._progress_dir = tempfile.mkdtemp(prefix="segtube_input_")
      os.environ[PROGRESS_ENV] = self._progress_dir
      if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; a library caller has none.
        flags.FLAGS.mark_as_parsed()
      stream = stream.mp_prefetch(
        grain.multiprocessing.MultiprocessingOptions(
          num_workers=self._workers, per_worker_buffer_size=2
        ),
        worker_init_fn=_exit_with_parent,
      )
    self._it = iter(stream)

  def __iter__(self) -> TrainBatches:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._it is None:
      self._start()
    try:
      batch = next(self._it)
    except SegtubeError:
      self.close()
      raise
    except Exception as e:  # pylint: disable=broad-except
      error = self._worker_error(e)
      self.close()
      raise error from e
    self._index += 1
    return batch

  def _worker_error(self, error: Exception) -> DatasetError:
    """One error naming the video a failed worker was loading."""
    dead = _dead_workers(pathlib.Path(self._progress_dir)) if self._progress_dir else []
    if dead:
      pid, video = dead[0]
      return DatasetError(
        f"input pipeline: worker process {pid} died at training batch {self._index}; the last "
        f"video it was loading: {video!r} ({error}). A worker killed by signal "
        f"{signal.SIGKILL.value} was most likely out of memory: lower config.data_workers or "
        "config.data_threads"
      )
    return DatasetError(f"input pipeline failed at training batch {self._index}: {error}")

  def get_state(self) -> dict[str, Any]:
    """The data position: the index of the next batch."""
    return {"next_index": self._index}

  def set_state(self, state: dict[str, Any]) -> None:
    """Restarts the stream at a position from :meth:`get_state` (any worker count)."""
    index = state.get("next_index") if isinstance(state, dict) else None
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
      raise DatasetError(
        f"checkpointed data position must be {{'next_index': k >= 0}}, got {state!r}"
      )
    self.close()
    self._index = index

  def close(self) -> None:
    """Stops the worker processes (a later ``next`` starts them again)."""
    if self._it is not None and hasattr(self._it, "close"):
      self._it.close()
    self._it = None
    if self._progress_dir:
      if os.environ.get(PROGRESS_ENV) == self._progress_dir:
        del os.environ[PROGRESS_ENV]
      shutil.rmtree(self._progress_dir, ignore_errors=True)
      self._progress_dir = None

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass  # At interpreter exit the modules close() needs may be gone.
