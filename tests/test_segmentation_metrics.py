"""Tests of segtube_jax.evaluation.segmentation_metrics on hand-made mask folders."""

import numpy as np
from PIL import Image
import pytest

from segtube_jax.errors import DatasetError, SegmentationError
from segtube_jax.evaluation import masks as masks_lib
from segtube_jax.evaluation import segmentation_metrics

SIZE = (10, 12)  # (H, W)


def _square(r0, r1, c0, c1):
  m = np.zeros(SIZE, bool)
  m[r0:r1, c0:c1] = True
  return m


def _save(path, mask):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


EMPTY = np.zeros(SIZE, bool)
GT_A = {3: _square(2, 6, 2, 6), 4: _square(2, 6, 2, 6), 5: _square(2, 6, 2, 6), 6: EMPTY}
# Frame 0 has no ground truth (ignored), frame 5 no prediction (scored as empty).
PRED_A = {0: _square(0, 9, 0, 9), 3: _square(2, 6, 2, 6), 4: _square(2, 6, 4, 8), 6: EMPTY}
CLASSES = {"a": "Jump", "b": "Jump", "c": "Run"}


@pytest.fixture
def dirs(tmp_path):
  gt, pred = tmp_path / "gt", tmp_path / "pred"
  for f, m in GT_A.items():
    _save(gt / "a" / f"{f:06d}.png", m)
  for f, m in PRED_A.items():  # 5-digit names, as the segmentation stage writes for video files
    _save(pred / "a" / f"{f:05d}.png", m)
  for f in (0, 1):
    _save(gt / "b" / f"{f:06d}.png", _square(1, 8, 3, 9))
    _save(pred / "b" / f"{f:06d}.png", _square(1, 8, 3, 9))
  for f in (0, 1, 2):  # no prediction folder at all for "c"
    _save(gt / "c" / f"{f:06d}.png", _square(0, 3, 0, 3))
  return pred, gt


def test_frame_scores(dirs):
  pred, gt = dirs
  s = segmentation_metrics.video_frame_scores(pred, gt, "a")
  assert s.frames.tolist() == [3, 4, 5, 6]
  np.testing.assert_allclose(s.iou, [1.0, 8 / 24, 0.0, 1.0])
  f4 = masks_lib.boundary_measure(PRED_A[4], GT_A[4])[0]
  np.testing.assert_allclose(s.f, [1.0, f4, 0.0, 1.0])
  assert 0 < f4 < 1
  assert s.missing == 1


def test_evaluate_mask_folders(dirs):
  pred, gt = dirs
  out = segmentation_metrics.evaluate_mask_folders(pred, gt, ["a", "b", "c"], CLASSES)
  f4 = masks_lib.boundary_measure(PRED_A[4], GT_A[4])[0]
  a = out["per_video"]["a"]
  assert a["iou"] == pytest.approx((1 + 1 / 3 + 0 + 1) / 4)
  assert a["J"] == pytest.approx((1 / 3 + 0) / 2)  # DAVIS: first and last frame left out
  assert a["F"] == pytest.approx(f4 / 2)
  assert (a["frames"], a["missing"]) == (4, 1)
  assert out["per_video"]["b"] == {"iou": 1.0, "J": 1.0, "F": 1.0, "frames": 2, "missing": 0}
  assert out["per_video"]["c"] == {"iou": 0.0, "J": 0.0, "F": 0.0, "frames": 3, "missing": 3}
  jump = out["per_class"]["Jump"]
  assert jump["iou"] == pytest.approx((a["iou"] + 1) / 2)
  assert jump["J"] == pytest.approx((a["J"] + 1) / 2)
  assert jump["videos"] == 2
  assert out["per_class"]["Run"]["iou"] == 0.0
  assert list(out["per_class"]) == ["Jump", "Run"]
  assert out["mean"]["iou"] == pytest.approx(jump["iou"] / 2)  # mean over classes, not videos
  assert out["mean"]["F"] == pytest.approx(jump["F"] / 2)
  assert (out["mean"]["videos"], out["mean"]["classes"]) == (3, 2)


def test_no_skip_makes_j_equal_iou(dirs):
  pred, gt = dirs
  out = segmentation_metrics.evaluate_mask_folders(pred, gt, ["a"], CLASSES, skip_first_last=False)
  assert out["per_video"]["a"]["J"] == out["per_video"]["a"]["iou"]


def test_frame_iou_maps(dirs):
  pred, gt = dirs
  maps = segmentation_metrics.frame_iou_maps(pred, gt, ["a", "c"])
  assert maps["a"] == pytest.approx({3: 1.0, 4: 1 / 3, 5: 0.0, 6: 1.0})
  assert maps["c"] == {0: 0.0, 1: 0.0, 2: 0.0}


def test_empty_gt_folder_is_left_out(dirs):
  pred, gt = dirs
  (gt / "d").mkdir()
  out = segmentation_metrics.evaluate_mask_folders(pred, gt, ["b", "d"], {"b": "Jump", "d": "Swim"})
  assert out["per_video"]["d"] == {"iou": None, "J": None, "F": None, "frames": 0, "missing": 0}
  assert list(out["per_class"]) == ["Jump"]
  assert out["mean"]["iou"] == 1.0


def test_shape_mismatch_names_both_files(dirs):
  pred, gt = dirs
  Image.fromarray(np.zeros((5, 5), np.uint8)).save(pred / "b" / "000001.png")
  with pytest.raises(SegmentationError, match=r"pred/b/000001\.png.*5x5.*gt/b/000001\.png.*12x10"):
    segmentation_metrics.evaluate_mask_folders(pred, gt, ["b"], CLASSES)


def test_unreadable_masks(dirs):
  pred, gt = dirs
  (pred / "b" / "000000.png").write_bytes(b"not a png")
  with pytest.raises(SegmentationError, match=r"pred/b/000000\.png"):
    segmentation_metrics.video_frame_scores(pred, gt, "b")
  (gt / "c" / "000002.png").write_bytes(b"")
  with pytest.raises(DatasetError, match=r"gt/c/000002\.png"):
    segmentation_metrics.video_frame_scores(pred, gt, "c")


def test_missing_inputs(dirs):
  pred, gt = dirs
  with pytest.raises(DatasetError, match="gt/zz.*not found"):
    segmentation_metrics.evaluate_mask_folders(pred, gt, ["zz"], {"zz": "Run"})
  with pytest.raises(SegmentationError, match="no class"):
    segmentation_metrics.evaluate_mask_folders(pred, gt, ["a"], {})
  (pred / "b" / "frame_x.png").write_bytes(b"")
  with pytest.raises(SegmentationError, match="pred/b"):
    segmentation_metrics.video_frame_scores(pred, gt, "b")
