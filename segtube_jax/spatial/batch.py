"""Segmenting many videos: PNG mask output and a process pool with a progress bar.

Each job is independent (one video, one span), so videos run in parallel processes, each
single-threaded (see :func:`actor_masks.segment_span`). Workers write their masks as PNGs rather
than sending full-resolution arrays back through the pool.
"""

from collections.abc import Sequence
import concurrent.futures
import dataclasses
import multiprocessing
import os
import pathlib
import time

import ml_collections
import numpy as np
from PIL import Image
import tqdm

from segtube_jax import schema
from segtube_jax.errors import SegmentationError, SegtubeError
from segtube_jax.spatial import frames as frames_lib
from segtube_jax.spatial import gmm as gmm_lib
from segtube_jax.spatial import superpixels as sp_lib


@dataclasses.dataclass(frozen=True)
class SegmentJob:
  """One video to segment.

  Attributes:
    source: A video file or a folder of numbered frames (see segtube_jax.data.video).
    out_dir: Folder for one PNG mask per frame (0 / 255, named after the frame); None to
      return the masks in :attr:`JobResult.masks` instead.
    span: Inclusive (f_s, f_e); None for the whole video.
    previous_masks: Optional folder of PNG masks of the previous iteration (Sec. 2.3).
  """

  source: str
  out_dir: str | None = None
  span: tuple[int, int] | None = None
  previous_masks: str | None = None


@dataclasses.dataclass
class JobResult:
  """Outcome of one job.

  Attributes:
    job: The job.
    num_frames: Frames in the video (0 if it could not be opened).
    seconds: Wall time of the job.
    masks: bool [T,H,W] when the job had no out_dir, else None.
    error: The error message when the job failed, else None.
  """

  job: SegmentJob
  num_frames: int = 0
  seconds: float = 0.0
  masks: np.ndarray | None = None
  error: str | None = None


def write_masks(
  masks: np.ndarray, out_dir: str | os.PathLike, names: Sequence[str], first: int = 0
) -> None:
  """Writes ``masks`` [t,H,W] as ``out_dir/<names[first + i]>.png`` (0 / 255 greyscale)."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  for i, mask in enumerate(masks):
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(out / f"{names[first + i]}.png")


def write_empty_masks(
  out_dir: str | os.PathLike, names: Sequence[str], size: tuple[int, int]
) -> None:
  """Writes an all-zero mask of ``size`` = (rows, cols) for each of ``names``."""
  if not names:
    return
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  first = out / f"{names[0]}.png"
  Image.fromarray(np.zeros(size, np.uint8)).save(first)
  data = first.read_bytes()  # Encode once: empty masks are most frames of a long video.
  for name in names[1:]:
    (out / f"{name}.png").write_bytes(data)


def _read_previous(folder: str, num_frames: int, size: tuple[int, int]) -> np.ndarray:
  from segtube_jax.data import video  # Local: keeps PyAV out of library users' imports.

  masks, _ = video.MaskFolderReader(folder, num_frames).read(0, num_frames, size)
  return masks


def run_job(job: SegmentJob, config: ml_collections.ConfigDict | None = None) -> JobResult:
  """Runs one job in this process. Errors of the project's types land in ``error``."""
  # Overlap the imports of scikit-image's SLIC (0.7 s) and scikit-learn (1.4 s) with decoding.
  sp_lib.import_in_background()
  gmm_lib.import_in_background()
  from segtube_jax.data import video

  start_time = time.perf_counter()
  result = JobResult(job=job)
  try:
    reader = video.open_frames(job.source)
    result.num_frames = reader.num_frames
    size = (reader.height, reader.width)
    previous = None
    if job.previous_masks is not None:
      previous = _read_previous(job.previous_masks, reader.num_frames, size)
    if job.out_dir is None:
      result.masks = frames_lib.segment_video(reader, job.span, previous, config)
    else:
      names = reader.frame_names()
      start, end = frames_lib.check_span(job.span, reader.num_frames)
      for first, masks in frames_lib.iter_span_masks(reader, (start, end), previous, config):
        write_masks(masks, job.out_dir, names, first)
      write_empty_masks(job.out_dir, names[:start] + names[end + 1 :], size)
  except SegtubeError as e:
    result.error = str(e) if str(job.source) in str(e) else f"{job.source}: {e}"
  result.seconds = time.perf_counter() - start_time
  return result


def segment_videos(
  jobs: Sequence[SegmentJob],
  config: ml_collections.ConfigDict | None = None,
  workers: int | None = None,
  progress: bool = True,
  strict: bool = True,
) -> list[JobResult]:
  """Segments many videos in a process pool, with a progress bar.

  Args:
    jobs: The videos.
    config: Segmentation config shared by all jobs; None for the defaults.
    workers: Processes; None for one per CPU (at most one per job). 1 runs in this process.
    progress: Show a tqdm progress bar over jobs.
    strict: Raise SegmentationError after all jobs ran if any failed; else report failures
      only in the results.

  Returns:
    One JobResult per job, in job order.
  """
  config = schema.segmentation_config() if config is None else config
  schema.validate_segmentation(config)
  workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
  bar = tqdm.tqdm(total=len(jobs), desc="segment", unit="video", disable=not progress)
  results: list[JobResult | None] = [None] * len(jobs)
  if workers <= 1:
    for i, job in enumerate(jobs):
      results[i] = run_job(job, config)
      bar.update()
  else:
    # Spawned workers: forking a parent that may hold JAX/XLA threads is unsafe.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
      futures = {pool.submit(run_job, job, config): i for i, job in enumerate(jobs)}
      for future in concurrent.futures.as_completed(futures):
        results[futures[future]] = future.result()
        bar.update()
  bar.close()
  failed = [r.error for r in results if r.error]
  if strict and failed:
    raise SegmentationError(f"{len(failed)} of {len(jobs)} videos failed: " + "; ".join(failed[:5]))
  return results
