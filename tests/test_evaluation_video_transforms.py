"""Tests of segtube_jax.evaluation.video_transforms: nuisance transforms of frames and masks."""

import numpy as np
import pytest

from segtube_jax.errors import ConfigError
from segtube_jax.evaluation import video_transforms as vt

T, H, W = 30, 60, 100


def _coded_video():
  """Frames whose green / blue channels hold each pixel's column / row, red the frame index;
  the mask marks the pixels whose column and row sum is odd (a pattern no shift preserves)."""
  rows, cols = np.mgrid[0:H, 0:W]
  frames = np.zeros((T, H, W, 3), np.uint8)
  frames[..., 0] = np.arange(T)[:, None, None]
  frames[..., 1] = cols
  frames[..., 2] = rows
  masks = np.broadcast_to((rows + cols) % 2 == 1, (T, H, W)).copy()
  masks[::3] = False  # Some empty frames.
  return frames, masks


def _windows(out):
  """Top-left (row, column) of each transformed frame in the stored frame, from the coding."""
  return out[:, 0, 0, 2].astype(int), out[:, 0, 0, 1].astype(int)


@pytest.mark.parametrize("name", vt.TRANSFORMS)
def test_frames_and_masks_stay_aligned(name):
  frames, masks = _coded_video()
  before = (frames.copy(), masks.copy())
  out_frames, out_masks = vt.apply_transform(name, frames, masks)
  np.testing.assert_array_equal(frames, before[0])  # Inputs untouched.
  np.testing.assert_array_equal(masks, before[1])
  assert out_frames.dtype == np.uint8 and out_masks.dtype == bool
  assert out_frames.shape[:3] == out_masks.shape
  if name == "noise":
    np.testing.assert_array_equal(out_masks, masks)
    diff = out_frames.astype(float) - frames
    assert abs(diff[..., 1].std() - vt.NOISE_STD) < 0.3
    return
  # Where each output pixel came from, read off its coding, must carry the same mask value.
  t_src = out_frames[..., 0].astype(int)
  c_src, r_src = out_frames[..., 1].astype(int), out_frames[..., 2].astype(int)
  np.testing.assert_array_equal(out_masks, masks[t_src, r_src, c_src])
  np.testing.assert_array_equal(t_src[:, 0, 0], vt.source_frames(name, T))


def test_flip_and_reverse_are_their_own_inverses():
  frames, masks = _coded_video()
  for name in ("flip", "reverse"):
    once = vt.apply_transform(name, frames, masks)
    twice = vt.apply_transform(name, *once)
    np.testing.assert_array_equal(twice[0], frames)
    np.testing.assert_array_equal(twice[1], masks)
    assert not np.array_equal(once[0], frames)
  np.testing.assert_array_equal(vt.source_frames("reverse", 4), [3, 2, 1, 0])
  np.testing.assert_array_equal(vt.source_frames("pan", 4), [0, 1, 2, 3])


def test_window_transforms_crop_move_and_stay_inside():
  frames, masks = _coded_video()
  wh, ww = round(vt.WINDOW * H), round(vt.WINDOW * W)
  ys, xs = _windows(vt.apply_transform("crop", frames, masks)[0])
  assert set(ys) == {(H - wh) // 2} and set(xs) == {(W - ww) // 2}
  pan = vt.apply_transform("pan", frames, masks)[0]
  assert pan.shape == (T, wh, ww, 3)
  ys, xs = _windows(pan)
  # Two sweeps across almost the whole margin, the steps smooth.
  assert xs.min() <= 1 and xs.max() >= W - ww - 1 and ys.max() - ys.min() >= (H - wh) // 2
  assert np.count_nonzero(np.diff(np.sign(np.diff(xs)))) >= 3
  assert np.abs(np.diff(xs)).max() <= 0.95 * (W - ww) / 2 * 4 * np.pi / (T - 1) + 1
  for seed in (0, 1):
    ys, xs = _windows(vt.apply_transform("shake", frames, masks, seed=seed)[0])
    assert ys.min() >= 0 and ys.max() <= H - wh and xs.min() >= 0 and xs.max() <= W - ww
    assert len(set(xs)) > 5 and len(set(ys)) > 3


@pytest.mark.parametrize("name", ["shake", "noise"])
def test_random_transforms_are_seeded(name):
  frames, masks = _coded_video()
  a = vt.apply_transform(name, frames, masks, seed=3)
  b = vt.apply_transform(name, frames, masks, seed=3)
  c = vt.apply_transform(name, frames, masks, seed=4)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], c[0])


def test_unknown_transform_and_mismatched_shapes_are_refused():
  frames, masks = _coded_video()
  with pytest.raises(ConfigError, match=r"transform: expected one of none, flip, .*got 'rotate'"):
    vt.apply_transform("rotate", frames, masks)
  with pytest.raises(ConfigError, match="transform"):
    vt.source_frames("rotate", 3)
  with pytest.raises(ConfigError, match=r"transform 'flip': expected frames \[T,H,W,3\]"):
    vt.apply_transform("flip", frames, masks[:, :, :-1])
  with pytest.raises(ConfigError, match=r"expected frames \[T,H,W,3\]"):
    vt.apply_transform("crop", frames[..., 0], masks)
  with pytest.raises(
    ConfigError, match=r"transform 'shake': its 80% window of 100x18 frames is 80x14"
  ):
    vt.apply_transform("shake", frames[:, :18], masks[:, :18])
  assert vt.apply_transform("flip", frames[:, :18], masks[:, :18])[0].shape == (T, 18, W, 3)
