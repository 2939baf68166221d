"""Benchmarks the whole spatial segmentation stage (saliency, SLIC, GMMs, cuts) in one process.

Prints frames/s of ``segment_video`` at 320x240 and 854x480, wall clock and per CPU second
(the second is steadier on a shared machine), plus the per-step time split of one run. Frames
are the DAVIS blackswan sequence when ../shared/data is present (resized for 320x240), else a
synthetic clip of a striped ellipse moving over a textured background with camera jitter.

Then, when the DAVIS sequences are present, it times the command-line tool end to end, as a
user runs it (one process: startup, JPEG decoding, segmentation, PNG writing), on whole
854x480 sequences: ``python -m segtube_jax.segment_actors --frames DIR --out DIR``.

Usage:
  .venv/bin/python bench/segment.py [--frames 50] [--repeats 3] [--set refine.enabled=False]
                                    [--cli_sequences blackswan,bmx-bumps,kite-walk]
"""

from collections.abc import Sequence
import cProfile
import os
import pathlib
import pstats
import subprocess
import sys
import tempfile
import time

from absl import app, flags
import cv2
import numpy as np

# Runnable from a checkout without installing the package.
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top
from segtube_jax import schema
from segtube_jax.cli import apply_overrides
from segtube_jax.spatial import segment_video, testing

# pylint: enable=g-import-not-at-top

SIZES = ((240, 320), (480, 854))
_STEPS = {  # Function name -> step label, for the time split.
  "dense_flows": "flow",
  "exposure_gains": "exposure",
  "compensate": "exposure",
  "slic_labels": "slic",
  "build_graph": "graph",
  "appearance_saliency": "saliency",
  "motion_saliency": "saliency",
  "background_consistency": "background",
  "fit_gmm": "gmm",
  "label_posterior": "gmm",
  "min_cut": "cut",
  "refine_masks": "refine",
  "upsample_masks": "resize",
  "resize_frames": "resize",
}


SHARED = pathlib.Path(os.environ.get("SEGTUBE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_frames(num: int) -> tuple[np.ndarray, str]:
  """Up to ``num`` DAVIS blackswan frames at 854x480, or a synthetic clip when absent."""
  folder = SHARED / "davis2016" / "blackswan" / "frames"
  files = sorted(folder.glob("*.jpg"))[:num] if folder.is_dir() else []
  if not files:
    return testing.moving_actor_clip(num, SIZES[1])[0], "synthetic (spatial.testing)"
  frames = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
  return np.stack(frames), "davis2016/blackswan"


def step_split(frames: np.ndarray, config) -> dict[str, float]:
  """Seconds per pipeline step of one profiled run."""
  prof = cProfile.Profile()
  prof.enable()
  segment_video(frames, None, None, config)
  prof.disable()
  stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
  split: dict[str, float] = {}
  for (_, _, name), (_, _, _, cumulative, _) in stats.items():
    if name in _STEPS:
      split[_STEPS[name]] = split.get(_STEPS[name], 0.0) + cumulative
  return split


def cli_frames_per_second(sequence: str, overrides: list[str]) -> tuple[int, float] | None:
  """(frames, frames/s) of one ``python -m segtube_jax.segment_actors`` run on a DAVIS sequence."""
  folder = SHARED / "davis2016" / sequence / "frames"
  if not folder.is_dir():
    return None
  num = len(list(folder.glob("*.jpg")))
  with tempfile.TemporaryDirectory() as out:
    cmd = [
      sys.executable,
      "-m",
      "segtube_jax.segment_actors",
      "--frames",
      str(folder),
      "--out",
      out,
    ]
    cmd += [a for o in overrides for a in ("--set", o)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return num, num / (time.perf_counter() - start)


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags (when it runs as a program, never at import)."""
  flags.DEFINE_integer("frames", 50, "Frames per run.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer(
    "repeats", 3, "Runs per size (the best is reported).", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_multi_string("set", [], "Segmentation config override KEY=VALUE.", flag_values=fv)
  flags.DEFINE_list(
    "cli_sequences",
    ["blackswan", "bmx-bumps", "kite-walk"],
    "Comma-separated DAVIS sequences for the end-to-end CLI timing (--cli_sequences= to skip).",
    flag_values=fv,
  )


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  args = flags.FLAGS
  config = apply_overrides(schema.segmentation_config(), args.set)
  frames, source = load_frames(args.frames)
  print(f"frames: {source}, {frames.shape[0]} per run; one process")
  for h, w in SIZES:
    clip = (
      frames
      if frames.shape[1:3] == (h, w)
      else np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
    )
    segment_video(clip[:3], None, None, config)  # Warm-up: imports, allocator.
    walls, cpus = [], []
    for _ in range(args.repeats):
      w0, c0 = time.perf_counter(), time.process_time()
      segment_video(clip, None, None, config)
      walls.append(time.perf_counter() - w0)
      cpus.append(time.process_time() - c0)
    n = clip.shape[0]
    split = step_split(clip, config)
    total = sum(split.values())
    parts = ", ".join(
      f"{k} {1000 * v / n:.1f}" for k, v in sorted(split.items(), key=lambda kv: -kv[1])
    )
    print(
      f"{w}x{h}: {n / min(walls):.1f} frames/s wall (best of {args.repeats}), "
      f"{n / min(cpus):.1f} frames/CPU-s; ms/frame (profiled, {1000 * total / n:.0f} "
      f"total): {parts}"
    )
  for sequence in filter(None, args.cli_sequences):
    timed = cli_frames_per_second(sequence, args.set)
    if timed is not None:
      print(
        f"segment CLI, {sequence} (854x480, {timed[0]} frames, startup included): "
        f"{timed[1]:.1f} frames/s"
      )


if __name__ == "__main__":
  define_flags()
  app.run(main)
