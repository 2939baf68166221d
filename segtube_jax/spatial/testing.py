"""Tiny synthetic clips with exact masks, for the segmentation tests and benchmark.

A striped ellipse (the actor) moves across a smooth random background; the camera jitters by a
few pixels per frame. Deliberately independent of segtube_jax.data.synthetic, so the spatial
stage can be tested on its own.
"""

import cv2
import numpy as np


def moving_actor_clip(
  num_frames: int = 12,
  size: tuple[int, int] = (96, 128),
  seed: int = 0,
  jitter: int = 2,
  speed: float = 0.04,
  exit_frame: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Renders (frames uint8 [T,H,W,3], masks bool [T,H,W]).

  Args:
    num_frames: T.
    size: (rows, cols).
    seed: Seed of the background, colours and jitter.
    jitter: Camera shake amplitude in pixels.
    speed: Actor displacement per frame as a fraction of the frame width.
    exit_frame: From this frame on the actor runs out of the view to the right (a quarter of
      the width per frame) and stays out; None keeps it in view.
  """
  rng = np.random.default_rng(seed)
  h, w = size
  pad = jitter + 1
  noise = rng.uniform(0, 255, (h + 2 * pad, w + 2 * pad, 3)).astype(np.float32)
  bg = cv2.GaussianBlur(noise, (0, 0), max(2.0, 0.04 * h))
  bg = cv2.normalize(bg, None, 60, 190, cv2.NORM_MINMAX)
  colour = np.array([225.0, 40.0, 40.0]) if rng.random() < 0.5 else np.array([40.0, 60.0, 230.0])
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  a, b = 0.16 * w, 0.22 * h
  frames = np.empty((num_frames, h, w, 3), np.uint8)
  masks = np.empty((num_frames, h, w), bool)
  x0 = 0.3 * w - 0.5 * speed * w * num_frames
  for t in range(num_frames):
    dx, dy = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
    frame = bg[pad + dy : pad + dy + h, pad + dx : pad + dx + w].copy()
    cx = float(np.clip(x0 + speed * w * t, a, w - a) + 0.2 * w)
    if exit_frame is not None and t >= exit_frame:
      cx += 0.25 * w * (t - exit_frame + 1)
    cy = 0.5 * h + 0.1 * h * np.sin(t / 3.0)
    inside = ((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2 <= 1.0
    stripes = np.sin((xs - cx) / max(1.0, 0.02 * w)) > 0
    actor = np.where(stripes[..., None], colour, 0.6 * colour)
    frame[inside] = actor[inside]
    frames[t] = np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)
    masks[t] = inside
  return frames, masks
