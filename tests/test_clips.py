"""Tests of segtube_jax.clips: windows, SCNN-style labels, saliency-aware frames."""

import numpy as np
import pytest

from segtube_jax import clips
from segtube_jax.errors import ConfigError


def test_windows_16_32_with_75_percent_overlap():
  w = clips.enumerate_windows(100)
  s16, s32 = w.starts[w.scales == 0], w.starts[w.scales == 1]
  assert list(s16[:3]) == [0, 4, 8] and list(s32[:3]) == [0, 8, 16]
  assert (w.ends[w.scales == 0] - s16 == 16).all() and (w.ends[w.scales == 1] - s32 == 32).all()
  assert w.ends.max() == 100  # The tail is covered.
  covered = np.zeros(100, int)
  for s, e in zip(w.starts, w.ends):
    covered[s:e] += 1
  assert covered.min() >= 1


def test_short_video_gets_one_window_per_scale():
  w = clips.enumerate_windows(10)
  assert list(w.starts) == [0, 0] and list(w.ends) == [10, 10]


def test_clip_frame_indices():
  assert list(clips.clip_frame_indices(4, 16)) == list(range(4, 20))
  assert list(clips.clip_frame_indices(8, 32)) == list(range(8, 40, 2))
  assert list(clips.clip_frame_indices(0, 8)) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]


def test_window_labels_scnn_rule():
  w = clips.Windows(np.array([0, 10, 20, 30]), np.array([10, 20, 30, 40]), np.zeros(4, np.int32))
  # Instance of class 2 over frames [12, 28): covers 0.8 of window 1, 0.8 of window 2.
  # Instance of class 1 over [36, 40): covers 0.4 of window 3 -> ignored.
  labels = clips.window_labels(w, [(12, 28, 2), (36, 40, 1)])
  assert list(labels) == [0, 2, 2, -1]
  assert list(clips.proposal_labels(labels)) == [0, 1, 1, -1]
  with pytest.raises(ConfigError, match="background_coverage < positive_coverage"):
    clips.window_labels(w, [], positive_coverage=0.3, background_coverage=0.5)


def test_balance_background():
  labels = np.array([0] * 10 + [1] * 3 + [2] * 2 + [-1])
  out = clips.balance_background(labels, np.random.default_rng(0))
  assert (out == 0).sum() == 3 and (out[10:] == labels[10:]).all()


def test_saliency_aware():
  frames = np.full((2, 4, 4, 3), 200, np.uint8)
  frames[:, 0, 0] = 0
  masks = np.zeros((2, 4, 4), bool)
  masks[:, 1:3, 1:3] = True
  out = clips.saliency_aware(frames, masks, "multiply", 0.0)
  assert (out[:, 1:3, 1:3] == 200).all() and out[:, 0].max() == 0
  blended = clips.saliency_aware(frames, masks, "blend_mean", 0.0)
  mean = frames.astype(float).mean(axis=(1, 2))
  np.testing.assert_allclose(blended[0, 3, 3], mean[0].round(), atol=1)
  assert clips.saliency_aware(frames, None) is frames
  with pytest.raises(ConfigError, match="do not match"):
    clips.saliency_aware(frames, masks[:, :2])


@pytest.mark.parametrize("mode", ["blend_mean", "multiply"])
@pytest.mark.parametrize("weight", [0.0, 0.25, 0.6])
def test_binary_masks_take_the_table_path_with_the_same_values(mode, weight):
  # Binary masks use one lookup table per frame and channel; float masks the per-pixel formula.
  rng = np.random.default_rng(int(weight * 10))
  for shape in [(3, 128, 171), (2, 37, 53), (1, 1, 1)]:
    frames = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    masks = rng.random(shape) > 0.6
    fast = clips.saliency_aware(frames, masks, mode, weight)
    reference = clips.saliency_aware(frames, masks.astype(np.float32), mode, weight)
    np.testing.assert_array_equal(fast, reference)
    assert fast.dtype == np.uint8 and (fast[masks] == frames[masks]).all()
