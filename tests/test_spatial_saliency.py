"""Tests of the saliency initialisation B_o (segtube_jax.spatial.saliency)."""

import numpy as np
import pytest

from segtube_jax.spatial import flow, saliency, superpixels, testing


def _graph(frames, n_segments=80):
  fwd, bwd = flow.dense_flows(frames)
  labels = superpixels.slic_labels(frames, n_segments, 10.0, 4, frames.shape[1:3])
  g = superpixels.build_graph(labels, superpixels.lab_frames(frames), fwd, 0.04, 0.1)
  return g, fwd, bwd


def _fg_fraction(g, values, masks):
  """Mean of ``values`` over superpixels mostly inside vs outside the true masks."""
  inside = g.frame_mean(masks.astype(np.float64)) > 0.5
  return values[inside].mean(), values[~inside].mean()


def test_constant_frames_have_no_saliency():
  frames = np.full((3, 32, 32, 3), 90, np.uint8)
  g, fwd, bwd = _graph(frames)
  assert not saliency.appearance_saliency(g).any()
  motion, usable = saliency.motion_saliency(g, fwd, bwd, 0.1, 0.2)
  assert not usable and not motion.any()
  sal = saliency.combined_saliency(saliency.appearance_saliency(g), motion, usable)
  thr = saliency.adaptive_threshold(g, sal, 1.0, 0.2, 0.5)
  assert not saliency.initial_labels(g, sal, thr).any()
  assert not saliency.saliency_probability(g, sal, thr).any()


def test_actor_is_salient_under_camera_jitter():
  frames, masks = testing.moving_actor_clip(8, (64, 96), seed=1, jitter=2)
  g, fwd, bwd = _graph(frames)
  app = saliency.appearance_saliency(g)
  motion, usable = saliency.motion_saliency(g, fwd, bwd, 0.15, 0.3)
  assert usable
  assert 0 <= motion.min() and motion.max() <= 1 and 0 <= app.min() and app.max() <= 1
  for values in (app, motion):
    inside, outside = _fg_fraction(g, values, masks)
    assert inside > 3 * outside
  sal = saliency.combined_saliency(app, motion, usable)
  thr = saliency.adaptive_threshold(g, sal, 1.0, 0.2, 0.5)
  init = saliency.initial_labels(g, sal, thr)
  pred = init[g.labels]
  iou = (pred & masks).sum() / (pred | masks).sum()
  assert iou > 0.6


def test_pure_camera_pan_is_not_motion():
  big = testing.moving_actor_clip(1, (64, 160), seed=2)[0][0]
  frames = np.stack([big[:, 3 * t:3 * t + 96] for t in range(5)])  # Static scene, camera pans.
  g, fwd, bwd = _graph(frames)
  _, usable = saliency.motion_saliency(g, fwd, bwd, 0.15, 0.3)
  assert not usable


def test_threshold_and_probability():
  g, _, _ = _graph(testing.moving_actor_clip(2, (32, 48))[0], n_segments=30)
  sal = np.linspace(0, 1, g.num_nodes)
  thr = saliency.adaptive_threshold(g, sal, 1.0, 0.2, 0.5)
  assert thr.shape == (2,)
  p = saliency.saliency_probability(g, sal, thr)
  at = np.argmin(np.abs(sal - thr[g.frame]))
  assert p[at] == pytest.approx(0.5, abs=0.05)
  assert np.all(np.diff(p[g.frame == 0]) >= 0)
  # The span floor lifts the threshold of a frame with weak saliency.
  weak = np.where(g.frame == 1, 0.1 * sal, sal)
  thr_weak = saliency.adaptive_threshold(g, weak, 1.0, 0.2, 1.0)
  assert thr_weak[1] >= np.median(saliency.adaptive_threshold(g, weak, 1.0, 0.2, 0.0)) - 1e-12
