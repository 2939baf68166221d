"""The alternating optimisation of Sec. 2.3: temporal localization <-> spatial segmentation.

Per video: localize (saliency-aware clips from the current masks) -> segment the actor in the
localized spans (graph cut of Eq. 5, initialised from the saliency B_o the first time and from
the previous masks afterwards) -> new saliency-aware clips -> ... until the segments stop
changing and the masks change little (mean IoU between consecutive iterations at least
``config.detector.converged_mask_iou``), or ``config.detector.max_iterations``.

Videos are processed in groups: the networks run in this process (batched on the accelerator),
and each iteration's segmentation jobs of a group run in a pool of worker processes (the
spatial stage is host-side NumPy/OpenCV/PyMaxflow, one core per video).

With ``config.clips.mask_source='saliency'`` (the paper's saliency-aware clips, Sec. 2.1)
iteration 0 localizes on clips attenuated by the saliency segmentation B_o of every frame, the
distribution the networks were trained on; later iterations use the loop's masks on the
localized spans and keep B_o on every other frame, so no frame's attenuation depends on where
the detections fell. Otherwise iteration 0 sees raw clips and only frames inside a localized
span are attenuated later.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import time
from typing import Any, Callable, Sequence

import cv2
import ml_collections
import numpy as np

from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.spatial import frames as spatial_frames
from segtube_jax.training import saliency_cache
from segtube_jax.types import DetectedSegment


@dataclasses.dataclass
class VideoState:
  """One video through the loop.

  Attributes:
    video_id: its id.
    frames: uint8 [T, H, W, 3] at the video's own size.
    fps: frame rate.
    masks: bool [T, H, W] actor masks of the latest iteration (False where absent).
    present: bool [T], frames that have a mask.
    localization: the latest temporal result.
    iterations: one log dict per iteration (segments, mask change, seconds).
    converged: whether the stopping rule held.
    saliency: float [T, h, w] B_o at the networks' frame size (``mask_source='saliency'``);
      computed at the start of the loop when not given (e.g. read from the training cache).
  """

  video_id: str
  frames: np.ndarray
  fps: float
  masks: np.ndarray | None = None
  present: np.ndarray | None = None
  localization: localizer_lib.Localization | None = None
  iterations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  converged: bool = False
  saliency: np.ndarray | None = None

  @property
  def segments(self) -> list[DetectedSegment]:
    return self.localization.segments if self.localization is not None else []


def segment_spans(
  frames: np.ndarray,
  spans: Sequence[tuple[int, int]],
  previous: np.ndarray | None,
  config: ml_collections.ConfigDict,
) -> tuple[np.ndarray, np.ndarray]:
  """Masks bool [T, H, W] and present bool [T] for the inclusive frame ``spans`` of one video."""
  masks = np.zeros(frames.shape[:3], bool)
  present = np.zeros(len(frames), bool)
  for f_s, f_e in spans:
    for first, part in spatial_frames.iter_span_masks(frames, (f_s, f_e), previous, config):
      masks[first : first + len(part)] = part
      present[first : first + len(part)] = True
  return masks, present


def _segment_job(args: tuple) -> tuple[np.ndarray, np.ndarray, float]:
  t0 = time.perf_counter()
  masks, present = segment_spans(*args)
  return masks, present, time.perf_counter() - t0


def merged_spans(segments: Sequence[DetectedSegment], num_frames: int) -> list[tuple[int, int]]:
  """Inclusive spans covering the segments, overlapping ones merged (a frame is segmented once)."""
  out: list[list[int]] = []
  for seg in sorted(segments, key=lambda s: s.start_frame):
    f_s, f_e = seg.start_frame, min(seg.end_frame, num_frames) - 1
    if out and f_s <= out[-1][1] + 1:
      out[-1][1] = max(out[-1][1], f_e)
    else:
      out.append([f_s, f_e])
  return [(a, b) for a, b in out]


def mask_change(
  old_masks: np.ndarray | None,
  old_present: np.ndarray | None,
  masks: np.ndarray,
  present: np.ndarray,
) -> float | None:
  """Mean per-frame IoU between two iterations over the frames either has a mask for (None at first)."""
  if old_masks is None:
    return None
  frames = np.flatnonzero(old_present | present)
  if frames.size == 0:
    return 1.0
  a, b = old_masks[frames], masks[frames]
  inter = (a & b).sum(axis=(1, 2))
  union = (a | b).sum(axis=(1, 2))
  return float(np.where(union > 0, inter / np.maximum(union, 1), 1.0).mean())


def network_masks(
  masks: np.ndarray | None,
  present: np.ndarray | None,
  size: tuple[int, int],
  base: np.ndarray | None = None,
) -> np.ndarray | None:
  """Masks at the networks' frame size: the loop's masks where present, else ``base`` (B_o).

  Without ``base`` frames without a mask are all ones (no attenuation), and None is returned
  when no frame has one.
  """
  if base is not None:
    out = np.asarray(base, np.float32).copy()
  elif masks is None or present is None or not present.any():
    return None
  else:
    out = np.ones((len(present),) + tuple(size), np.float32)
  if masks is None or present is None:
    return out
  for t in np.flatnonzero(present):
    out[t] = cv2.resize(
      masks[t].astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA
    )
  return out


def _same_segments(a: Sequence[DetectedSegment], b: Sequence[DetectedSegment]) -> bool:
  key = lambda segs: sorted((s.class_index, s.start_frame, s.end_frame) for s in segs)
  return key(a) == key(b)


def segmentation_pool(workers: int) -> concurrent.futures.Executor | None:
  """A process pool for the segmentation jobs (None for ``workers`` <= 1: run in this process).

  Spawned, not forked: the caller runs JAX threads. Starting a worker imports the segmentation
  stack (about a second each), so callers that run many groups create one pool and pass it on.
  """
  if workers <= 1:
    return None
  return concurrent.futures.ProcessPoolExecutor(
    workers, mp_context=multiprocessing.get_context("spawn")
  )


def run_alternating(
  videos: list[VideoState],
  localizer: localizer_lib.Localizer,
  config: ml_collections.ConfigDict,
  workers: int = 1,
  log: Callable[[str], None] | None = None,
  pool: concurrent.futures.Executor | None = None,
) -> list[VideoState]:
  """Runs the alternating optimisation on a group of videos (in place); returns them.

  A video's segmentation job is submitted as soon as its localization is done, so with a pool
  the networks localize the next videos while the workers segment the earlier ones.

  Args:
    videos: states with ``frames`` and ``fps`` set.
    localizer: the trained networks with Eqs. (1)-(4).
    config: the experiment config (``detector``, ``segmentation``, ``dataset``).
    workers: processes for the segmentation jobs (1: in this process); ignored with ``pool``.
    log: optional callback for one line per video and iteration.
    pool: an executor for the segmentation jobs (see :func:`segmentation_pool`), kept open.
  """
  d = config.detector
  seg_config = config.segmentation
  own_pool = None
  if pool is None and len(videos) > 1:
    pool = own_pool = segmentation_pool(min(workers, len(videos)))
  try:
    net_frames = {v.video_id: localizer_lib.prepare_frames(v.frames, config) for v in videos}
    if config.clips.mask_source == "saliency":
      for v in videos:
        if v.saliency is None:  # B_o as the training cache holds it: at the networks' frame size.
          size = net_frames[v.video_id].shape[1:3]
          v.saliency = saliency_cache.video_b_o_array(v.frames, size, seg_config).astype(np.float32)
    for it in range(d.max_iterations):
      active = [v for v in videos if not v.converged]
      if not active:
        break
      localize_seconds, previous_segments, jobs = {}, {}, []
      for v in active:
        t0 = time.perf_counter()
        previous_segments[v.video_id] = v.segments
        size = net_frames[v.video_id].shape[1:3]
        masks = network_masks(v.masks, v.present, size, v.saliency)
        v.localization = localizer.localize(net_frames[v.video_id], masks, v.fps)
        localize_seconds[v.video_id] = time.perf_counter() - t0
        spans = merged_spans(v.segments, len(v.frames))
        if it == 0 and d.initial_saliency_whole_video:
          spans = [(0, len(v.frames) - 1)] if len(v.frames) else []
        args = (v.frames, spans, v.masks if it > 0 else None, seg_config)
        jobs.append(pool.submit(_segment_job, args) if pool is not None else args)
      for v, job in zip(active, jobs):
        masks, present, seconds = job.result() if pool is not None else _segment_job(job)
        change = mask_change(v.masks, v.present, masks, present)
        unchanged = it > 0 and _same_segments(previous_segments[v.video_id], v.segments)
        v.masks, v.present = masks, present
        v.converged = bool(unchanged and change is not None and change >= d.converged_mask_iou)
        entry = {
          "iteration": it,
          "num_segments": len(v.segments),
          "segments": [
            [s.label, s.start_frame, s.end_frame, round(s.score, 6)] for s in v.segments
          ],
          "mask_change": change,
          "segments_unchanged": unchanged,
          "converged": v.converged,
          "localize_seconds": round(localize_seconds[v.video_id], 3),
          "segment_seconds": round(seconds, 3),
        }
        v.iterations.append(entry)
        if log is not None:
          log(
            f"{v.video_id} iteration {it}: {len(v.segments)} segment(s), mask IoU with previous "
            f"{'-' if change is None else f'{change:.4f}'}{', converged' if v.converged else ''}"
          )
  finally:
    if own_pool is not None:
      own_pool.shutdown()
  return videos
