"""One synthetic video: its plan (every random draw) and its rendering to frames and masks.

A video shows one textured actor on a textured background. The actor idles (slow random drift,
slow rotation, now and then a straight "dash" that belongs to no class) and, during 1 or 2 action
instances, performs a class motion: the classes differ ONLY in how the actor moves. Appearance is
drawn on a random stream that never sees the class. Each video has its own streams, seeded by
(seed, video index, stream), so a video renders the same in any process.
:mod:`segtube_jax.data.synthetic` writes whole datasets of them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from PIL import Image

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.errors import ConfigError

# Class motions; a dataset with K classes uses the first K.
MOTIONS = ("Spin", "Hop", "Slide", "Pulse", "Orbit", "Squash", "Swing")
FRAME_FORMATS = ("mp4", "png", "jpg")
# Random stream ids: appearance never depends on the class, which is drawn on its own stream.
_APPEARANCE, _TIMELINE, _CLASS, _MOTION, _NOISE, _CAMERA, _WANDER = range(7)
# Motion amplitudes as fractions of the frame size (translation) or of the actor (scale, angle).
_TRANSLATION = 0.16
_SCALE = 0.35
_SWING = 0.8
_MIN_IDLE = 8  # Frames of idling at least before the first and after the last instance.
_MIN_GAP = 16  # Idle frames at least between two instances.


@dataclasses.dataclass(frozen=True)
class Options:
  """Generator options (sizes in pixels, durations in frames)."""

  size: int = 64
  num_classes: int = 6
  min_frames: int = 150
  max_frames: int = 400
  min_instance: int = 24
  max_instance: int = 96
  fps: float = 25.0
  two_instance_prob: float = 0.5
  split: tuple[float, float, float] = (0.6, 0.2, 0.2)
  actor_size: tuple[float, float] = (0.10, 0.15)  # Range of the actor's semi-major axis / size.
  max_distractors: int = 3
  noise: float = 4.0  # Pixel noise standard deviation, in 0..255 levels.
  jitter: float = 0.03  # Camera jitter amplitude, as a fraction of the frame size.
  dash_prob: float = 0.5  # Chance that an idle stretch of >= 40 frames contains a dash.
  frame_format: str = "mp4"
  crf: int = 18
  workers: int = 2  # Processes; the output does not depend on it.

  def validate(self) -> None:
    """Raises ConfigError naming the first impossible option."""
    if self.size < 32 or self.size % 2:
      raise ConfigError(
        f"size must be an even number >= 32 (the actor needs room), got {self.size}"
      )
    if not 1 <= self.num_classes <= len(MOTIONS):
      raise ConfigError(
        f"num_classes must be in 1..{len(MOTIONS)} (motions {MOTIONS}), got {self.num_classes}"
      )
    if not 8 <= self.min_instance <= self.max_instance:
      raise ConfigError(
        f"need 8 <= min_instance <= max_instance, got {self.min_instance}, {self.max_instance}"
      )
    if self.min_frames > self.max_frames:
      raise ConfigError(f"min_frames ({self.min_frames}) must be <= max_frames ({self.max_frames})")
    if self.min_frames < self.min_instance + 2 * _MIN_IDLE:
      raise ConfigError(
        f"min_frames must be >= min_instance + {2 * _MIN_IDLE} idle frames = "
        f"{self.min_instance + 2 * _MIN_IDLE}, got {self.min_frames}"
      )
    if not self.fps > 0 or not 0 <= self.crf <= 51:
      raise ConfigError(f"need fps > 0 and crf in 0..51, got fps {self.fps}, crf {self.crf}")
    if not 0 <= self.two_instance_prob <= 1 or not 0 <= self.dash_prob <= 1:
      raise ConfigError("two_instance_prob and dash_prob must be probabilities in [0, 1]")
    if len(self.split) != 3 or min(self.split) < 0 or not math.isclose(sum(self.split), 1.0):
      raise ConfigError(f"split must be 3 non-negative fractions summing to 1, got {self.split}")
    if len(self.actor_size) != 2 or not 0.05 <= self.actor_size[0] <= self.actor_size[1] <= 0.25:
      raise ConfigError(
        f"actor_size must be a range (lo, hi) with 0.05 <= lo <= hi <= 0.25, got {self.actor_size}"
      )
    if self.max_distractors < 0 or self.noise < 0 or not 0 <= self.jitter <= 0.1:
      raise ConfigError("need max_distractors >= 0, noise >= 0 and jitter in [0, 0.1]")
    if self.frame_format not in FRAME_FORMATS:
      raise ConfigError(f"frame_format must be one of {FRAME_FORMATS}, got {self.frame_format!r}")
    if self.workers < 1:
      raise ConfigError(f"workers must be >= 1, got {self.workers}")


@dataclasses.dataclass
class VideoPlan:
  """Everything needed to render one video (all random draws are done here)."""

  video_id: str
  subset: str
  num_frames: int
  instances: list[tuple[int, int, int]]  # (class index, first frame, end frame exclusive)
  appearance: dict[str, Any]
  seeds: tuple[int, int]  # (seed, index) of the random streams used while rendering.


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def assign_subsets(num_videos: int, split: tuple[float, float, float]) -> list[str]:
  """Subset of each video index, in contiguous blocks sized by largest remainders.

  From 3 videos on, validation and testing get at least one video each when their fraction is > 0.
  """
  exact = np.asarray(split, float) * num_videos
  counts = np.floor(exact).astype(int)
  counts[np.argsort(counts - exact, kind="stable")[: num_videos - counts.sum()]] += 1
  for k in (1, 2):
    if num_videos >= 3 and split[k] > 0 and counts[k] == 0:
      counts[k] += 1
      counts[np.argmax(counts)] -= 1
  return [name for name, c in zip(dataset_lib.SUBSETS, counts) for _ in range(c)]


def sample_appearance(seed: int, index: int, opts: Options) -> dict[str, Any]:
  """Draws the look of a video: background, actor and distractors. Independent of the class."""
  rng, s = _rng(seed, index, _APPEARANCE), opts.size
  bg_color = rng.uniform(50, 205, 3)
  actor_color = rng.uniform(15, 240, 3)
  while np.linalg.norm(actor_color - bg_color) < 110:  # Contrast enough to be segmentable.
    actor_color = rng.uniform(15, 240, 3)
  a = s * rng.uniform(*opts.actor_size)  # Semi-major axis.
  margin = a + _TRANSLATION * s + 1  # Room for the widest motion of any class.
  num_distractors = int(rng.integers(min(1, opts.max_distractors), opts.max_distractors + 1))
  return {
    "bg_color": bg_color,
    "bg_gratings": rng.uniform(0, 1, (3, 4)),
    "bg_noise": rng.uniform(-1, 1, (6, 6, 3)),
    "actor_color": actor_color,
    "a": a,
    "b": a / rng.uniform(1.4, 1.9),
    "lobes": (int(rng.integers(3, 5)), rng.uniform(0.0, 0.15)),
    "texture": (
      str(rng.choice(["stripes", "checker", "rings"])),
      rng.uniform(1.2, 2.2),
      rng.uniform(0.25, 0.4),
    ),
    "start": rng.uniform(margin, s - margin, 2),
    "angle": rng.uniform(0, 2 * np.pi),
    "margin": margin,
    "distractors": [
      {
        "shape": str(rng.choice(["square", "triangle", "ring", "diamond"])),
        "r": s * rng.uniform(0.06, 0.11),
        "color": rng.uniform(15, 240, 3),
        "pos": rng.uniform(0, s, 2),
        "vel": rng.uniform(0.1, 0.5) * s / 64 * np.array([np.cos(t), np.sin(t)]),
      }
      for t in rng.uniform(0, 2 * np.pi, num_distractors)
    ],
  }


def plan_video(seed: int, index: int, subset: str, first_class: int, opts: Options) -> VideoPlan:
  """Draws the timeline of one video; ``first_class`` only affects the instances' labels."""
  rng = _rng(seed, index, _TIMELINE)
  n = int(rng.integers(opts.min_frames, opts.max_frames + 1))
  lengths = list(rng.integers(opts.min_instance, opts.max_instance + 1, 2))
  two = rng.random() < opts.two_instance_prob
  if not two or sum(lengths) + 2 * _MIN_IDLE + _MIN_GAP > n:
    lengths = [min(lengths[0], n - 2 * _MIN_IDLE)]
  gaps = [_MIN_IDLE] + [_MIN_GAP] * (len(lengths) - 1) + [_MIN_IDLE]
  # Spread the spare frames over the idle stretches at random.
  cuts = np.sort(rng.integers(0, n - sum(lengths) - sum(gaps) + 1, len(gaps) - 1))
  extra = np.diff(np.concatenate([[0], cuts, [n - sum(lengths) - sum(gaps)]]))
  crng = _rng(seed, index, _CLASS)
  second = (
    first_class
    if crng.random() < 0.5
    else int((first_class + crng.integers(1, max(2, opts.num_classes))) % opts.num_classes)
  )
  instances, f = [], 0
  for i, length in enumerate(lengths):
    f += gaps[i] + int(extra[i])
    instances.append((first_class if i == 0 else second, f, f + int(length)))
    f += int(length)
  return VideoPlan(
    f"synth_{index:05d}", subset, n, instances, sample_appearance(seed, index, opts), (seed, index)
  )


def actor_trajectory(plan: VideoPlan, opts: Options) -> dict[str, np.ndarray]:
  """Per-frame actor centre (x, y), angle and scales (sx, sy): idle wander plus class motions."""
  seed, index = plan.seeds
  rng, app, s, n = _rng(seed, index, _WANDER), plan.appearance, opts.size, plan.num_frames
  lo, hi = app["margin"], s - app["margin"]
  # Idle: slowly varying drift velocity (AR(1)), plus straight dashes in idle stretches.
  push = np.zeros((n, 2))
  bounds = [0] + [f for _, fs, fe in plan.instances for f in (fs, fe)] + [n]
  for start, stop in zip(bounds[::2], bounds[1::2]):
    if stop - start >= 40 and rng.random() < opts.dash_prob:
      dur = int(rng.integers(8, 13))
      t0 = int(rng.integers(start + 4, stop - dur - 4))
      # Diagonal directions only, so a dash never looks like a Slide or a Hop.
      theta = rng.uniform(np.pi / 6, np.pi / 3) + np.pi / 2 * rng.integers(0, 4)
      bump = np.sin(np.pi * (np.arange(dur) + 0.5) / dur) ** 2
      push[t0 : t0 + dur] = 0.2 * s * (bump / bump.sum())[:, None] * [np.cos(theta), np.sin(theta)]
  eps = rng.normal(0, 0.12 * s / 64, (n, 2))  # Drift speed std: 0.12 px/frame at 64 px.
  base, vel = np.zeros((n, 2)), np.zeros(2)
  x = app["start"].copy()
  for t in range(n):
    vel = 0.97 * vel + 0.243 * eps[t]  # 0.243 = sqrt(1 - 0.97^2): stationary std = eps std.
    x = x + vel + push[t]
    # Bounce off the allowed region (reflect the position, turn the velocity inwards).
    vel = np.where(x < lo, np.abs(vel), np.where(x > hi, -np.abs(vel), vel))
    x = np.where(x < lo, 2 * lo - x, np.where(x > hi, 2 * hi - x, x))
    base[t] = x
  angle = app["angle"] + np.cumsum(rng.normal(0, 0.01, n))
  offset, scale = np.zeros((n, 2)), np.ones((n, 2))
  for i, (cls, fs, fe) in enumerate(plan.instances):
    mrng = _rng(seed, index, _MOTION * 1000 + i)
    length, sign = fe - fs, float(mrng.choice([-1.0, 1.0]))
    k = np.arange(length)
    u = (k + 0.5) / length
    # Whole half-cycles per instance, so every motion returns to rest at the instance end.
    half = max(1, int(round(2 * length / mrng.uniform(12, 20))))
    wave = np.sin(np.pi * half * u)
    amp = _TRANSLATION * s * mrng.uniform(0.85, 1.0)
    name = MOTIONS[cls]
    if name == "Spin":
      spin = sign * 2 * np.pi / mrng.uniform(12, 20) * (k + 1)
      angle[fs:fe] += spin
      angle[fe:] += spin[-1]
    elif name == "Hop":
      offset[fs:fe, 1] = -amp * np.abs(wave)
    elif name == "Slide":
      offset[fs:fe, 0] = sign * amp * wave
    elif name == "Pulse":
      scale[fs:fe] = (1 + _SCALE * wave)[:, None]
    elif name == "Orbit":
      phase = 2 * np.pi * max(1, half // 2) * u
      # A circle of diameter ``amp`` through the rest position: stays inside the margin.
      offset[fs:fe] = 0.5 * amp * np.stack([sign * np.sin(phase), np.cos(phase) - 1], 1)
    elif name == "Squash":
      scale[fs:fe, 0] = 1 + _SCALE * wave
      scale[fs:fe, 1] = 1 / scale[fs:fe, 0]
    elif name == "Swing":
      angle[fs:fe] += sign * _SWING * np.sin(2 * np.pi * max(1, half // 2) * u)
  return {"center": base + offset, "angle": angle, "scale": scale}


def _background(app: dict[str, Any], size: int) -> np.ndarray:
  """A textured RGB canvas of side ``size`` (float32, 0..255): gratings plus smooth noise."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
  g = app["bg_gratings"]
  tex = sum(
    np.sin(
      2 * np.pi * ((2 + 6 * gi[0]) * (np.cos(6.28 * gi[1]) * x + np.sin(6.28 * gi[1]) * y) + gi[2])
    )
    * (0.5 + gi[3])
    for gi in g
  )
  noise = np.stack(
    [
      np.asarray(
        Image.fromarray(app["bg_noise"][..., c].astype(np.float32)).resize(
          (size, size), Image.BICUBIC
        )
      )
      for c in range(3)
    ],
    -1,
  )
  return (app["bg_color"] + 10 * tex[..., None] + 25 * noise).astype(np.float32)


def _distractor_support(d: dict[str, Any], dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
  r, shape = d["r"], d["shape"]
  if shape == "square":
    return np.maximum(np.abs(dx), np.abs(dy)) <= r
  if shape == "diamond":
    return np.abs(dx) + np.abs(dy) <= 1.3 * r
  if shape == "ring":
    rho2 = dx * dx + dy * dy
    return (rho2 <= r * r) & (rho2 >= (0.55 * r) ** 2)
  # Triangle pointing up: below two slanted edges and above the base.
  return (dy <= 0.6 * r) & (2 * np.abs(dx) - dy <= 1.2 * r)


def _window(
  center: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Per-frame pixel windows around ``center`` [T, 2]: rows ys, columns xs [T, w], and the
  offsets dy [T, w, 1], dx [T, 1, w] of their pixel centres (shapes are evaluated there only)."""
  w = 2 * int(math.ceil(radius)) + 2
  steps = np.arange(w)
  xs, ys = (np.floor(center[:, k]).astype(int)[:, None] - w // 2 + steps for k in (0, 1))
  c = center.astype(np.float32)
  dx = (xs + np.float32(0.5) - c[:, :1])[:, None, :].astype(np.float32)
  dy = (ys + np.float32(0.5) - c[:, 1:])[:, :, None].astype(np.float32)
  return ys, xs, dy, dx


def _paste(
  frames: np.ndarray,
  ys: np.ndarray,
  xs: np.ndarray,
  inside: np.ndarray,
  color: np.ndarray,
  mask: np.ndarray | None = None,
) -> None:
  """Writes ``color`` [T, w, w, 3] where ``inside`` [T, w, w] into ``frames`` (clipped to the frame)."""
  size = frames.shape[1]
  inside = inside & ((ys >= 0) & (ys < size))[:, :, None] & ((xs >= 0) & (xs < size))[:, None, :]
  t, i, k = np.nonzero(inside)
  frames[t, ys[t, i], xs[t, k]] = color[t, i, k]
  if mask is not None:
    mask[t, ys[t, i], xs[t, k]] = True


def _camera(seed: int, index: int, n: int, amplitude: int) -> np.ndarray:
  """Integer camera shifts [T, 2]: a smoothed random walk, centred, clipped to the amplitude."""
  if not amplitude:
    return np.zeros((n, 2), int)
  walk = np.cumsum(_rng(seed, index, _CAMERA).normal(0, 0.5, (n + 7, 2)), 0)
  smooth = np.stack([np.convolve(walk[:, k], np.ones(8) / 8, "valid") for k in range(2)], 1)
  return np.clip(np.round(smooth - smooth.mean(0)), -amplitude, amplitude).astype(int)


def render_video(plan: VideoPlan, opts: Options) -> tuple[np.ndarray, np.ndarray]:
  """Renders ``(frames uint8 [T, S, S, 3], actor masks bool [T, S, S])``."""
  seed, index = plan.seeds
  app, s, n = plan.appearance, opts.size, plan.num_frames
  traj = actor_trajectory(plan, opts)
  # Camera jitter shifts the whole scene: crop the padded background, move objects by -cam.
  j = int(round(opts.jitter * s))
  cam = _camera(seed, index, n, j)
  canvas = _background(app, s + 2 * j)
  frames = np.empty((n, s, s, 3), np.float32)
  for t, (cx, cy) in enumerate(cam + j):  # Slicing per frame beats one big fancy-index gather.
    frames[t] = canvas[cy : cy + s, cx : cx + s]
  for d in app["distractors"]:
    # Constant velocity, bouncing off the frame borders (a triangle wave per axis).
    pos = d["pos"][None] + d["vel"][None] * np.arange(n)[:, None]
    pos = s - np.abs(np.mod(pos, 2 * s) - s) - cam
    ys, xs, dy, dx = _window(pos, 1.3 * d["r"])
    inside = _distractor_support(d, dx, dy)
    shade = d["color"].astype(np.float32) * (1 + 0.25 * np.clip(dx / d["r"], -1, 1))[..., None]
    _paste(frames, ys, xs, inside, np.broadcast_to(shade, inside.shape + (3,)))
  # Actor: inverse-transform window pixels into the actor's frame and test the lobed ellipse.
  lobes, depth = app["lobes"]
  ys, xs, dy, dx = _window(traj["center"] - cam, app["a"] * (1 + _SCALE) * (1 + depth) + 1)
  cos = np.cos(traj["angle"]).astype(np.float32)[:, None, None]
  sin = np.sin(traj["angle"]).astype(np.float32)[:, None, None]
  scale = traj["scale"].astype(np.float32)
  u = (cos * dx + sin * dy) / (np.float32(app["a"]) * scale[:, 0, None, None])
  v = (cos * dy - sin * dx) / (np.float32(app["b"]) * scale[:, 1, None, None])
  rho = np.sqrt(u * u + v * v) + np.float32(1e-6)
  c = u / rho  # cos(phi); cos(k phi) by Chebyshev polynomials, cheaper than arctan2.
  c2 = c * c
  cos_k = c * (4 * c2 - 3) if lobes == 3 else 8 * c2 * (c2 - 1) + 1
  inside = rho <= 1 + np.float32(depth) * cos_k
  kind, freq, contrast = app["texture"]
  wave = np.float32(2 * np.pi * freq)
  if kind == "stripes":
    tex = np.sign(np.sin(wave * u))
  elif kind == "checker":
    tex = np.sign(np.sin(wave * u) * np.sin(wave * v))
  else:
    tex = np.sign(np.sin(wave * rho))
  actor = app["actor_color"].astype(np.float32) * (1 + np.float32(contrast) * tex)[..., None]
  mask = np.zeros((n, s, s), bool)
  _paste(frames, ys, xs, inside, actor, mask)
  # Sensor: global flicker and luminance noise (uniform with std ``noise``: cheaper than normal).
  nrng = _rng(seed, index, _NOISE)
  frames *= (1 + nrng.normal(0, 0.015, (n, 1, 1, 1))).astype(np.float32)
  frames += (nrng.random((n, s, s, 1), dtype=np.float32) - np.float32(0.5)) * np.float32(
    opts.noise * 12**0.5
  )
  np.clip(frames + np.float32(0.5), 0, 255, out=frames)  # + 0.5 then truncation rounds.
  return frames.astype(np.uint8), mask


def plan_dataset(num_videos: int, seed: int, opts: Options) -> list[VideoPlan]:
  """Plans every video; the first instance's class goes round-robin within each subset."""
  subsets, counters = assign_subsets(num_videos, opts.split), {}
  plans = []
  for index, subset in enumerate(subsets):
    k = counters.get(subset, 0)
    counters[subset] = k + 1
    plans.append(plan_video(seed, index, subset, k % opts.num_classes, opts))
  return plans
