"""Tiny dataset folders in the project's format, written for the data-layer tests."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
from PIL import Image

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import video as video_lib

FPS = 25.0
SIZE = (32, 32)  # (height, width) of the source frames.


def _frames(rng: np.random.Generator, n: int) -> np.ndarray:
  # Smooth-ish random frames: blocks keep the H.264 encoding cheap and the content varied.
  small = rng.integers(0, 256, (n, SIZE[0] // 8, SIZE[1] // 8, 3), dtype=np.uint8)
  return small.repeat(8, axis=1).repeat(8, axis=2)


def write_tiny_dataset(
  root: pathlib.Path, videos: dict[str, dict[str, Any]], classes: list[str], seed: int = 0
) -> pathlib.Path:
  """Writes ``root`` with one entry per video.

  Each spec has ``n`` (frames), ``subset``, optional ``annotations`` ([label, t0, t1] ...),
  ``ambiguous`` ([t0, t1] ...), ``masks`` (frame indices with a mask file), ``folder`` (True:
  a frames/ folder of PNGs instead of an mp4) and ``null_meta`` (fps/num_frames left null).
  """
  rng = np.random.default_rng(seed)
  root.mkdir(parents=True, exist_ok=True)
  database = {}
  for vid, spec in videos.items():
    n = spec["n"]
    frames = _frames(rng, n)
    if spec.get("folder"):
      folder = root / "frames" / vid
      folder.mkdir(parents=True)
      for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:06d}.png")
    else:
      (root / "videos").mkdir(exist_ok=True)
      video_lib.write_video(root / "videos" / f"{vid}.mp4", frames, fps=FPS)
    if spec.get("masks"):
      folder = root / "masks" / vid
      folder.mkdir(parents=True)
      for i in spec["masks"]:
        m = np.zeros(SIZE, np.uint8)
        m[
          rng.integers(0, 16) : rng.integers(17, 32), rng.integers(0, 16) : rng.integers(17, 32)
        ] = 255
        Image.fromarray(m).save(folder / f"{i:06d}.png")
    null = spec.get("null_meta", False)
    database[vid] = {
      "subset": spec["subset"],
      "fps": None if null else FPS,
      "num_frames": None if null else n,
      "duration": None if null else n / FPS,
      "annotations": [
        {"label": a[0], "segment": [a[1], a[2]]} for a in spec.get("annotations", [])
      ],
      "ambiguous": [list(s) for s in spec.get("ambiguous", [])],
    }
  dataset_lib.write_annotations(
    root / "annotations.json", {"version": "tiny", "classes": classes, "database": database}
  )
  return root


def standard_tiny_dataset(root: pathlib.Path) -> pathlib.Path:
  """Three videos (two mp4, one frame folder; 40-70 frames; masks on some frames; two subsets)."""
  return write_tiny_dataset(
    root,
    {
      "vid_a": {
        "n": 48,
        "subset": "training",
        "masks": [0, 3, 17, 40, 47],
        "annotations": [["Jump", 0.3, 1.1], ["Run", 1.0, 1.5]],
        "ambiguous": [[1.6, 1.8]],
      },
      "vid_b": {"n": 40, "subset": "training", "folder": True, "annotations": [["Run", 0.0, 0.5]]},
      "vid_c": {
        "n": 70,
        "subset": "testing",
        "masks": [33, 34],
        "annotations": [["Jump", 2.0, 2.8]],
      },
    },
    ["Jump", "Run"],
  )
