"""Tests of PNG mask output and the process pool (segtube_jax.spatial.batch)."""

import pathlib

import numpy as np
from PIL import Image
import pytest

from segtube_jax.errors import SegmentationError
from segtube_jax.evaluation.masks import region_similarity
from segtube_jax.spatial import SegmentJob, batch, segment_videos, testing


def _frame_folder(root: pathlib.Path, seed: int, num: int = 6) -> tuple[pathlib.Path, np.ndarray]:
  frames, masks = testing.moving_actor_clip(num, (48, 64), seed=seed)
  folder = root / f"video{seed}"
  folder.mkdir()
  for i, f in enumerate(frames):
    Image.fromarray(f).save(folder / f"{i:05d}.png")
  return folder, masks


def _read_masks(folder: pathlib.Path) -> np.ndarray:
  return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def test_write_masks_and_empty_masks(tmp_path):
  masks = np.zeros((2, 4, 5), bool)
  masks[1, 1:3, 2] = True
  batch.write_masks(masks, tmp_path / "m", ["a", "b", "c"], first=1)
  batch.write_empty_masks(tmp_path / "m", ["a"], (4, 5))
  out = _read_masks(tmp_path / "m")
  assert out.shape == (3, 4, 5) and out.dtype == np.uint8
  assert set(np.unique(out)) == {0, 255}
  np.testing.assert_array_equal(out[1:] > 0, masks)
  assert not out[0].any()


def test_pool_of_two_workers(tmp_path):
  (tmp_path / "in").mkdir()
  sources = [_frame_folder(tmp_path / "in", s) for s in range(2)]
  jobs = [
    SegmentJob(str(sources[0][0]), str(tmp_path / "out0"), span=(1, 4)),
    SegmentJob(str(sources[1][0]), None),
  ]
  results = segment_videos(jobs, workers=2, progress=False)
  assert [r.job for r in results] == jobs
  assert all(r.error is None and r.num_frames == 6 for r in results)
  written = _read_masks(tmp_path / "out0") > 0
  assert written.shape == (6, 48, 64) and not written[0].any() and not written[5].any()
  assert region_similarity(written[1:5], sources[0][1][1:5]).mean() > 0.8
  assert results[0].masks is None
  assert region_similarity(results[1].masks, sources[1][1]).mean() > 0.8


def test_failures_are_collected_or_raised(tmp_path):
  folder, _ = _frame_folder(tmp_path, 0, num=3)
  jobs = [SegmentJob(str(tmp_path / "missing")), SegmentJob(str(folder), span=(2, 1))]
  results = segment_videos(jobs, workers=1, progress=False, strict=False)
  assert "missing" in results[0].error and "empty" in results[1].error
  with pytest.raises(SegmentationError, match="2 of 2 videos failed"):
    segment_videos(jobs, workers=1, progress=False)


def test_previous_masks_folder(tmp_path):
  folder, masks = _frame_folder(tmp_path, 1)
  batch.write_masks(masks[:3], tmp_path / "prev", [f"{i:05d}" for i in range(6)])
  result = batch.run_job(SegmentJob(str(folder), previous_masks=str(tmp_path / "prev")))
  assert result.error is None
  assert region_similarity(result.masks, masks).mean() > 0.8
