"""Tests of segtube_jax.temporal: Eqs. (1)-(4), segments and NMS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from segtube_jax import clips, temporal
from segtube_jax.errors import ConfigError

# aggregate_frame_scores vs Eq. (3) in float64: scores are rounded to multiples of 2^-20 (<= 2^-21
# off, so alpha, a mean of them, too) and the float32 result is within 2 ulps of a value <= 1.
ALPHA_ATOL = 2.0**-21 + 2.0**-22


def _reference_alpha(starts, ends, scores, num_frames):
  """Eq. (3) written literally: per frame, the mean over the windows that contain it."""
  alpha = np.zeros((num_frames, scores.shape[1]))
  for t in range(num_frames):
    inside = (starts <= t) & (t < ends)
    if inside.any():
      alpha[t] = scores[inside].sum(0) / inside.sum()
  return alpha


def _numpy_alpha(starts, ends, scores, num_frames):
  """Eq. (3) in float64 NumPy: difference arrays and cumulative sums, windows clipped to [0, T]."""
  starts = np.clip(np.asarray(starts, np.int64), 0, num_frames)
  ends = np.maximum(np.clip(np.asarray(ends, np.int64), 0, num_frames), starts)
  scores = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
  total = np.zeros((num_frames + 1, scores.shape[1]))
  count = np.zeros(num_frames + 1)
  np.add.at(total, starts, scores)
  np.add.at(total, ends, -scores)
  np.add.at(count, starts, 1)
  np.add.at(count, ends, -1)
  total, count = np.cumsum(total[:-1], 0), np.cumsum(count[:-1])
  return np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], 0.0)


def test_aggregate_matches_literal_equation():
  rng = np.random.default_rng(0)
  w = clips.enumerate_windows(203)
  scores = rng.random((len(w), 5)) * (rng.random((len(w), 5)) < 0.3)
  alpha = temporal.aggregate_frame_scores(w.starts, w.ends, scores, 203)
  np.testing.assert_allclose(alpha, _reference_alpha(w.starts, w.ends, scores, 203), atol=2e-6)


def test_aggregate_jit_padding_and_uncovered_frames():
  starts, ends = np.array([0, 4, 20]), np.array([8, 12, 24])
  scores = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 0.9]])
  ps, pe, valid = temporal.pad_windows(starts, ends, bucket=8)
  pscores = np.concatenate([scores, np.full((5, 2), 0.7)])  # Padding scores must not count.
  fn = jax.jit(temporal.aggregate_frame_scores, static_argnums=3)
  alpha = np.asarray(fn(ps, pe, pscores, 30))
  np.testing.assert_allclose(alpha, _reference_alpha(starts, ends, scores, 30), atol=1e-6)
  assert alpha[14:20].sum() == 0 and alpha[25:].sum() == 0  # No window: 0.
  np.testing.assert_allclose(alpha[5], [0.75, 0.0])


@pytest.mark.parametrize(
  "num_frames,num_classes", [(1, 1), (7, 3), (16, 1), (203, 5), (256, 1), (1001, 21)]
)
def test_aggregate_matches_numpy_reference(num_frames, num_classes):
  # Random windows (T is below, at and off a multiple of the 16-frame block), plus windows touching
  # frame 0 and frame T, one running past T (clipped), and padding windows (start == end) at 0,
  # inside and at T whose scores must not count.
  rng = np.random.default_rng(1000 * num_frames + num_classes)
  h = num_frames + 20
  starts = rng.integers(0, num_frames + 1, h)
  ends = starts + rng.integers(1, 48, h)
  edge_starts = [0, 0, 0, max(num_frames - 3, 0), num_frames // 2]
  edge_ends = [num_frames, 1, 5, num_frames, num_frames + 9]
  scores = rng.random((h + 5, num_classes)) * (rng.random((h + 5, num_classes)) < 0.6)
  starts, ends = np.concatenate([starts, edge_starts]), np.concatenate([ends, edge_ends])
  want = _numpy_alpha(starts, ends, scores, num_frames)
  padded_starts, padded_ends, _ = temporal.pad_windows(starts, ends, bucket=64)
  pad = padded_starts.size - starts.size
  padded_starts[-3:] = padded_ends[-3:] = [0, num_frames // 2, num_frames]
  padded_scores = np.concatenate([scores, rng.random((pad, num_classes))]).astype(np.float32)
  jitted = jax.jit(temporal.aggregate_frame_scores, static_argnums=3)
  for fn in (temporal.aggregate_frame_scores, jitted):
    alpha = np.asarray(fn(padded_starts, padded_ends, padded_scores, num_frames))
    assert alpha.shape == (num_frames, num_classes) and alpha.dtype == np.float32
    np.testing.assert_allclose(alpha, want, rtol=0, atol=ALPHA_ATOL)
  np.testing.assert_array_equal(
    alpha[want == 0], 0.0
  )  # Uncovered frames and zero scores stay exactly 0.


def test_aggregate_long_video_does_not_drift():
  # One hour at 30 fps with random scores: the error against float64 stays at the quantisation
  # level everywhere, and with scores already on the 2^-20 grid only the final division rounds.
  num_frames, num_classes = 108_000, 20
  w = clips.enumerate_windows(num_frames)
  rng = np.random.default_rng(7)
  scores = (rng.random((len(w), num_classes)) * (rng.random((len(w), num_classes)) < 0.3)).astype(
    np.float32
  )
  fn = jax.jit(temporal.aggregate_frame_scores, static_argnums=3)
  alpha = np.asarray(fn(w.starts, w.ends, scores, num_frames))
  np.testing.assert_allclose(
    alpha, _numpy_alpha(w.starts, w.ends, scores, num_frames), rtol=0, atol=ALPHA_ATOL
  )
  on_grid = np.round(scores * 2.0**20) / 2.0**20
  alpha = np.asarray(fn(w.starts, w.ends, on_grid, num_frames))
  np.testing.assert_allclose(
    alpha, _numpy_alpha(w.starts, w.ends, on_grid, num_frames), rtol=2.0**-22, atol=0
  )


def test_aggregate_many_overlapping_windows():
  # 1500 windows over every frame and ~80 short ones (scores near 1) starting in every 16-frame
  # block, so the float32 sums within blocks are no longer exact: the error stays at float32
  # rounding (here < 0.7 ALPHA_ATOL) and does not grow along the video.
  rng = np.random.default_rng(3)
  long_starts, short_starts = rng.integers(0, 100, 1500), rng.integers(0, 4000, 20000)
  starts = np.concatenate([long_starts, short_starts])
  ends = np.concatenate(
    [long_starts + rng.integers(3900, 4100, 1500), short_starts + rng.integers(1, 20, 20000)]
  )
  scores = np.concatenate([rng.random((1500, 2)), 0.9 + 0.1 * rng.random((20000, 2))])
  err = np.abs(
    np.asarray(temporal.aggregate_frame_scores(starts, ends, scores, 4000))
    - _numpy_alpha(starts, ends, scores, 4000)
  )
  assert err.max() < 2 * ALPHA_ATOL
  assert err[-500:].max() <= err[:500].max() + ALPHA_ATOL


def test_window_scores_eqs_1_and_2():
  proposal = jnp.array([[0.0, 2.0], [2.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
  classes = jnp.array([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
  s = np.asarray(temporal.window_scores(proposal, classes))
  p = np.asarray(jax.nn.softmax(classes, -1))
  assert s.shape == (4, 2)
  np.testing.assert_allclose(s[0], [p[0, 1], 0])  # Flagged, class 1.
  np.testing.assert_allclose(s[1], [0, 0])  # Not flagged (Eq. 1).
  np.testing.assert_allclose(s[2], [0, 0])  # Flagged but background (class 0).
  np.testing.assert_allclose(s[3], [0, p[3, 2]])
  assert int(temporal.video_class(s)) == 1 if p[0, 1] > p[3, 2] else 2


def test_frame_labels_and_segments():
  alpha = np.zeros((20, 2))
  alpha[2:6, 0] = 0.8
  alpha[6:9, 0] = 0.6  # Not > gamma: the run stops at 6.
  alpha[10:15, 1] = 0.9
  alpha[12, 0] = 0.95  # Class 1 wins frame 12 when several classes are allowed.
  labels = np.asarray(temporal.frame_labels(alpha, 0.6))
  segs = temporal.extract_segments(labels, alpha)
  assert [(s.label, s.start, s.end) for s in segs] == [
    (1, 2, 6),
    (2, 10, 12),
    (1, 12, 13),
    (2, 13, 15),
  ]
  np.testing.assert_allclose(segs[0].score, 0.8)
  single = np.asarray(temporal.frame_labels(alpha, 0.6, video_class=2))
  assert [(s.label, s.start, s.end) for s in temporal.extract_segments(single, alpha)] == [
    (2, 10, 15)
  ]


def test_frame_labels_match_argmax():
  # frame_labels avoids jnp.argmax for speed; it must agree with it, ties, NaNs and K = 1 included.
  rng = np.random.default_rng(5)
  for num_classes in (1, 2, 20):
    alpha = rng.random((500, num_classes)).astype(np.float32)
    alpha[::3, -1] = alpha[::3, 0]  # Ties go to the first class.
    alpha[::7] = 0.65
    alpha[::11, num_classes // 2] = np.nan  # A NaN row is background (its maximum is NaN).
    alpha[::13] = 0.0
    want = np.where(np.max(alpha, -1) > 0.6, np.argmax(alpha, -1) + 1, 0)
    for fn in (temporal.frame_labels, jax.jit(temporal.frame_labels, static_argnums=1)):
      labels = np.asarray(fn(alpha, 0.6))
      assert labels.dtype == np.int32
      np.testing.assert_array_equal(labels, want)


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
  alpha = np.asarray(
    jax.jit(temporal.aggregate_frame_scores, static_argnums=3)(w.starts, w.ends, scores, num_frames)
  )
  assert 40_000 < len(w) < 41_000
  assert np.abs(alpha - 0.6).max() < 1e-6


def test_paper_rule_alpha_divides_by_every_window_containing_the_frame():
  # Eq. (3)'s denominator |{j | f_t in h_j}| counts unscored windows (not flagged, background or
  # another class) too; empty padding windows (start == end) count nowhere.
  starts, ends = np.array([0, 0, 4, 0, 3]), np.array([8, 8, 8, 0, 3])
  scores = np.array([[0.9, 0.0], [0.0, 0.0], [0.0, 0.6], [1.0, 1.0], [1.0, 1.0]])
  alpha = np.asarray(temporal.aggregate_frame_scores(starts, ends, scores, 10))
  want = np.zeros((10, 2))
  want[:4] = [0.45, 0.0]
  want[4:8] = [0.3, 0.2]
  np.testing.assert_allclose(alpha, want, atol=1e-6)


def test_paper_rule_frame_labels_with_a_traced_video_class_and_gamma():
  rng = np.random.default_rng(7)
  alpha = rng.random((64, 3)).astype(np.float32)
  labels_fn = jax.jit(temporal.frame_labels)
  for k in range(4):
    for gamma in (0.0, 0.5, 0.9):
      got = np.asarray(labels_fn(alpha, np.float32(gamma), np.int32(k)))
      want = (
        np.where(alpha[:, k - 1] > gamma, k, 0) if k else np.zeros(64, int)
      )  # k' = 0: no class.
      np.testing.assert_array_equal(got, want)
      np.testing.assert_array_equal(
        np.asarray(temporal.frame_labels(alpha, gamma, video_class=k)), want
      )


def test_flag_labels_eq1():
  logits = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [-2.0, -1.0]])
  np.testing.assert_array_equal(temporal.flag_labels(logits), [1, 0, 0, 1])
  assert temporal.flag_labels(jnp.zeros((2, 3, 2))).shape == (2, 3)
  with pytest.raises(ConfigError, match="2 columns"):
    temporal.flag_labels(jnp.zeros((4, 3)))


def test_specific_labels_eq2():
  logits = jnp.array([[[2.0, 0.0, 0.0], [0.0, 0.0, np.log(8.0)]]])
  labels, scores = temporal.specific_labels(logits)
  np.testing.assert_array_equal(labels, [[0, 2]])
  np.testing.assert_allclose(scores, [[np.exp(2) / (np.exp(2) + 2), 0.8]], rtol=1e-6)
  assert labels.dtype == jnp.int32 and scores.dtype == jnp.float32
