"""Library entry point: segment frames f_s..f_e of a video given as an array or a reader.

Validates the input, reads only the span, runs :func:`actor_masks.segment_span` at work resolution
and upsamples the masks to the frame size. Frames outside the span get empty masks.
"""

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import cv2
import ml_collections
import numpy as np

from segtube_jax import schema
from segtube_jax.errors import SegmentationError
from segtube_jax.spatial import actor_masks
from segtube_jax.spatial import flow as flow_lib


class FrameReader(Protocol):
  """What :func:`segment_video` needs of a frame reader (see segtube_jax.data.video)."""

  num_frames: int
  height: int
  width: int

  def read(self, start: int = 0, stop: int | None = None, size: Any = None) -> np.ndarray: ...


Frames = np.ndarray | Sequence[np.ndarray] | FrameReader

MIN_SIZE = 16  # Smallest frame side: SLIC, flow and the border prior need a few pixels.

# What segment_video_stages returns: B_o, the superpixel labelling after the cuts and the region
# selection, and the final (refined) masks.
STAGES = ("initial", "cut", "final")


def _as_source(frames: Frames) -> tuple[np.ndarray | FrameReader, int, int, int]:
  """Normalises ``frames`` to an array or a reader and returns (source, T, H, W)."""
  if isinstance(frames, (list, tuple)):
    shapes = sorted({tuple(np.shape(f)) for f in frames})
    if len(shapes) > 1:
      raise SegmentationError(
        f"frames: expected frames of one size, got {len(shapes)} different shapes "
        f"{shapes[:3]}; resize them to one size first"
      )
    frames = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
  if isinstance(frames, np.ndarray):
    if frames.ndim != 4 or frames.shape[-1] != 3:
      raise SegmentationError(
        f"frames: expected an RGB array [T,H,W,3], got shape {tuple(frames.shape)}"
      )
    if frames.dtype != np.uint8:
      raise SegmentationError(f"frames: expected dtype uint8 (0..255 RGB), got {frames.dtype}")
    return frames, frames.shape[0], frames.shape[1], frames.shape[2]
  if not all(hasattr(frames, a) for a in ("num_frames", "height", "width", "read")):
    raise SegmentationError(
      f"frames: expected a uint8 array [T,H,W,3] or a frame reader (num_frames, height, width, "
      f"read), got {type(frames).__name__}"
    )
  return frames, int(frames.num_frames), int(frames.height), int(frames.width)


def check_span(span: Sequence[int] | None, num_frames: int) -> tuple[int, int]:
  """Validates an inclusive span [f_s, f_e] of a video; None means the whole video.

  Raises:
    SegmentationError: for an empty video, an empty span (f_s > f_e) or a span that leaves
      the video.
  """
  if num_frames < 1:
    raise SegmentationError("frames: expected at least one frame, got an empty video")
  if span is None:
    return 0, num_frames - 1
  if len(span) != 2:
    raise SegmentationError(f"span {span!r}: expected two frame indices (f_s, f_e)")
  start, end = (int(v) for v in span)
  if start > end:
    raise SegmentationError(f"span [{start}, {end}]: expected f_s <= f_e (the span is empty)")
  if start < 0 or end >= num_frames:
    raise SegmentationError(
      f"span [{start}, {end}]: expected 0 <= f_s <= f_e <= {num_frames - 1} (the video has "
      f"{num_frames} frames)"
    )
  return start, end


def _read(
  source: np.ndarray | FrameReader, start: int, stop: int, size: tuple[int, int]
) -> np.ndarray:
  """Frames [start, stop) as uint8 [T,H,W,3], checked against the video's size."""
  clip = (
    source[start:stop] if isinstance(source, np.ndarray) else np.asarray(source.read(start, stop))
  )
  if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
    raise SegmentationError(
      f"frames [{start}, {stop}): expected uint8 [T,H,W,3] RGB from the reader, got "
      f"{clip.dtype} {tuple(clip.shape)}"
    )
  if clip.shape[0] != stop - start or clip.shape[1:3] != size:
    raise SegmentationError(
      f"frames [{start}, {stop}): expected {stop - start} frames of {size[1]}x{size[0]}, the "
      f"reader returned {clip.shape[0]} of {clip.shape[2]}x{clip.shape[1]}"
    )
  return clip


def upsample_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Bilinear upsampling of bool masks [T,h,w] to ``size`` = (rows, cols), thresholded at 0.5.

  Interpolating then thresholding gives smooth diagonal boundaries instead of the staircase a
  nearest-neighbour upsampling leaves.
  """
  rows, cols = size
  if masks.shape[1:3] == (rows, cols):
    return masks.astype(bool)
  return np.stack(
    [
      cv2.resize(m.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR) > 0.5
      for m in masks
    ]
  )


def iter_span_masks(
  frames: Frames,
  span: Sequence[int] | None = None,
  previous_masks: np.ndarray | None = None,
  config: ml_collections.ConfigDict | None = None,
  initial_only: bool = False,
  stages: bool = False,
) -> Iterator[tuple[int, np.ndarray | dict[str, np.ndarray]]]:
  """Segments the span chunk by chunk, yielding (first frame, bool masks [t,H,W]).

  Spans longer than ``config.max_span_frames`` are cut into that many frames per graph, so
  memory stays bounded (about 2-3 MB per frame at the defaults); chunks share no temporal edges.
  Arguments are those of :func:`segment_video`; ``initial_only`` yields the saliency
  segmentation B_o instead (no graph cut, see :func:`initial_masks`); ``stages`` yields a dict
  of the masks of every step (see :func:`segment_video_stages`).
  """
  config = schema.segmentation_config() if config is None else config
  schema.validate_segmentation(config)
  source, num, height, width = _as_source(frames)
  start, end = check_span(span, num)
  if min(height, width) < MIN_SIZE:
    raise SegmentationError(
      f"frames: expected at least {MIN_SIZE}x{MIN_SIZE} pixels, got {width}x{height}"
    )
  if previous_masks is not None:
    previous_masks = np.asarray(previous_masks)
    if previous_masks.shape != (num, height, width):
      raise SegmentationError(
        f"previous_masks: expected shape {(num, height, width)} (one mask per video frame), "
        f"got {tuple(previous_masks.shape)}"
      )
  size = flow_lib.work_size(height, width, config.work_height)
  step = config.max_span_frames
  for first in range(start, end + 1, step):
    stop = min(first + step, end + 1)
    clip = flow_lib.resize_frames(_read(source, first, stop, (height, width)), size)
    if initial_only:
      yield first, upsample_masks(actor_masks.initial_segmentation(clip, config), (height, width))
      continue
    init = None
    if previous_masks is not None:
      init = flow_lib.resize_labels(previous_masks[first:stop].astype(np.uint8), size) > 0
    result = actor_masks.segment_span(clip, config, init)
    final = upsample_masks(result.masks, (height, width))
    if not stages:
      yield first, final
      continue
    # Superpixel labellings take the masks' path (nearest to work resolution, then bilinear):
    # "initial" equals initial_masks() and, unrefined, "cut" equals "final".
    initial, cut = (
      upsample_masks(actor_masks.label_masks(result.graph, labels, size), (height, width))
      for labels in (result.initial, result.labels)
    )
    yield first, {"initial": initial, "cut": cut, "final": final}


def segment_video(
  frames: Frames,
  span: Sequence[int] | None = None,
  previous_masks: np.ndarray | None = None,
  config: ml_collections.ConfigDict | None = None,
) -> np.ndarray:
  """Segments the actor in frames f_s..f_e of a video by minimising Eq. (5).

  Args:
    frames: uint8 [T,H,W,3] RGB array (or a list of equal-size [H,W,3] frames), or a frame
      reader with ``num_frames``, ``height``, ``width`` and ``read(start, stop)``; only the
      span is read.
    span: Inclusive frame range (f_s, f_e); None for the whole video.
    previous_masks: Optional bool [T,H,W] masks of the previous iteration of the alternating
      optimisation (Sec. 2.3); they replace the saliency initialisation B_o in the span frames
      where they hold any foreground. None: unsupervised, saliency initialisation.
    config: Segmentation config; None for :func:`segtube_jax.schema.segmentation_config`.

  Returns:
    bool [T,H,W] masks at full frame resolution; frames outside the span are all False.

  Raises:
    SegmentationError: on an empty or out-of-range span, frames that are not uint8 RGB of one
      size, or previous masks of the wrong shape.
  """
  source, num, height, width = _as_source(frames)
  out = np.zeros((num, height, width), bool)
  for first, masks in iter_span_masks(source, span, previous_masks, config):
    out[first : first + masks.shape[0]] = masks
  return out


def segment_video_stages(
  frames: Frames,
  span: Sequence[int] | None = None,
  previous_masks: np.ndarray | None = None,
  config: ml_collections.ConfigDict | None = None,
) -> dict[str, np.ndarray]:
  """:func:`segment_video` with the masks of each of its steps, to see which step fails where.

  Arguments and errors are those of :func:`segment_video`.

  Returns:
    bool [T,H,W] masks at full frame resolution for each of :data:`STAGES`: "initial" is the
    initial segmentation B_o (or the previous masks where given), "cut" the superpixel labelling
    after the graph cuts of Eq. (5) and the region selection, "final" what
    :func:`segment_video` returns (after the pixel-level refinement, when enabled).
  """
  source, num, height, width = _as_source(frames)
  out = {k: np.zeros((num, height, width), bool) for k in STAGES}
  for first, masks in iter_span_masks(source, span, previous_masks, config, stages=True):
    for k in STAGES:
      out[k][first : first + masks[k].shape[0]] = masks[k]
  return out


def initial_masks(
  frames: Frames, span: Sequence[int] | None = None, config: ml_collections.ConfigDict | None = None
) -> np.ndarray:
  """The initial segmentation B_o of Sec. 2.3 (saliency, no graph cut) of frames f_s..f_e.

  The saliency-aware clips of Sec. 2.1 attenuate the background outside these masks. Arguments
  and errors are those of :func:`segment_video`; frames outside the span are all False.

  Returns:
    bool [T,H,W] at full frame resolution.
  """
  source, num, height, width = _as_source(frames)
  out = np.zeros((num, height, width), bool)
  for first, masks in iter_span_masks(source, span, None, config, initial_only=True):
    out[first : first + masks.shape[0]] = masks
  return out
