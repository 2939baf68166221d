"""Long videos in bounded memory: the detector over consecutive chunks of frames.

The video is read ``chunk_frames`` at a time, each chunk extended by ``margin`` frames of
context on both sides (at least the longest window, so every window of the chunk's own frames
sees the same frames as in a whole-video run) and run through the alternating optimisation.
Segments are kept where they start inside the chunk's own frames; a segment cut by a chunk
boundary is joined to its continuation when the two touch and share the class. Masks and
frames leave through a callback chunk by chunk, so memory does not grow with video length.
The context two chunks share is kept from one to the next, not read again: reads only move
forward and every frame is decoded once.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Sequence

import ml_collections
import numpy as np

from segtube_jax.detection import alternating
from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.errors import ConfigError
from segtube_jax.types import DetectedSegment


@dataclasses.dataclass
class Chunk:
  """The detector's output for the frames [start, stop) of a video."""

  start: int
  stop: int
  frames: np.ndarray  # uint8 [stop - start, H, W, 3]
  masks: np.ndarray  # bool [stop - start, H, W]
  present: np.ndarray  # bool [stop - start]
  iterations: list[dict]


def chunk_bounds(
  num_frames: int, chunk_frames: int, margin: int
) -> Iterator[tuple[int, int, int, int]]:
  """(own start, own stop, read start, read stop) per chunk."""
  for start in range(0, num_frames, chunk_frames):
    stop = min(start + chunk_frames, num_frames)
    yield start, stop, max(0, start - margin), min(num_frames, stop + margin)


def join_segments(segments: Sequence[DetectedSegment]) -> list[DetectedSegment]:
  """Joins same-class segments that touch (end == next start), e.g. across chunk boundaries."""
  out: list[DetectedSegment] = []
  for seg in sorted(segments, key=lambda s: (s.start_frame, s.class_index)):
    prev = next((p for p in reversed(out) if p.class_index == seg.class_index), None)
    if prev is not None and prev.end_frame >= seg.start_frame:
      n_prev, n_seg = prev.num_frames, seg.num_frames
      score = (prev.score * n_prev + seg.score * n_seg) / (n_prev + n_seg)
      out[out.index(prev)] = dataclasses.replace(
        prev, end_frame=max(prev.end_frame, seg.end_frame), score=score
      )
    else:
      out.append(seg)
  return sorted(out, key=lambda s: s.start_frame)


def iter_chunks(
  read: Callable[[int, int], np.ndarray],
  num_frames: int,
  fps: float,
  video_id: str,
  localizer: localizer_lib.Localizer,
  config: ml_collections.ConfigDict,
  *,
  chunk_frames: int = 2048,
  workers: int = 1,
  log: Callable[[str], None] | None = None,
) -> Iterator[tuple[Chunk, list[DetectedSegment]]]:
  """Runs the detector on a video chunk by chunk, yielding each chunk and the segments it keeps.

  Segments use whole-video frame numbers; pass all of them to :func:`join_segments`.

  Args:
    read: ``read(start, stop)`` -> uint8 frames [stop - start, H, W, 3].
    num_frames: frames in the video.
    fps: its frame rate.
    video_id: for logs.
    localizer: the networks with Eqs. (1)-(4).
    config: the experiment config.
    chunk_frames: frames per chunk (without context); memory scales with it, not the video.
    workers: processes for the segmentation stage.
    log: optional per-iteration log callback.
  """
  margin = max(int(w) for w in config.clips.window_lengths)
  if chunk_frames < 2 * margin:
    raise ConfigError(
      f"chunk_frames must be >= {2 * margin} (twice the longest window), got {chunk_frames}"
    )
  carry_start, carry = 0, None  # The previous chunk's last frames: the next one reads them again.
  for start, stop, lo, hi in chunk_bounds(num_frames, chunk_frames, margin):
    if carry is not None and carry_start <= lo < carry_start + len(carry):
      # Reads only move forward, so a video is decoded once, in order: no seek back to a
      # keyframe per chunk (and no restart from frame 0 where seeking is impossible, e.g. AVI).
      have = carry[lo - carry_start :]
      frames = np.concatenate([have, read(lo + len(have), hi)])
    else:
      frames = read(lo, hi)
    keep = min(2 * margin, len(frames))
    carry_start, carry = hi - keep, frames[len(frames) - keep :].copy()
    state = alternating.VideoState(f"{video_id}[{lo}:{hi}]", frames, fps)
    alternating.run_alternating([state], localizer, config, workers=workers, log=log)
    kept = []
    for seg in state.segments:
      f_s, f_e = seg.start_frame + lo, seg.end_frame + lo
      if start <= f_s < stop:
        kept.append(dataclasses.replace(seg, start_frame=f_s, end_frame=f_e))
      elif f_s < start < f_e:  # Began in the previous chunk's context: keep the part in ours.
        kept.append(dataclasses.replace(seg, start_frame=start, end_frame=f_e))
    a, b = start - lo, stop - lo
    yield (
      Chunk(start, stop, frames[a:b], state.masks[a:b], state.present[a:b], state.iterations),
      kept,
    )
