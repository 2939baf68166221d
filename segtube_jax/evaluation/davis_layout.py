"""The DAVIS folder layout: checking it before any work, and loading one sequence.

Layout: ``ROOT/<seq>/frames/*.jpg`` (RGB; .jpeg and .png also read) and ``ROOT/<seq>/masks/*.png``
(0 / 255), one mask per frame under the frame's stem. Numeric stems sort as numbers. Used by the
evaluation command (:mod:`segtube_jax.evaluation.davis`).
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import pathlib
import time

import numpy as np
from PIL import Image

from segtube_jax.data import video
from segtube_jax.errors import DatasetError
from segtube_jax.evaluation import video_transforms
from segtube_jax.spatial import flow as flow_lib

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def _image_files(folder: pathlib.Path, suffixes: tuple[str, ...]) -> list[pathlib.Path]:
  files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
  numeric = all(p.stem.isdigit() for p in files)
  return sorted(files, key=(lambda p: (int(p.stem), p.name)) if numeric else (lambda p: p.name))


def image_size(path: pathlib.Path) -> tuple[int, int]:
  """(width, height) from the header; DatasetError when the file is no readable image."""
  try:
    with Image.open(path) as im:
      return im.size
  except Exception as e:  # PIL raises many types on bad files.
    raise DatasetError(f"{path}: expected a readable image ({type(e).__name__}: {e})") from None


def check_layout(
  root: str | os.PathLike, sequences: Sequence[str] | None = None
) -> dict[str, tuple[list[pathlib.Path], list[pathlib.Path]]]:
  """Checks the DAVIS layout of the sequences under ``root`` without decoding any image.

  Args:
    root: The folder of sequences.
    sequences: Names to check; None for every sub-folder (sorted).

  Returns:
    ``{sequence: (frame files, mask files)}`` in order, the files paired by stem.

  Raises:
    DatasetError: a missing root or sequence, no frames/ or masks/, a different number of frames
      and masks, mismatched stems, an unreadable image, or a mask or frame of another size.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise DatasetError(
      f"{root}: expected a folder of sequences (<seq>/frames, <seq>/masks), not found"
    )
  available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
  if sequences is None:
    sequences = available
  unknown = [s for s in sequences if s not in available]
  if unknown:
    raise DatasetError(
      f"{root}: no sequence {', '.join(map(repr, unknown))} (it has {len(available)}: "
      f"{', '.join(available[:8])}{', ...' if len(available) > 8 else ''})"
    )
  if not sequences:
    raise DatasetError(f"{root}: expected at least one sequence folder, found none")
  out = {}
  for seq in sequences:
    folder = root / seq
    for sub in ("frames", "masks"):
      if not (folder / sub).is_dir():
        raise DatasetError(f"sequence {seq!r}: expected a {sub}/ folder in {folder}, not found")
    frames = _image_files(folder / "frames", FRAME_SUFFIXES)
    masks = _image_files(folder / "masks", (".png",))
    if not frames:
      raise DatasetError(
        f"sequence {seq!r}: expected frame images (.jpg) in {folder / 'frames'}, found none"
      )
    if len(frames) != len(masks):
      raise DatasetError(
        f"sequence {seq!r}: {len(frames)} frames but {len(masks)} masks "
        f"(expected one masks/<stem>.png per frame)"
      )
    if [f.stem for f in frames] != [m.stem for m in masks]:
      lone_frames = [f.name for f in frames if f.stem not in {m.stem for m in masks}]
      lone_masks = [m.name for m in masks if m.stem not in {f.stem for f in frames}]
      raise DatasetError(
        f"sequence {seq!r}: frame and mask names differ: no mask for frames {lone_frames[:5]}, "
        f"no frame for masks {lone_masks[:5]} (expected masks/<stem>.png for frames/<stem>.jpg)"
      )
    size = image_size(frames[0])
    for f, m in zip(frames, masks):
      if (fs := image_size(f)) != size:
        raise DatasetError(
          f"sequence {seq!r}: frame {f} is {fs[0]}x{fs[1]}, expected {size[0]}x{size[1]}"
        )
      if (ms := image_size(m)) != size:
        raise DatasetError(
          f"sequence {seq!r}: mask {m} is {ms[0]}x{ms[1]}, expected the frame size "
          f"{size[0]}x{size[1]}"
        )
    out[seq] = (frames, masks)
  return out


def load_sequence(
  name: str,
  frame_files: Sequence[pathlib.Path],
  mask_files: Sequence[pathlib.Path],
  height: int,
  transform: str,
) -> tuple[np.ndarray, np.ndarray, float]:
  """(frames, ground truth, seconds to read the frames), scaled to ``height`` and transformed."""
  start = time.perf_counter()
  frames = np.stack([video.load_image(p, "RGB") for p in frame_files])
  size = flow_lib.work_size(*frames.shape[1:3], height) if height else frames.shape[1:3]
  frames = flow_lib.resize_frames(frames, size)
  seconds = time.perf_counter() - start
  gt = np.stack([video.load_image(p, "L") > 127 for p in mask_files])
  gt = flow_lib.resize_frames(gt.astype(np.uint8) * 255, size) > 127
  if gt.shape != frames.shape[:3]:  # check_layout compares headers; decoded sizes agree.
    raise DatasetError(
      f"sequence {name!r}: masks {gt.shape} differ from the frames {frames.shape[:3]}"
    )
  if transform != "none":
    frames, gt = video_transforms.apply_transform(transform, frames, gt)
  return frames, gt, seconds
