"""Tests of segtube_jax.temporal: Eqs. (1)-(4), segments and NMS."""

import jax
import jax.numpy as jnp
import numpy as np

from segtube_jax import clips, temporal


def _reference_alpha(starts, ends, scores, num_frames):
  """Eq. (3) written literally: per frame, the mean over the windows that contain it."""
  alpha = np.zeros((num_frames, scores.shape[1]))
  for t in range(num_frames):
    inside = (starts <= t) & (t < ends)
    if inside.any():
      alpha[t] = scores[inside].sum(0) / inside.sum()
  return alpha


def test_aggregate_matches_literal_equation():
  rng = np.random.default_rng(0)
  w = clips.enumerate_windows(203)
  scores = rng.random((len(w), 5)) * (rng.random((len(w), 5)) < 0.3)
  alpha = temporal.aggregate_frame_scores(w.starts, w.ends, scores, 203)
  np.testing.assert_allclose(alpha, _reference_alpha(w.starts, w.ends, scores, 203), atol=2e-6)


def test_aggregate_jit_padding_and_uncovered_frames():
  starts = np.array([0, 4, 20]); ends = np.array([8, 12, 24])
  scores = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 0.9]])
  ps, pe, valid = temporal.pad_windows(starts, ends, bucket=8)
  pscores = np.concatenate([scores, np.full((5, 2), 0.7)])  # Padding scores must not count.
  fn = jax.jit(temporal.aggregate_frame_scores, static_argnums=3)
  alpha = np.asarray(fn(ps, pe, pscores, 30))
  np.testing.assert_allclose(alpha, _reference_alpha(starts, ends, scores, 30), atol=1e-6)
  assert alpha[14:20].sum() == 0 and alpha[25:].sum() == 0  # No window: 0.
  np.testing.assert_allclose(alpha[5], [0.75, 0.0])


def test_window_scores_eqs_1_and_2():
  proposal = jnp.array([[0.0, 2.0], [2.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
  classes = jnp.array([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
  s = np.asarray(temporal.window_scores(proposal, classes))
  p = np.asarray(jax.nn.softmax(classes, -1))
  assert s.shape == (4, 2)
  np.testing.assert_allclose(s[0], [p[0, 1], 0])   # Flagged, class 1.
  np.testing.assert_allclose(s[1], [0, 0])         # Not flagged (Eq. 1).
  np.testing.assert_allclose(s[2], [0, 0])         # Flagged but background (class 0).
  np.testing.assert_allclose(s[3], [0, p[3, 2]])
  assert int(temporal.video_class(s)) == 1 if p[0, 1] > p[3, 2] else 2


def test_frame_labels_and_segments():
  alpha = np.zeros((20, 2))
  alpha[2:6, 0] = 0.8
  alpha[6:9, 0] = 0.6   # Not > gamma: the run stops at 6.
  alpha[10:15, 1] = 0.9
  alpha[12, 0] = 0.95   # Class 1 wins frame 12 when several classes are allowed.
  labels = np.asarray(temporal.frame_labels(alpha, 0.6))
  segs = temporal.extract_segments(labels, alpha)
  assert [(s.label, s.start, s.end) for s in segs] == [(1, 2, 6), (2, 10, 12), (1, 12, 13), (2, 13, 15)]
  np.testing.assert_allclose(segs[0].score, 0.8)
  single = np.asarray(temporal.frame_labels(alpha, 0.6, video_class=2))
  assert [(s.label, s.start, s.end) for s in temporal.extract_segments(single, alpha)] == [(2, 10, 15)]


def test_temporal_nms():
  S = temporal.Segment
  segs = [S(1, 0, 10, 0.9), S(1, 1, 11, 0.8), S(2, 1, 11, 0.7), S(1, 30, 40, 0.5)]
  kept = temporal.temporal_nms(segs, 0.5)
  assert kept == [S(1, 0, 10, 0.9), S(2, 1, 11, 0.7), S(1, 30, 40, 0.5)]


def test_long_video_aggregation_is_exact_at_scale():
  # One hour at 30 fps: 27,000 16-frame plus 13,500 32-frame windows; fixed point keeps alpha exact where every window scores 0.6.
  num_frames = 108_000
  w = clips.enumerate_windows(num_frames)
  scores = np.full((len(w), 1), 0.6, np.float32)
  alpha = np.asarray(jax.jit(temporal.aggregate_frame_scores, static_argnums=3)(w.starts, w.ends, scores, num_frames))
  assert 40_000 < len(w) < 41_000
  assert np.abs(alpha - 0.6).max() < 1e-6
