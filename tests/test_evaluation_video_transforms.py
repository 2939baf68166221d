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
  if name in vt.PHOTOMETRIC:
    np.testing.assert_array_equal(out_masks, masks)
    assert out_frames.shape == frames.shape and not np.array_equal(out_frames, frames)
    if name == "noise":
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


def _textured_video(t=12, rows=48, cols=120):
  rng = np.random.default_rng(0)
  frames = rng.integers(40, 200, (t, rows, cols, 3)).astype(np.uint8)
  return frames, np.zeros((t, rows, cols), bool)


def test_exposure_drifts_the_gain_of_each_frame_and_channel():
  frames, masks = _textured_video(t=60)
  out = vt.apply_transform("exposure", frames, masks)[0].astype(float)
  # Unsaturated values scale by one gain per frame and channel (up to rounding).
  gains = np.median(out / frames, axis=(1, 2))
  np.testing.assert_allclose(gains, vt._exposure_gains(60, np.random.default_rng(0)), atol=0.01)
  log_exposure = np.log(gains).mean(1)
  assert log_exposure.max() > 0.2 and log_exposure.min() < -0.2  # Both ways, about +-0.3.
  assert np.abs(np.diff(np.log(gains), axis=0)).max() < 0.06  # Smooth: <= 6% per frame.
  assert np.ptp(np.log(gains[:, 0] / gains[:, 2])) > 0.1  # The white balance drifts too.


def test_blur_smooths_along_a_line_and_jpeg_keeps_the_picture():
  frames, masks = _textured_video(cols=500)  # Lines up to 10 pixels long.
  blurred = vt.apply_transform("blur", frames, masks)[0].astype(float)

  def detail(f):  # Mean absolute difference of neighbours, down and across.
    return np.abs(np.diff(f, axis=1)).mean() + np.abs(np.diff(f, axis=2)).mean()

  assert detail(blurred) < 0.8 * detail(frames.astype(float))
  np.testing.assert_allclose(blurred.mean(), frames.mean(), atol=1.0)  # The kernel sums to 1.
  kernel = vt._blur_kernel(7.0, 0.0)
  assert kernel.shape == (7, 7) and np.isclose(kernel.sum(), 1.0)
  assert np.count_nonzero(kernel.sum(1) > 0.01) == 1  # A horizontal line: one row.
  np.testing.assert_array_equal(vt._blur_kernel(0.5, 1.0), [[1.0]])
  smooth = np.repeat(np.linspace(30, 220, 120)[None, None, :, None], 3, axis=3)
  smooth = np.broadcast_to(smooth, (2, 48, 120, 3)).astype(np.uint8)
  coded = vt.apply_transform("jpeg", smooth, np.zeros((2, 48, 120), bool))[0].astype(float)
  err = np.abs(coded - smooth)
  assert 0 < err.mean() < 4.0  # Artefacts, but the same picture.


@pytest.mark.parametrize("name", ["shake", "noise", "exposure", "blur"])
def test_random_transforms_are_seeded(name):
  frames, masks = _textured_video(cols=300)
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
