"""Tests of flow, SLIC and the superpixel graph (segtube_jax.spatial.flow / superpixels)."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from segtube_jax.errors import SegmentationError
from segtube_jax.spatial import flow, superpixels
from tests.conftest import PROJECT_ROOT


def _texture(shape, seed=0):
  rng = np.random.default_rng(seed)
  img = cv2.GaussianBlur(rng.uniform(0, 255, shape + (3,)).astype(np.float32), (0, 0), 2)
  return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def test_work_size_keeps_aspect_and_never_upscales():
  assert flow.work_size(480, 854, 240) == (240, 427)
  assert flow.work_size(100, 200, 240) == (100, 200)


def test_dense_flows_recovers_a_shift():
  big = _texture((100, 140))
  frames = np.stack([big[10:90, 10:130], big[10:90, 7:127]])  # Content moves 3 px right.
  fwd, bwd = flow.dense_flows(frames, "fast")
  inner = (slice(15, -15), slice(15, -15))
  assert np.median(fwd[0][inner][..., 0]) == pytest.approx(3.0, abs=0.3)
  assert np.median(bwd[1][inner][..., 0]) == pytest.approx(-3.0, abs=0.3)
  assert not fwd[1].any() and not bwd[0].any()
  half, _ = flow.dense_flows(frames, "fast", (40, 60))  # Averaged down, vectors rescaled.
  assert np.median(half[0][8:-8, 8:-8, 0]) == pytest.approx(1.5, abs=0.2)


def test_dense_flows_small_or_single_frames_are_zero():
  fwd, bwd = flow.dense_flows(np.zeros((1, 40, 40, 3), np.uint8))
  assert fwd.shape == (1, 40, 40, 2) and not fwd.any() and not bwd.any()
  fwd, _ = flow.dense_flows(np.zeros((3, 10, 10, 3), np.uint8))
  assert not fwd.any()
  with pytest.raises(SegmentationError, match="preset"):
    flow.dense_flows(np.zeros((2, 20, 20, 3), np.uint8), "slow")


def test_finer_dis_level_tracks_a_thin_fast_bar():
  # A 4-pixel bar moving 6 pixels per frame over texture: the "fast" preset's own level 2
  # searches at a quarter of the resolution, where the bar is one pixel wide.
  rng = np.random.default_rng(0)
  bg = cv2.GaussianBlur(rng.uniform(0, 255, (240, 360, 3)).astype(np.float32), (0, 0), 3)
  bg = cv2.normalize(bg, None, 40, 200, cv2.NORM_MINMAX).astype(np.uint8)
  frames = np.stack([bg.copy() for _ in range(2)])
  for t in range(2):
    frames[t, 60:180, 100 + 6 * t : 104 + 6 * t] = 250
  bar = (slice(70, 170), slice(100, 104))
  error = {
    level: abs(float(flow.dense_flows(frames, "fast", None, level)[0][0][bar][..., 0].mean()) - 6)
    for level in (2, 1)
  }
  assert error[1] < 0.5 and error[1] < error[2] - 0.5


def test_finest_scale_keeps_a_coarser_level_on_small_frames():
  assert flow.max_finest_scale(64, 64, 8) == 0  # Coarsest level 1: the finest must be 0.
  assert flow.max_finest_scale(240, 427, 8) == 3 and flow.max_finest_scale(16, 16, 8) == 0
  small = np.stack([_texture((64, 64)), np.roll(_texture((64, 64)), 3, axis=1)])
  np.testing.assert_array_equal(
    flow.dense_flows(small, "fast", None, 1)[0], flow.dense_flows(small, "fast", None, 0)[0]
  )
  with pytest.raises(SegmentationError, match="finest_scale"):
    flow.dense_flows(small, "fast", None, -1)


def test_warp_targets_drop_pixels_leaving_the_frame():
  f = np.zeros((2, 3, 2), np.float32)
  f[..., 0] = 1.0  # Everything moves one pixel right: the last column leaves.
  src, dst = flow.warp_targets(f)
  np.testing.assert_array_equal(src, [0, 1, 3, 4])
  np.testing.assert_array_equal(dst, [1, 2, 4, 5])


def test_slic_labels_contiguous_and_resized():
  frames = np.stack([_texture((40, 60), s) for s in range(2)])
  labels = superpixels.slic_labels(frames, 30, 10.0, 4, (80, 120))
  assert labels.shape == (2, 80, 120) and labels.dtype == np.int32
  for lab in labels:
    assert np.array_equal(np.unique(lab), np.arange(lab.max() + 1))
    assert 10 <= lab.max() + 1 <= 60


def test_slic_labels_do_not_depend_on_the_thread_count():
  frames = np.stack([_texture((40, 60), s) for s in range(3)])
  one = superpixels.slic_labels(frames, 30, 10.0, 4, (40, 60), threads=1)
  np.testing.assert_array_equal(superpixels.slic_labels(frames, 30, 10.0, 4, (40, 60), 3), one)


def _quadrants():
  """Two 4x4 frames of four 2x2 superpixels; the second frame's content moved 2 px right."""
  lab = np.array([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2)
  labels = np.stack([lab, lab])
  lab_img = np.zeros((2, 4, 4, 3), np.float32)
  lab_img[..., 0] = labels * 10.0
  fwd = np.zeros((2, 4, 4, 2), np.float32)
  fwd[0, ..., 0] = 2.0
  return labels, lab_img, fwd


def test_build_graph_features_and_neighbours():
  labels, lab_img, fwd = _quadrants()
  g = superpixels.build_graph(labels, lab_img, fwd, border=0.25, min_temporal_overlap=0.1)
  assert g.num_nodes == 8
  np.testing.assert_array_equal(g.offsets, [0, 4, 8])
  np.testing.assert_array_equal(g.frame, [0, 0, 0, 0, 1, 1, 1, 1])
  np.testing.assert_allclose(g.color[:4, 0], [0, 10, 20, 30])
  np.testing.assert_allclose(g.centroid[0], [0.25, 0.25])
  np.testing.assert_allclose(g.area, 4)
  assert g.border.all()
  # 4-connected adjacency only: no diagonal pair (0, 3) or (1, 2).
  np.testing.assert_array_equal(
    g.spatial_edges, [[0, 1], [0, 2], [1, 3], [2, 3], [4, 5], [4, 6], [5, 7], [6, 7]]
  )
  # Left superpixels land on the right ones; right ones leave the frame (no edge).
  np.testing.assert_array_equal(g.temporal_edges, [[0, 5], [2, 7]])
  np.testing.assert_allclose(g.temporal_overlap, [1.0, 1.0])
  np.testing.assert_allclose(
    g.frame_mean(np.broadcast_to(labels, labels.shape) * 1.0)[:4], [0, 1, 2, 3]
  )


def test_min_temporal_overlap_filters_slivers():
  labels, lab_img, fwd = _quadrants()
  fwd[0, ..., 0] = 0.0
  fwd[0, 0, 0] = (0.0, 2.0)  # One pixel of superpixel 0 lands in superpixel 2 of frame 1.
  g = superpixels.build_graph(labels, lab_img, fwd, 0.25, min_temporal_overlap=0.3)
  assert [0, 6] not in g.temporal_edges.tolist() and [0, 4] in g.temporal_edges.tolist()
  g = superpixels.build_graph(labels, lab_img, fwd, 0.25, min_temporal_overlap=0.2)
  assert [0, 6] in g.temporal_edges.tolist()


def test_the_cli_imports_slic_on_first_use_or_in_the_background():
  # scikit-image's SLIC takes ~0.7 s to import: the segment command overlaps it with decoding.
  code = (
    "import sys, segtube_jax.segment_actors\n"
    "from segtube_jax.spatial import superpixels\n"
    "before = 'skimage.segmentation' in sys.modules\n"
    "superpixels.import_in_background().join(timeout=60)\n"
    "print(before, 'skimage.segmentation.slic_superpixels' in sys.modules)"
  )
  done = subprocess.run(
    [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split() == ["False", "True"], done.stdout
