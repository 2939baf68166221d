"""Frame resizing and dense optical flow (OpenCV DIS) for the segmentation stage.

Flow serves two purposes: motion saliency for the initial segmentation B_o (Sec. 2.3) and the
temporal neighbourhood N_i of Eq. (5), which links superpixels along the flow rather than at the
same pixel position (a moving actor rarely overlaps itself between frames at the same place).
"""

import threading

import cv2
import numpy as np

from segtube_jax.errors import SegmentationError
from segtube_jax.spatial import parallel

# DIS refuses frames below 12 pixels a side; below 16 its pyramid holds no usable motion.
MIN_FLOW_SIZE = 16

_PRESETS = {
  "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
  "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def work_size(height: int, width: int, work_height: int) -> tuple[int, int]:
  """Returns (rows, cols) of a frame scaled to ``work_height`` rows, never upscaled."""
  if height <= work_height:
    return height, width
  return work_height, max(1, int(round(width * work_height / height)))


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Resizes uint8 frames [T,H,W,3] to ``size`` = (rows, cols) with area averaging."""
  rows, cols = size
  if frames.shape[1:3] == (rows, cols):
    return frames
  return np.stack([cv2.resize(f, (cols, rows), interpolation=cv2.INTER_AREA) for f in frames])


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Nearest-neighbour resize of integer label maps [T,H,W] to ``size`` = (rows, cols)."""
  rows, cols = size
  if labels.shape[1:3] == (rows, cols):
    return labels
  # cv2 nearest resize does not take int64; int32 labels suffice for any frame.
  return np.stack(
    [cv2.resize(l.astype(np.int32), (cols, rows), interpolation=cv2.INTER_NEAREST) for l in labels]
  )


def dense_flows(
  frames: np.ndarray,
  preset: str = "fast",
  size: tuple[int, int] | None = None,
  finest_scale: int | None = None,
  threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
  """Forward and backward DIS optical flow between consecutive frames.

  Args:
    frames: uint8 [T,H,W,3] RGB frames; flow is computed at this resolution.
    preset: DIS preset name, "ultrafast", "fast" or "medium".
    size: (rows, cols) to average the flow fields down to (vectors rescaled), or None. Done
      frame by frame so that full-resolution flow of a long span is never held in memory.
    finest_scale: The finest pyramid level DIS estimates patches at (0: the frames' own
      resolution, each level halves it; below it the field is only upsampled and refined), or
      None for the preset's own (2 for "ultrafast" and "fast", 1 for "medium"). Lowered where
      it would leave no coarser level to search from (:func:`max_finest_scale`).
    threads: Frame pairs computed at once, each thread with its own DIS instance (the fields
      do not depend on it: DIS starts every pair afresh).

  Returns:
    (forward, backward), float32 [T,rows,cols,2] each, (dx, dy) in pixels of the output size.
    forward[t] maps frame t to t+1 (zero for the last frame); backward[t] maps frame t to t-1
    (zero for the first frame). Frames smaller than MIN_FLOW_SIZE a side get zero flow.
  """
  if preset not in _PRESETS:
    raise SegmentationError(f"flow preset {preset!r}: expected one of {sorted(_PRESETS)}")
  if finest_scale is not None and not (isinstance(finest_scale, int) and finest_scale >= 0):
    raise SegmentationError(f"flow finest_scale {finest_scale!r}: expected an integer >= 0")
  t, h, w = frames.shape[:3]
  rows, cols = (h, w) if size is None else size
  forward = np.zeros((t, rows, cols, 2), np.float32)
  backward = np.zeros((t, rows, cols, 2), np.float32)
  if t < 2 or min(h, w) < MIN_FLOW_SIZE:
    return forward, backward
  gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
  local = threading.local()

  def one_pair(i: int) -> None:
    # A DIS instance keeps buffers between calls, so each thread has its own.
    if not hasattr(local, "dis"):
      local.dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
      if finest_scale is not None:
        local.dis.setFinestScale(
          min(finest_scale, max_finest_scale(h, w, local.dis.getPatchSize()))
        )
    forward[i] = _resize_field(local.dis.calc(gray[i], gray[i + 1], None), (rows, cols))
    backward[i + 1] = _resize_field(local.dis.calc(gray[i + 1], gray[i], None), (rows, cols))

  parallel.map_frames(one_pair, range(t - 1), threads)
  return forward, backward


def max_finest_scale(height: int, width: int, patch_size: int) -> int:
  """The finest DIS pyramid level that still leaves a coarser level above it.

  DIS searches coarse to fine, from the level where a quarter of the frame is about one patch
  (OpenCV's coarsest level, after Kroeger et al. 2016) down to the finest. On small frames
  (under ~90 pixels a side) those two levels meet, and a search on a single level loses every
  displacement larger than a patch; keeping two levels is what OpenCV's "fast" preset falls
  back to there itself.
  """
  coarsest = min(
    int(np.log2(max(height, width) / (4.0 * patch_size)) + 0.5),
    int(np.log2(min(height, width) / patch_size)),
  )
  return max(coarsest - 1, 0)


def _resize_field(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Area-resizes one flow field [H,W,2] to ``size`` = (rows, cols), rescaling the vectors."""
  rows, cols = size
  h, w = flow.shape[:2]
  if (h, w) == (rows, cols):
    return flow
  scale = np.array([cols / w, rows / h], np.float32)
  return cv2.resize(flow, (cols, rows), interpolation=cv2.INTER_AREA) * scale


def warp_targets(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Flat pixel indices that ``flow`` [H,W,2] sends each pixel to, and which stay inside.

  Returns:
    (source, target): int64 flat indices into an [H,W] image of equal length; pixels whose
    flow leaves the frame are dropped.
  """
  h, w = flow.shape[:2]
  ys, xs = np.mgrid[0:h, 0:w]
  tx = np.rint(xs + flow[..., 0]).astype(np.int64)
  ty = np.rint(ys + flow[..., 1]).astype(np.int64)
  inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
  source = (ys * w + xs)[inside]
  return source.astype(np.int64), (ty * w + tx)[inside]
