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
  motion, usable = saliency.motion_saliency(g, saliency.superpixel_flow(g, fwd, bwd), 0.1, 0.2)
  assert not usable and not motion.any()
  sal = saliency.combined_saliency(saliency.appearance_saliency(g), motion, usable)
  thr = saliency.adaptive_threshold(g, sal, 1.0, 0.2, 0.5)
  assert not saliency.initial_labels(g, sal, thr).any()
  assert not saliency.saliency_probability(g, sal, thr).any()


def test_actor_is_salient_under_camera_jitter():
  frames, masks = testing.moving_actor_clip(8, (64, 96), seed=1, jitter=2)
  g, fwd, bwd = _graph(frames)
  app = saliency.appearance_saliency(g)
  motion, usable = saliency.motion_saliency(g, saliency.superpixel_flow(g, fwd, bwd), 0.15, 0.3)
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
  frames = np.stack([big[:, 3 * t : 3 * t + 96] for t in range(5)])  # Static scene, camera pans.
  g, fwd, bwd = _graph(frames)
  _, usable = saliency.motion_saliency(g, saliency.superpixel_flow(g, fwd, bwd), 0.15, 0.3)
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


def test_otsu_threshold_splits_a_small_salient_region():
  g, _, _ = _graph(testing.moving_actor_clip(2, (32, 48))[0], n_segments=60)
  rng = np.random.default_rng(0)
  sal = rng.uniform(0.0, 0.2, g.num_nodes)
  actor = np.zeros(g.num_nodes, bool)
  actor[g.offsets[:-1]] = True  # One superpixel per frame: a few percent of the area.
  actor[g.offsets[:-1] + 1] = True
  sal[actor] = rng.uniform(0.8, 1.0, actor.sum())
  otsu = saliency.adaptive_threshold(g, sal, 1.0, 0.0, 0.0)
  assert np.all((otsu >= 0.2) & (otsu < 0.8))  # In the gap between the two modes.
  np.testing.assert_array_equal(saliency.initial_labels(g, sal, otsu), actor)
  with pytest.raises(ValueError, match="otsu"):
    saliency.adaptive_threshold(g, sal, 1.0, 0.0, 0.0, method="median")


def _two_regions():
  """One frame of 6 superpixels in a row; regions {0, 1} and {4, 5} labelled foreground."""
  n = 6
  return superpixels.SuperpixelGraph(
    labels=np.arange(n, dtype=np.int32).reshape(1, 1, n),
    frame=np.zeros(n, np.int32),
    offsets=np.array([0, n]),
    color=np.zeros((n, 3), np.float32),
    centroid=np.zeros((n, 2), np.float32),
    area=np.ones(n),
    border=np.zeros(n, bool),
    spatial_edges=np.stack([np.arange(n - 1), np.arange(1, n)], axis=1),
    temporal_edges=np.zeros((0, 2), np.int64),
    temporal_overlap=np.zeros(0),
  )


def test_hysteresis_keeps_regions_with_a_seed():
  g = _two_regions()
  sal = np.array([1.0, 0.4, 0.0, 0.0, 0.4, 0.3])
  thr = np.array([0.2])
  np.testing.assert_array_equal(saliency.initial_labels(g, sal, thr), [1, 1, 0, 0, 1, 1])
  np.testing.assert_array_equal(saliency.initial_labels(g, sal, thr, 0.5), [1, 1, 0, 0, 0, 0])


def test_weak_regions_are_dropped_after_the_cut():
  g = _two_regions()
  labels = np.array([1, 1, 0, 0, 1, 1], bool)
  sal = np.array([0.9, 0.5, 0.0, 0.0, 0.3, 0.1])  # Masses 1.4 and 0.4.
  np.testing.assert_array_equal(
    saliency.keep_salient_regions(g, labels, sal, 0.5), [1, 1, 0, 0, 0, 0]
  )
  np.testing.assert_array_equal(saliency.keep_salient_regions(g, labels, sal, 0.25), labels)
  np.testing.assert_array_equal(saliency.keep_salient_regions(g, labels, sal, 0.0), labels)
  # A frame whose regions have no saliency keeps them all.
  np.testing.assert_array_equal(saliency.keep_salient_regions(g, labels, 0 * sal, 0.5), labels)


def _strips(strip_labels):
  """Frames of 20x64 pixels cut into 16 superpixels, vertical strips 4 pixels wide.

  ``strip_labels`` [T,16] are the strips' labels; the graph is built by the library.
  """
  t = len(strip_labels)
  labels = np.broadcast_to(np.arange(64) // 4, (t, 20, 64)).astype(np.int32)
  lab = np.zeros((t, 20, 64, 3), np.float32)
  g = superpixels.build_graph(labels, lab, np.zeros((t, 20, 64, 2), np.float32), 0.04, 0.1)
  return g, np.asarray(strip_labels, bool).reshape(-1)


def test_weak_regions_next_to_the_strongest_are_kept_within_the_gap():
  # Frame 0: the actor (strips 2-5, radius sqrt(320 / pi) = 10.1 pixels), a part of it behind a
  # one-strip occluder (strip 7, 4 pixels away) and a distractor (strip 13, 28 pixels away).
  # Frame 1: the strongest region is strips 12-15; strip 7 lies 16 pixels from it.
  def on(*strips):
    return [i in strips for i in range(16)]

  g, labels = _strips([on(2, 3, 4, 5, 7, 13), on(7, 12, 13, 14, 15)])
  sal = np.where(labels, 0.1, 0.0)
  sal[[2, 3, 4, 5, 28, 29, 30, 31]] = 1.0

  def keep(gap):
    return saliency.keep_salient_regions(g, labels, sal, 0.5, gap).reshape(2, 16)

  np.testing.assert_array_equal(keep(0.0), [on(2, 3, 4, 5), on(12, 13, 14, 15)])
  # 0.5 radii = 5 pixels: the occluded part is kept, the distractor and frame 1's strip 7 not.
  np.testing.assert_array_equal(keep(0.5), [on(2, 3, 4, 5, 7), on(12, 13, 14, 15)])
  np.testing.assert_array_equal(keep(2.0), [on(2, 3, 4, 5, 7), on(7, 12, 13, 14, 15)])
  np.testing.assert_array_equal(keep(3.0), labels.reshape(2, 16))
  # Region selection off: the gap changes nothing.
  np.testing.assert_array_equal(saliency.keep_salient_regions(g, labels, sal, 0.0, 0.5), labels)


def test_superpixel_velocity_averages_both_directions_where_they_exist():
  frames, _ = testing.moving_actor_clip(4, (48, 64), seed=3)
  g, fwd, bwd = _graph(frames)
  flow = saliency.superpixel_flow(g, fwd, bwd)
  np.testing.assert_allclose(flow.forward, g.frame_mean(fwd))
  v = flow.velocity()
  first, last = g.frame == 0, g.frame == 3
  middle = ~first & ~last
  np.testing.assert_allclose(v[first], flow.forward[first])  # No backward flow in frame 0...
  np.testing.assert_allclose(v[last], -flow.backward[last])  # ...no forward flow in the last.
  np.testing.assert_allclose(v[middle], 0.5 * (flow.forward[middle] - flow.backward[middle]))
