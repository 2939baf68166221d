"""Exposure and white-balance compensation: one gain per frame and colour channel.

Automatic exposure and white balance change a frame's colours by a gain per channel as the
scene does (a dark spectator fills the view, the camera turns towards the sun). The colour
models of Eq. (6) are fitted over the whole span and the temporal term of Eq. (7) compares
colours across frames, so a drift of the gain moves the actor's colours in one frame onto the
background's in another. Measured on the 20 DAVIS development sequences with a smooth drift
of +-30% added (``--transform exposure``): mean J 0.759 -> 0.697 without this module.

The gains are estimated from the optical flow the stage computes anyway (DIS normalises each
patch's mean, so the flow itself holds under such changes): between consecutive frames, the
per-channel median log-ratio of the colours of matched pixels. Only matches the flow is sure of
count (forward-backward consistent), neither pixel dark nor saturated, so that occlusions, fast
actors and clipped highlights do not vote; a frame pair without enough of them, or whose
ratios disagree (a scene change, a pass of something across the whole view), contributes no
change. The steps are chained and centred on the span's geometric mean, and each frame is
scaled by its inverse gain. Under the drift above, mean J is 0.742 with it; on the sequences
as stored, whose estimated gains stay within +-3% to +-8%, 0.759 either way (docs/spatial.md,
"Exposure and white balance").
"""

from __future__ import annotations

import cv2
import numpy as np

from segtube_jax.errors import SegmentationError
from segtube_jax.spatial import parallel

# Flow matches further than this from a round trip (pixels of the flow's own grid) do not vote.
CONSISTENCY_PX = 0.5
# A frame pair votes only with at least this fraction of its pixels matched ...
MIN_MATCHED = 0.3
# ... and at least this fraction of them within AGREE_LOG of the median log-ratio (all channels).
MIN_AGREEING, AGREE_LOG = 0.5, 0.05
# Pixels with a channel at or below DARK, or at or above BRIGHT (8-bit), carry no ratio: noise or
# clipping.
DARK, BRIGHT = 8, 247


def _step(
  frame: np.ndarray, next_frame: np.ndarray, forward: np.ndarray, backward_next: np.ndarray
) -> np.ndarray:
  """Log-gain [3] from ``frame`` to ``next_frame`` (zeros where the pair cannot tell)."""
  h, w = frame.shape[:2]
  map_x = forward[..., 0] + np.arange(w, dtype=np.float32)
  map_y = forward[..., 1] + np.arange(h, dtype=np.float32)[:, None]
  # Outside the frame the matched colour is -1, which the range test below rejects.
  matched = cv2.remap(
    next_frame.astype(np.float32),
    map_x,
    map_y,
    cv2.INTER_LINEAR,
    borderMode=cv2.BORDER_CONSTANT,
    borderValue=(-1.0, -1.0, -1.0),
  )
  back = cv2.remap(backward_next, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
  round_trip = cv2.magnitude(forward[..., 0] + back[..., 0], forward[..., 1] + back[..., 1])
  # cv2.inRange tests all channels at once (NumPy's reductions over a last axis of 3 are slow).
  usable = (
    (round_trip < CONSISTENCY_PX)
    & (cv2.inRange(frame, (DARK + 1,) * 3, (BRIGHT - 1,) * 3) > 0)
    & (cv2.inRange(matched, (DARK + 1e-3,) * 3, (BRIGHT - 1e-3,) * 3) > 0)
  )
  if usable.mean() < MIN_MATCHED:
    return np.zeros(3)
  ratios = [
    np.log(matched[..., c][usable]) - np.log(frame[..., c][usable].astype(np.float32))
    for c in range(3)
  ]
  median = np.array([np.median(r) for r in ratios])
  agreeing = np.logical_and.reduce([np.abs(r - m) < AGREE_LOG for r, m in zip(ratios, median)])
  if agreeing.mean() < MIN_AGREEING:
    return np.zeros(3)
  return median


def exposure_gains(
  frames: np.ndarray, forward: np.ndarray, backward: np.ndarray, threads: int = 1
) -> np.ndarray:
  """Each frame's colour gain relative to the span, per channel.

  Args:
    frames: uint8 RGB frames [T,h,w,3] at the flow's resolution.
    forward: Forward flow [T,h,w,2] (frame t to t+1), as :func:`flow.dense_flows` gives it.
    backward: Backward flow [T,h,w,2] (frame t to t-1).
    threads: Frame pairs estimated at once (the gains do not depend on it).

  Returns:
    float64 [T,3] gains with a geometric mean of 1 over the span: frame t's colours are the
    span's times ``gains[t]``. All ones for fewer than two frames.

  Raises:
    SegmentationError: frames and flows of different shapes.
  """
  t, h, w = frames.shape[:3]
  if frames.shape[-1] != 3 or forward.shape != (t, h, w, 2) or backward.shape != forward.shape:
    raise SegmentationError(
      f"exposure_gains: expected frames [T,h,w,3] and flows [T,h,w,2] of the same T, h, w, "
      f"got {frames.shape}, {forward.shape}, {backward.shape}"
    )
  steps = np.zeros((t, 3))
  if t > 1:
    steps[1:] = parallel.map_frames(
      lambda k: _step(frames[k], frames[k + 1], forward[k], backward[k + 1]), range(t - 1), threads
    )
  log_gain = np.cumsum(steps, axis=0)
  return np.exp(log_gain - log_gain.mean(axis=0))


def compensate(frames: np.ndarray, gains: np.ndarray) -> np.ndarray:
  """uint8 frames [T,H,W,3] divided by their gains [T,3] (rounded, clipped to 0-255)."""
  levels = np.arange(256, dtype=np.float64)[:, None]
  out = np.empty_like(frames)
  for t, (frame, gain) in enumerate(zip(frames, gains)):
    # One table per frame and channel: a lookup costs less than arithmetic on every pixel.
    table = np.clip(np.round(levels / gain), 0, 255).astype(np.uint8)
    out[t] = cv2.LUT(frame, table[:, None, :])
  return out
