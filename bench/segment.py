"""Benchmarks the whole spatial segmentation stage (saliency, SLIC, GMMs, cuts) in one process.

Prints frames/s of ``segment_video`` at 320x240 and 854x480, wall clock and per CPU second
(the second is steadier on a shared machine), plus the per-step time split of one run. Frames
are the DAVIS blackswan sequence when ../shared/data is present (resized for 320x240), else a
synthetic clip of a striped ellipse moving over a textured background with camera jitter.

Usage:
  .venv/bin/python bench/segment.py [--frames 50] [--repeats 3] [--set refine.enabled=False]
"""

import argparse
import cProfile
import os
import pathlib
import pstats
import sys
import time

import cv2
import numpy as np

# Runnable from a checkout without installing the package.
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top
from segtube_jax.segment import apply_overrides
from segtube_jax.spatial import default_config, segment_video, testing
# pylint: enable=g-import-not-at-top

SIZES = ((240, 320), (480, 854))
_STEPS = {  # Function name -> step label, for the time split.
    "dense_flows": "flow", "slic_labels": "slic", "build_graph": "graph",
    "appearance_saliency": "saliency", "motion_saliency": "saliency", "fit_gmm": "gmm",
    "label_posterior": "gmm", "min_cut": "cut", "refine_masks": "refine",
    "upsample_masks": "resize", "resize_frames": "resize",
}


def load_frames(num: int) -> tuple[np.ndarray, str]:
  """Up to ``num`` DAVIS blackswan frames at 854x480, or a synthetic clip when absent."""
  shared = pathlib.Path(os.environ.get("SEGTUBE_SHARED_DATA", ROOT.parent / "shared" / "data"))
  folder = shared / "davis2016" / "blackswan" / "frames"
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


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--frames", type=int, default=50, help="frames per run")
  p.add_argument("--repeats", type=int, default=3, help="runs per size (the best is reported)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a segmentation config value")
  args = p.parse_args()
  config = apply_overrides(default_config(), args.set)
  frames, source = load_frames(args.frames)
  print(f"frames: {source}, {frames.shape[0]} per run; one process")
  for h, w in SIZES:
    clip = frames if frames.shape[1:3] == (h, w) else np.stack(
        [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
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
    parts = ", ".join(f"{k} {1000 * v / n:.1f}" for k, v in sorted(split.items(),
                                                                  key=lambda kv: -kv[1]))
    print(f"{w}x{h}: {n / min(walls):.1f} frames/s wall (best of {args.repeats}), "
          f"{n / min(cpus):.1f} frames/CPU-s; ms/frame (profiled, {1000 * total / n:.0f} "
          f"total): {parts}")


if __name__ == "__main__":
  main()
