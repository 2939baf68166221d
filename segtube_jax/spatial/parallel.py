"""Threads for the per-frame steps of the spatial stage (flow, SLIC, pixel-level refinement).

These steps treat every frame (the flow: every frame pair) on its own and spend most of their
time in compiled code that releases the GIL (OpenCV's DIS, scikit-image's SLIC; OpenCV and NumPy
in the refinement), so in one process a thread per core works on several frames at once with the
same result: on 2 cores SLIC runs 1.8x, the refinement 1.3-1.6x and the flow 1.4x faster. Inside a pool worker (``segment_videos``, the DAVIS
evaluation, the detector's segmentation pool) the pool already runs a process per core, so a
worker keeps to one thread.
"""

from collections.abc import Callable, Iterable
import concurrent.futures
import multiprocessing
import os
from typing import TypeVar

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def frame_threads(threads: int) -> int:
  """Threads for the per-frame steps: ``threads``, or for 0 the cores this process may use.

  For 0, a process started by ``multiprocessing`` (a pool worker) gets 1.
  """
  if threads > 0:
    return threads
  if multiprocessing.parent_process() is not None:
    return 1
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def map_frames(fn: Callable[[_In], _Out], items: Iterable[_In], threads: int) -> list[_Out]:
  """``[fn(x) for x in items]``, on up to ``threads`` threads; results in the order of items."""
  items = list(items)
  threads = min(threads, len(items))
  if threads <= 1:
    return [fn(x) for x in items]
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    return list(pool.map(fn, items))
