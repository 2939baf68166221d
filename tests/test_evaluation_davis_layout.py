"""Tests of segtube_jax.evaluation.davis_layout: the folder layout check and sequence loading."""

import numpy as np
from PIL import Image
import pytest

from segtube_jax.errors import DatasetError
from segtube_jax.evaluation import davis_layout, video_transforms


def _write(folder, stems, size=(40, 60)):
  (folder / "frames").mkdir(parents=True)
  (folder / "masks").mkdir()
  rng = np.random.default_rng(0)
  for k, stem in enumerate(stems):
    frame = rng.integers(0, 255, (*size, 3)).astype(np.uint8)
    frame[..., 0] = 10 * k  # The frame's position in the sequence, readable after decoding.
    Image.fromarray(frame).save(folder / "frames" / f"{stem}.png")
    mask = np.zeros(size, np.uint8)
    mask[: 2 * (k + 1)] = 255  # k + 1 pairs of rows: tells the masks apart.
    Image.fromarray(mask).save(folder / "masks" / f"{stem}.png")


def test_numeric_stems_are_ordered_as_numbers_and_paired(tmp_path):
  _write(tmp_path / "b", ["9", "10", "100"])
  _write(tmp_path / "a", ["x", "y"])
  layout = davis_layout.check_layout(tmp_path)
  assert list(layout) == ["a", "b"]  # Every sub-folder, sorted.
  frames, masks = layout["b"]
  assert [p.stem for p in frames] == ["9", "10", "100"] == [p.stem for p in masks]
  assert davis_layout.image_size(frames[0]) == (60, 40)
  with pytest.raises(DatasetError, match=r"no sequence 'c'"):
    davis_layout.check_layout(tmp_path, ["c"])


def test_load_sequence_scales_and_transforms_frames_and_masks_alike(tmp_path):
  _write(tmp_path / "s", ["0", "1", "2", "3"], size=(64, 96))
  files = davis_layout.check_layout(tmp_path)["s"]
  frames, gt, seconds = davis_layout.load_sequence("s", *files, height=0, transform="none")
  assert frames.shape == (4, 64, 96, 3) and gt.shape == (4, 64, 96) and seconds >= 0
  np.testing.assert_array_equal(gt.sum((1, 2)), [2 * 96, 4 * 96, 6 * 96, 8 * 96])
  small, small_gt, _ = davis_layout.load_sequence("s", *files, height=32, transform="none")
  assert small.shape == (4, 32, 48, 3)
  np.testing.assert_array_equal(small_gt.sum((1, 2)), [1 * 48, 2 * 48, 3 * 48, 4 * 48])
  reversed_frames, reversed_gt, _ = davis_layout.load_sequence(
    "s", *files, height=0, transform="reverse"
  )
  np.testing.assert_array_equal(reversed_frames, frames[::-1])
  np.testing.assert_array_equal(reversed_gt, gt[::-1])
  exposed, exposed_gt, _ = davis_layout.load_sequence("s", *files, height=0, transform="exposure")
  np.testing.assert_array_equal(exposed_gt, gt)  # A photometric transform keeps the masks.
  expected = video_transforms.apply_transform("exposure", frames, gt)[0]
  np.testing.assert_array_equal(exposed, expected)
