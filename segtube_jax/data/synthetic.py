"""Generates a synthetic untrimmed action dataset (videos, per-frame masks) in the project's format.

Each video shows one textured actor on a textured background. The actor idles (slow random drift,
slow rotation, now and then a straight "dash" that belongs to no class) and, during 1 or 2 action
instances, performs a class motion: the classes differ ONLY in how the actor moves. Appearance
(colour, texture, shape, size, start position) is drawn from a random stream that never sees the
class, so a detector must look at motion. Distractor shapes drift slowly, the camera jitters and
pixel noise is added. Masks are the actor's exact rendered support, written for action frames only.

Every video has its own random streams seeded by (seed, video index, stream): the output is
byte-identical for the same arguments, whatever the number of worker processes. Usage::

  python -m segtube_jax.data.synthetic --out /tmp/syn --num_videos 200 --seed 0 [--actor_size=0.18,0.24]

Other flags: the fields of synthetic.Options; pairs and triples are comma-separated.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import multiprocessing
import pathlib
import shutil
import sys
import time
from typing import Any

from absl import flags
import numpy as np
from PIL import Image

from segtube_jax import cli
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import video as video_lib
from segtube_jax.errors import ConfigError, DatasetError

# Class motions; a dataset with K classes uses the first K.
MOTIONS = ("Spin", "Hop", "Slide", "Pulse", "Orbit", "Squash", "Swing")
VERSION = "segtube-synthetic-1"
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


def _write_one(out_dir: str, plan: VideoPlan, opts: Options) -> dict[str, Any]:
  """Renders and writes one video's media and masks; returns its annotations.json record."""
  root = pathlib.Path(out_dir)
  frames, masks = render_video(plan, opts)
  if opts.frame_format == "mp4":
    video_lib.write_video(root / "videos" / f"{plan.video_id}.mp4", frames, opts.fps, crf=opts.crf)
  else:
    folder = root / "frames" / plan.video_id
    folder.mkdir(parents=True, exist_ok=True)
    quality = {"quality": 95} if opts.frame_format == "jpg" else {}
    for f, frame in enumerate(frames):
      Image.fromarray(frame).save(folder / f"{f:06d}.{opts.frame_format}", **quality)
  folder = root / "masks" / plan.video_id
  folder.mkdir(parents=True, exist_ok=True)
  for _, fs, fe in plan.instances:
    for f in range(fs, fe):
      Image.fromarray(masks[f].astype(np.uint8) * 255).save(folder / f"{f:06d}.png")
  classes = MOTIONS[: opts.num_classes]
  segments = [
    {"label": classes[c], "segment": [fs / opts.fps, fe / opts.fps]} for c, fs, fe in plan.instances
  ]
  return {
    "subset": plan.subset,
    "fps": opts.fps,
    "num_frames": plan.num_frames,
    "duration": plan.num_frames / opts.fps,
    "annotations": segments,
    "ambiguous": [],
  }


def plan_dataset(num_videos: int, seed: int, opts: Options) -> list[VideoPlan]:
  """Plans every video; the first instance's class goes round-robin within each subset."""
  subsets, counters = assign_subsets(num_videos, opts.split), {}
  plans = []
  for index, subset in enumerate(subsets):
    k = counters.get(subset, 0)
    counters[subset] = k + 1
    plans.append(plan_video(seed, index, subset, k % opts.num_classes, opts))
  return plans


def generate_dataset(
  out_dir: str | pathlib.Path,
  num_videos: int,
  seed: int = 0,
  *,
  overwrite: bool = False,
  **options: Any,
) -> dict[str, Any]:
  """Writes a synthetic dataset to ``out_dir`` and returns its summary (see :func:`summarize`).

  Args:
    out_dir: the dataset folder to create; must be absent or empty unless ``overwrite``.
    num_videos: how many videos (>= 1).
    seed: the random seed; the same arguments give byte-identical files.
    overwrite: replace the dataset parts (annotations.json, videos/, frames/, masks/) of ``out_dir``.
    **options: fields of :class:`Options`.

  Raises:
    ConfigError: an option is unknown or impossible.
    DatasetError: ``out_dir`` is not empty and ``overwrite`` is False.
  """
  known = [f.name for f in dataclasses.fields(Options)]
  if set(options) - set(known):
    raise ConfigError(
      f"unknown synthetic dataset options {sorted(set(options) - set(known))}; known: {known}"
    )
  opts = Options(**options)
  opts.validate()
  if not isinstance(num_videos, int) or num_videos < 1:
    raise ConfigError(f"num_videos must be an integer >= 1, got {num_videos!r}")
  root = pathlib.Path(out_dir)
  if root.exists() and any(root.iterdir()):
    if not overwrite:
      raise DatasetError(
        f"{root}: output folder is not empty (pass overwrite=True / --overwrite to replace it)"
      )
    for name in ("videos", "frames", "masks"):
      shutil.rmtree(root / name, ignore_errors=True)
    (root / "annotations.json").unlink(missing_ok=True)
  (root / ("videos" if opts.frame_format == "mp4" else "frames")).mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  plans = plan_dataset(num_videos, seed, opts)
  if opts.workers > 1 and len(plans) > 1:
    # Spawned (not forked) workers: the caller may have started threads (JAX does).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
      min(opts.workers, len(plans)), mp_context=ctx
    ) as pool:
      records = list(
        pool.map(_write_one, [str(root)] * len(plans), plans, [opts] * len(plans), chunksize=4)
      )
  else:
    records = [_write_one(str(root), p, opts) for p in plans]
  generator = {
    k: list(v) if isinstance(v, tuple) else v
    for k, v in dataclasses.asdict(opts).items()
    if k not in ("workers",)
  }
  dataset_lib.write_annotations(
    root / "annotations.json",
    {
      "version": VERSION,
      "classes": list(MOTIONS[: opts.num_classes]),
      "database": {p.video_id: r for p, r in zip(plans, records)},
      "generator": dict(generator, seed=seed, num_videos=num_videos),
    },
  )
  summary = summarize(root)
  summary["seconds"] = round(time.perf_counter() - start, 2)
  return summary


def summarize(root: str | pathlib.Path) -> dict[str, Any]:
  """Counts of a dataset folder: videos per subset, instances per class, frames and mask frames."""
  data = dataset_lib.read_annotations_json(pathlib.Path(root) / "annotations.json")
  _, classes, videos, problems = dataset_lib.parse_annotations(
    data, str(pathlib.Path(root) / "annotations.json")
  )
  if problems:
    raise DatasetError("\n  ".join([f"{root}: invalid annotations:"] + problems[:10]))
  per_subset = {s: sum(v.subset == s for v in videos.values()) for s in dataset_lib.SUBSETS}
  per_class = {c: 0 for c in classes}
  action_frames = 0
  for v in videos.values():
    for inst in v.annotations:
      per_class[inst.label] += 1
      if v.fps:
        fs, fe = inst.frame_span(v.fps)
        action_frames += fe - fs
  mask_dir = pathlib.Path(root) / "masks"
  mask_frames = (
    sum(1 for vid in videos for _ in (mask_dir / vid).glob("*.png")) if mask_dir.is_dir() else 0
  )
  return {
    "root": str(root),
    "num_videos": len(videos),
    "videos_per_subset": per_subset,
    "instances_per_class": per_class,
    "num_frames": sum(v.num_frames or 0 for v in videos.values()),
    "action_frames": action_frames,
    "mask_frames": mask_frames,
  }


def format_summary(summary: dict[str, Any]) -> str:
  """A few human-readable lines for a :func:`summarize` dict."""
  lines = [
    f"dataset {summary['root']}: {summary['num_videos']} videos, {summary['num_frames']} frames "
    f"({summary['action_frames']} in actions, {summary['mask_frames']} with masks)",
    "  videos per subset: "
    + ", ".join(f"{k} {v}" for k, v in summary["videos_per_subset"].items()),
    "  instances per class: "
    + ", ".join(f"{k} {v}" for k, v in summary["instances_per_class"].items()),
  ]
  if "seconds" in summary:
    lines.append(f"  generated in {summary['seconds']:.1f} s")
  return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
  """Defines the command's flags on ``fv``: the dataset's, then one per :class:`Options` field."""
  defaults = Options()
  flags.DEFINE_string("out", None, "Dataset folder to write.", flag_values=fv)
  flags.DEFINE_integer("num_videos", None, "Videos to generate.", flag_values=fv)
  flags.DEFINE_integer(
    "seed", 0, "Random seed; the same flags give byte-identical files.", flag_values=fv
  )
  flags.DEFINE_bool("overwrite", False, "Replace an existing dataset in --out.", flag_values=fv)
  flags.mark_flags_as_required(["out", "num_videos"], flag_values=fv)
  cli.define_floats(
    "split", defaults.split, "TRAIN,VAL,TEST", "Fractions of the videos per subset.", fv
  )
  cli.define_floats(
    "actor_size",
    defaults.actor_size,
    "LO,HI",
    "Range of the actor's semi-major axis as a fraction of the frame size.",
    fv,
  )
  flags.DEFINE_enum(
    "frame_format",
    defaults.frame_format,
    FRAME_FORMATS,
    "Videos (mp4) or frame folders.",
    flag_values=fv,
  )
  define = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
  for f in dataclasses.fields(Options):
    if f.name not in ("split", "frame_format", "actor_size"):
      value = getattr(defaults, f.name)
      define[type(value)](f.name, value, f"Options.{f.name}.", flag_values=fv)


def _generate(fv: flags.FlagValues) -> int:
  options = {f.name: fv[f.name].value for f in dataclasses.fields(Options)}
  print(
    format_summary(
      generate_dataset(fv.out, fv.num_videos, fv.seed, overwrite=fv.overwrite, **options)
    )
  )
  return 0


# The demo dataset: bigger actors than the generator's default, so that the motions that tell
# the classes apart survive the networks' 32x32 input; shorter videos keep packing and
# evaluation within the demo's time.
DEMO_OPTIONS = {
  "actor_size": (0.18, 0.24),
  "min_frames": 120,
  "max_frames": 300,
  "split": (0.7, 0.15, 0.15),
}


def prepare_demo_dataset(
  root: str | pathlib.Path, num_videos: int, seed: int
) -> tuple[dict, float | None]:
  """Generates the dataset unless ``root`` already holds one made with the same arguments."""
  root = pathlib.Path(root)
  ann = root / "annotations.json"
  if ann.is_file():
    made = dataset_lib.read_annotations_json(ann).get("generator", {})
    same = all(
      made.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in DEMO_OPTIONS.items()
    )
    if made.get("num_videos") == num_videos and made.get("seed") == seed and same:
      return summarize(root), None
  t0 = time.perf_counter()
  generate_dataset(root, num_videos, seed, overwrite=True, **DEMO_OPTIONS)
  return summarize(root), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit status (0 ok, 2 bad input)."""
  return cli.run_command(
    __doc__, define_flags, _generate, argv, "python -m segtube_jax.data.synthetic"
  )


if __name__ == "__main__":
  sys.exit(main())
