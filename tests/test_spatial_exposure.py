"""Tests of segtube_jax.spatial.exposure: per-frame colour gains from the flow, and their use."""

from unittest import mock

import ml_collections
import numpy as np
import pytest

from segtube_jax.errors import ConfigError, SegmentationError
from segtube_jax.schema import segmentation_config
from segtube_jax.spatial import exposure, refine, segment_video, testing
from segtube_jax.spatial import flow as flow_lib


def _drifting(frames: np.ndarray, amplitude: float = 0.3, balance: float = 0.08):
  """``frames`` under a smooth exposure and white-balance drift, and its log-gains [T,3]."""
  k = 2.0 * np.pi * np.arange(len(frames))[:, None] / 10.0
  log_gain = amplitude * np.sin(k) + balance * np.sin(k + np.array([0.0, 2.0, 4.0]))
  drifted = np.clip(np.round(frames * np.exp(log_gain)[:, None, None, :]), 0, 255)
  return drifted.astype(np.uint8), log_gain


def _gains(frames: np.ndarray) -> np.ndarray:
  forward, backward = flow_lib.dense_flows(frames)
  gains = exposure.exposure_gains(frames, forward, backward)
  # Frame pairs on several threads give the same gains.
  np.testing.assert_array_equal(exposure.exposure_gains(frames, forward, backward, 3), gains)
  return gains


@pytest.mark.parametrize("seed", [0, 3])
def test_a_drifting_exposure_is_recovered_per_channel(seed):
  frames, _ = testing.moving_actor_clip(16, (96, 128), seed=seed)
  drifted, log_gain = _drifting(frames)
  estimated = np.log(_gains(drifted))
  np.testing.assert_allclose(estimated.mean(0), 0.0, atol=1e-9)  # Centred on the span.
  # Up to +-0.38 in log-gain, recovered within 0.02 in every frame and channel.
  assert np.abs(log_gain).max() > 0.3
  assert np.abs(estimated - (log_gain - log_gain.mean(0))).max() < 0.02
  compensated = exposure.compensate(drifted, _gains(drifted))
  # Frame by frame, the compensated colours are the stored ones up to one factor per channel.
  ratio = np.log(compensated.reshape(16, -1, 3).mean(1) / frames.reshape(16, -1, 3).mean(1))
  assert np.ptp(ratio, axis=0).max() < 0.03 < np.ptp(np.log(drifted.mean((1, 2))), axis=0).min()


def test_a_fixed_exposure_and_a_cut_to_another_scene_keep_unit_gains():
  frames, _ = testing.moving_actor_clip(12, (96, 128), seed=1)
  assert np.abs(np.log(_gains(frames))).max() < 0.01
  # A frame of another scene matches nothing: its pairs vote for no change, whatever its colours.
  other = np.full_like(frames[0], 40)
  other[::2] = 230
  cut = frames.copy()
  cut[6] = other
  assert np.abs(np.log(_gains(cut))).max() < 0.01
  np.testing.assert_array_equal(exposure.compensate(frames, np.ones((12, 3))), frames)
  # The lookup tables divide exactly as arithmetic would, clipping what the gain pushes past 255.
  gains = np.exp(np.random.default_rng(0).uniform(-0.4, 0.4, (12, 3)))
  divided = np.clip(np.round(frames / gains[:, None, None, :]), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(exposure.compensate(frames, gains), divided)


def test_fewer_than_two_frames_and_mismatched_shapes():
  frames, _ = testing.moving_actor_clip(2, (40, 48), seed=0)
  flows = np.zeros((1, 40, 48, 2), np.float32)
  np.testing.assert_array_equal(exposure.exposure_gains(frames[:1], flows, flows), np.ones((1, 3)))
  with pytest.raises(
    SegmentationError, match=r"exposure_gains: expected frames \[T,h,w,3\] and flows"
  ):
    exposure.exposure_gains(frames, flows, flows)


@pytest.mark.parametrize("compensate", [True, False])
def test_segment_video_works_on_compensated_frames_when_configured(compensate):
  # What the refinement sees (the last step) tells whether the stage worked on the stored
  # colours or on the drifting ones.
  frames, masks = testing.moving_actor_clip(16, (96, 128), seed=2)
  drifted, log_gain = _drifting(frames)
  config = segmentation_config()
  config.compensate_exposure = compensate
  spy = mock.Mock(wraps=refine.refine_masks)
  with mock.patch.object(refine, "refine_masks", spy):
    pred = segment_video(drifted, config=config)
  seen = spy.call_args.args[0].reshape(16, -1, 3).mean(1)
  drift_left = np.ptp(np.log(seen / frames.reshape(16, -1, 3).mean(1)), axis=0).max()
  if compensate:
    assert drift_left < 0.03
  else:
    assert drift_left > 0.5 * np.ptp(log_gain, axis=0).min()
  assert (pred & masks).sum() / (pred | masks).sum() > 0.9


def test_a_non_bool_setting_is_refused_by_name():
  settings = segmentation_config().to_dict()
  settings["compensate_exposure"] = "yes"  # E.g. a config file's typo; --set refuses it too.
  frames, _ = testing.moving_actor_clip(4, (40, 48), seed=0)
  with pytest.raises(ConfigError, match=r"compensate_exposure.*a bool"):
    segment_video(frames, config=ml_collections.ConfigDict(settings))
