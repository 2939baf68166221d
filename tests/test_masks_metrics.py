"""Tests of segtube_jax.evaluation.masks (DAVIS J and boundary F)."""

import numpy as np
import pytest
from skimage.morphology import dilation, disk

from segtube_jax.errors import SegmentationError
from segtube_jax.evaluation import masks


def _davis_boundary_f(pred, gt, bound_th=0.008):
  """DAVIS 2016 db_eval_boundary, with the disk dilation it uses (reference for the EDT test)."""
  r = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape))
  fb, gb = masks.seg2bmap(pred), masks.seg2bmap(gt)
  fd, gd = dilation(fb, disk(r)), dilation(gb, disk(r))
  n_fg, n_gt = fb.sum(), gb.sum()
  if n_fg == 0 and n_gt == 0:
    p, rc = 1, 1
  elif n_fg == 0:
    p, rc = 1, 0
  elif n_gt == 0:
    p, rc = 0, 1
  else:
    p, rc = (fb & gd).sum() / n_fg, (gb & fd).sum() / n_gt
  return 0 if p + rc == 0 else 2 * p * rc / (p + rc)


def _blob(shape, cy, cx, r):
  ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
  return (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r


def test_region_similarity_values():
  a = np.zeros((3, 10, 10), bool)
  b = np.zeros((3, 10, 10), bool)
  a[0, :5] = True
  b[0, :, :5] = True  # 25 shared of 75.
  a[1] = True  # Against empty: 0.
  # Frame 2: both empty -> 1 as DAVIS.
  np.testing.assert_allclose(masks.region_similarity(a, b), [25 / 75, 0.0, 1.0])
  assert masks.region_similarity(a[0], a[0]) == 1.0


def test_seg2bmap_square():
  m = np.zeros((6, 6), bool)
  m[2:4, 2:4] = True
  b = masks.seg2bmap(m)
  # Pixels differing from their east/south/south-east neighbour: the square's outline shifted
  # half a pixel towards the origin.
  expected = np.zeros((6, 6), bool)
  expected[1:4, 1:4] = True
  expected[2, 2] = False
  np.testing.assert_array_equal(b, expected)


def test_boundary_tolerance_davis():
  assert masks.boundary_tolerance((480, 854)) == 8.0  # ceil(0.008 * 979.6).
  assert masks.boundary_tolerance((480, 854), 3) == 3.0


@pytest.mark.parametrize("shift", [0, 2, 5, 9, 20])
def test_boundary_f_matches_davis_dilation(shift):
  shape = (120, 160)
  gt = _blob(shape, 60, 70, 30)
  pred = _blob(shape, 60 + shift, 70 + shift // 2, 28) | _blob(shape, 20, 140, 6)
  f, p, r = masks.boundary_measure(pred, gt)
  assert f == pytest.approx(_davis_boundary_f(pred, gt))
  assert 0 <= p <= 1 and 0 <= r <= 1


def test_boundary_f_empty_cases():
  z = np.zeros((20, 20), bool)
  m = _blob((20, 20), 10, 10, 5)
  assert masks.boundary_measure(z, z) == (1.0, 1.0, 1.0)
  assert masks.boundary_measure(z, m)[:3] == (0.0, 1.0, 0.0)
  assert masks.boundary_measure(m, z)[:3] == (0.0, 0.0, 1.0)
  assert masks.boundary_measure(m, m)[0] == 1.0


def test_evaluate_video_skips_first_and_last():
  gt = np.stack([_blob((30, 30), 15, 15, 8)] * 4)
  pred = gt.copy()
  pred[0] = False
  pred[3] = False
  s = masks.evaluate_video(pred, gt)
  np.testing.assert_array_equal(s.frames, [1, 2])
  assert s.j_mean == 1.0 and s.f_mean == 1.0
  s = masks.evaluate_video(pred, gt, skip_first_last=False)
  assert s.j_mean == pytest.approx(0.5)
  assert masks.evaluate_video(pred[:2], gt[:2]).frames.tolist() == [0, 1]  # Too short to skip.


def test_shape_mismatch_raises():
  with pytest.raises(SegmentationError, match="shape"):
    masks.region_similarity(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
  with pytest.raises(SegmentationError, match="shape"):
    masks.evaluate_video(np.zeros((2, 4, 4)), np.zeros((3, 4, 4)))


def test_class_means_table3():
  scores = {"v1": 0.8, "v2": 0.6, "v3": 0.3}
  classes = {"v1": "Throw", "v2": "Throw", "v3": "PoleVault"}
  out = masks.class_means(scores, classes)
  assert out == pytest.approx({"PoleVault": 0.3, "Throw": 0.7, "Average": 0.5})
  assert list(out) == ["PoleVault", "Throw", "Average"]
  with pytest.raises(SegmentationError, match="v3"):
    masks.class_means(scores, {"v1": "Throw", "v2": "Throw"})
