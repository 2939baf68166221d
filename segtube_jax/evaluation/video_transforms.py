"""Nuisance transforms of a video and its masks, to probe how the segmentation generalizes.

Twenty development sequences are too few to tell a general gain from one that fits them: a
sequence's J moves by several points under changes that should not matter to a segmentation
method at all (mirroring, playing backwards, another framing of the same scene). Each transform
here maps a sequence (frames and ground-truth masks alike) to a new, equally valid test case:

- ``none``: the sequence as stored.
- ``flip``: mirrored left-right.
- ``reverse``: played backwards (forward and backward flow swap roles).
- ``crop``: the central 80% of the rows and columns (a closer framing; actors near the border
  partly leave the view).
- ``pan``: an 80% window that sweeps across the frame, twice left-right and at 0.7 of that rate
  up-down, a camera pan of up to about 1.6% of the width per frame added to the camera's own
  motion (14 pixels per frame at 854x480 over 75 frames).
- ``shake``: an 80% window that follows a seeded random walk plus per-frame jitter (steps with a
  standard deviation of 0.7% of the width and 0.8% of the height): a hand-held camera.
- ``noise``: seeded Gaussian sensor noise, standard deviation 8 grey levels per channel.
- ``exposure``: automatic exposure and white balance at work: every frame's brightness is scaled
  by a gain that drifts smoothly between 0.74 and 1.35 (period 40 frames, seeded phase), each
  colour channel by a further +-8% on its own phase; bright parts saturate.
- ``blur``: motion blur from a hand-held camera: each frame is averaged along a line of seeded
  direction and length (up to 2% of the frame's width, 17 pixels at 854x480).
- ``jpeg``: every frame re-encoded as a JPEG of quality 20 (4:2:0 chroma), the blocking and
  ringing of low-bitrate web video such as THUMOS14's.

The photometric transforms (``noise``, ``exposure``, ``blur``, ``jpeg``) leave the masks as they
are. Every transform is deterministic: the same input and seed give the same output. Used by the
evaluation command's ``--transform`` and ``bench/segment_seeds.py --transforms``.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from segtube_jax.errors import ConfigError

TRANSFORMS = (
  "none",
  "flip",
  "reverse",
  "crop",
  "pan",
  "shake",
  "noise",
  "exposure",
  "blur",
  "jpeg",
)
WINDOW = 0.8  # The moving window's side, as a fraction of the frame's (crop, pan, shake).
# Transforms that change colours only: frames keep their geometry, masks stay as they are.
PHOTOMETRIC = ("noise", "exposure", "blur", "jpeg")
NOISE_STD = 8.0  # Grey levels.
EXPOSURE_LOG_GAIN, CHANNEL_LOG_GAIN, EXPOSURE_PERIOD = 0.3, 0.08, 40.0  # Gains, frames.
BLUR_MAX_LENGTH = 0.02  # Fraction of the frame's width.
JPEG_QUALITY = 20
MIN_WINDOW = 16  # Pixels: the segmentation's smallest frame side.
_SHAKE_STEP = (0.008, 0.007)  # Random-walk and jitter std, fractions of (rows, columns).


def check_transform(name: str) -> str:
  """``name`` if it is one of :data:`TRANSFORMS`, else ConfigError naming the choices."""
  if name not in TRANSFORMS:
    raise ConfigError(f"transform: expected one of {', '.join(TRANSFORMS)}, got {name!r}")
  return name


def source_frames(name: str, num_frames: int) -> np.ndarray:
  """Index [T] of the stored frame each frame of the transformed video comes from."""
  order = np.arange(num_frames)
  return order[::-1].copy() if check_transform(name) == "reverse" else order


def _window_offsets(
  name: str, t: int, rows: int, cols: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int, int]:
  """Top-left corners [t] (rows, columns) and size of the window per frame."""
  wh, ww = max(1, int(round(WINDOW * rows))), max(1, int(round(WINDOW * cols)))
  margin_y, margin_x = rows - wh, cols - ww
  ys = np.full(t, margin_y / 2.0)
  xs = np.full(t, margin_x / 2.0)
  if name == "pan":
    # Two sweeps over the sequence, whatever its length; 0.95 keeps the window inside.
    phase = np.linspace(0.0, 4.0 * np.pi, t)
    xs = margin_x / 2.0 * (1.0 + 0.95 * np.sin(phase))
    ys = margin_y / 2.0 * (1.0 + 0.5 * np.sin(0.7 * phase))
  elif name == "shake":
    step_y, step_x = _SHAKE_STEP[0] * rows, _SHAKE_STEP[1] * cols
    walk = np.cumsum(rng.normal(0.0, 1.0, (2, t)), axis=1)
    jitter = rng.normal(0.0, 1.0, (2, t))
    ys = ys + step_y * (walk[0] + jitter[0])
    xs = xs + step_x * (walk[1] + jitter[1])
  ys = np.clip(np.round(ys), 0, margin_y).astype(np.int64)
  xs = np.clip(np.round(xs), 0, margin_x).astype(np.int64)
  return ys, xs, wh, ww


def _exposure_gains(t: int, rng: np.random.Generator) -> np.ndarray:
  """Per-frame, per-channel gains [T,3]: a smooth exposure drift times a white-balance drift."""
  phase = rng.uniform(0.0, 2.0 * np.pi, 4)
  k = 2.0 * np.pi * np.arange(t)[:, None] / EXPOSURE_PERIOD
  exposure = EXPOSURE_LOG_GAIN * np.sin(k + phase[0])
  balance = CHANNEL_LOG_GAIN * np.sin(k + phase[1:])
  return np.exp(exposure + balance)


def _blur_kernel(length: float, angle: float) -> np.ndarray:
  """Normalised line kernel of ``length`` pixels at ``angle`` radians (a point for < 1 pixel)."""
  size = int(np.ceil(length)) | 1
  kernel = np.zeros((size, size), np.float32)
  c, half = size // 2, max(length - 1.0, 0.0) / 2.0
  dx, dy = half * np.cos(angle), half * np.sin(angle)
  p0 = (int(round(c * 16 - dx * 16)), int(round(c * 16 - dy * 16)))
  p1 = (int(round(c * 16 + dx * 16)), int(round(c * 16 + dy * 16)))
  cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift=4)  # Sub-pixel ends, anti-aliased.
  return kernel / kernel.sum()


def _photometric(name: str, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """``exposure``, ``blur`` or ``jpeg`` applied to every frame; the geometry is untouched."""
  t, _, cols, _ = frames.shape
  if name == "exposure":
    gained = frames.astype(np.float32) * _exposure_gains(t, rng)[:, None, None, :].astype(
      np.float32
    )
    return np.clip(np.round(gained), 0, 255).astype(np.uint8)
  if name == "blur":
    lengths = rng.uniform(0.0, BLUR_MAX_LENGTH * cols, t)
    angles = rng.uniform(0.0, np.pi, t)
    return np.stack(
      [
        cv2.filter2D(f, -1, _blur_kernel(n, a), borderType=cv2.BORDER_REFLECT)
        for f, n, a in zip(frames, lengths, angles)
      ]
    )
  out = []
  for f in frames:
    buffer = io.BytesIO()
    Image.fromarray(f).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=2)
    out.append(np.asarray(Image.open(buffer).convert("RGB")))
  return np.stack(out)


def apply_transform(
  name: str, frames: np.ndarray, masks: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """Applies transform ``name`` to a video and its ground truth alike.

  Args:
    name: One of :data:`TRANSFORMS`.
    frames: uint8 RGB frames [T,H,W,3].
    masks: Bool ground-truth masks [T,H,W], aligned with ``frames``.
    seed: Seed of the random transforms (``shake``, ``noise``, ``exposure``, ``blur``).

  Returns:
    (frames, masks) transformed; new arrays, the inputs are not modified. The window transforms
    give frames of ``round(0.8 H) x round(0.8 W)``.

  Raises:
    ConfigError: an unknown transform, frames and masks that do not match, or frames too small
      for a window transform's window to be at least 16 pixels a side.
  """
  check_transform(name)
  if frames.ndim != 4 or frames.shape[-1] != 3 or masks.shape != frames.shape[:3]:
    raise ConfigError(
      f"transform {name!r}: expected frames [T,H,W,3] and masks [T,H,W] of the same T, H, W, "
      f"got {frames.shape} and {masks.shape}"
    )
  rng = np.random.default_rng(seed)
  if name == "none":
    return frames.copy(), masks.copy()
  if name == "flip":
    return frames[:, :, ::-1].copy(), masks[:, :, ::-1].copy()
  if name == "reverse":
    return frames[::-1].copy(), masks[::-1].copy()
  if name == "noise":
    noisy = frames.astype(np.float32) + rng.normal(0.0, NOISE_STD, frames.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8), masks.copy()
  if name in PHOTOMETRIC[1:]:
    return _photometric(name, frames, rng), masks.copy()
  t, rows, cols = masks.shape
  ys, xs, wh, ww = _window_offsets(name, t, rows, cols, rng)
  if min(wh, ww) < MIN_WINDOW:
    raise ConfigError(
      f"transform {name!r}: its {WINDOW:.0%} window of {cols}x{rows} frames is {ww}x{wh}, "
      f"expected at least {MIN_WINDOW}x{MIN_WINDOW}"
    )
  out_frames = np.stack([frames[k, y : y + wh, x : x + ww] for k, (y, x) in enumerate(zip(ys, xs))])
  out_masks = np.stack([masks[k, y : y + wh, x : x + ww] for k, (y, x) in enumerate(zip(ys, xs))])
  return out_frames, out_masks
