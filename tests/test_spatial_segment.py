"""End-to-end tests of segment_video / segment_span and their handling of bad input."""

from unittest import mock

import numpy as np
import pytest

from segtube_jax.errors import ConfigError, SegmentationError
from segtube_jax.evaluation.masks import region_similarity
from segtube_jax.schema import segmentation_config
from segtube_jax.spatial import (
  STAGES,
  gmm,
  graphcut,
  initial_masks,
  refine,
  segment_span,
  segment_video,
  segment_video_stages,
  testing,
)


@pytest.fixture(scope="module")
def clip():
  return testing.moving_actor_clip(10, (72, 96), seed=0)


class _Reader:
  """A minimal frame reader over an array, recording what was read."""

  def __init__(self, frames):
    self._frames = frames
    self.num_frames, self.height, self.width = frames.shape[:3]
    self.fps = 25.0
    self.reads = []

  def read(self, start=0, stop=None, size=None):
    self.reads.append((start, stop))
    return self._frames[start:stop]


def test_unsupervised_segmentation_finds_the_actor(clip):
  frames, masks = clip
  pred = segment_video(frames)
  assert pred.shape == masks.shape and pred.dtype == bool
  assert region_similarity(pred, masks).mean() > 0.9


def test_deterministic(clip):
  frames, _ = clip
  np.testing.assert_array_equal(segment_video(frames), segment_video(frames))


def test_span_only_and_reader_reads_only_the_span(clip):
  frames, masks = clip
  reader = _Reader(frames)
  pred = segment_video(reader, (3, 7))
  assert reader.reads == [(3, 8)]
  assert not pred[:3].any() and not pred[8:].any()
  assert region_similarity(pred[3:8], masks[3:8]).mean() > 0.85


def test_long_spans_are_chunked(clip):
  frames, masks = clip
  config = segmentation_config()
  config.max_span_frames = 4
  pred = segment_video(frames, (1, 9), None, config)
  assert not pred[0].any()
  assert region_similarity(pred[1:], masks[1:]).mean() > 0.85


@pytest.mark.parametrize("refined", [True, False])
def test_stages_are_the_steps_of_segment_video(refined):
  # Taller than graph_height and work_height, so every resize of the masks' path is taken; a
  # span in two chunks.
  frames, masks = testing.moving_actor_clip(7, (260, 340), seed=2)
  config = segmentation_config()
  config.max_span_frames = 3
  config.refine.enabled = refined
  stages = segment_video_stages(frames, (1, 5), None, config)
  assert tuple(stages) == STAGES
  for mask in stages.values():
    assert mask.shape == masks.shape and mask.dtype == bool
    assert not mask[0].any() and not mask[6].any()
  np.testing.assert_array_equal(stages["final"], segment_video(frames, (1, 5), None, config))
  np.testing.assert_array_equal(stages["initial"], initial_masks(frames, (1, 5), config))
  assert (stages["cut"] == stages["final"]).all() != refined  # Refinement moves pixels.
  assert region_similarity(stages["cut"][1:6], masks[1:6]).mean() > 0.8


def test_previous_masks_replace_the_saliency_init(clip):
  frames, masks = clip
  result = segment_span(frames, segmentation_config(), masks)
  inside = result.graph.frame_mean(masks.astype(float)) > 0.5
  np.testing.assert_array_equal(result.initial, inside)
  pred = segment_video(frames, None, masks)
  assert region_similarity(pred, masks).mean() > 0.9
  # Empty previous masks carry no information: the saliency init is used.
  np.testing.assert_array_equal(
    segment_video(frames, None, np.zeros_like(masks)), segment_video(frames)
  )


def test_list_of_frames_and_config_without_refinement(clip):
  frames, masks = clip
  config = segmentation_config()
  config.refine.enabled = False
  pred = segment_video(list(frames), None, None, config)
  assert region_similarity(pred, masks).mean() > 0.8


@pytest.mark.parametrize("features", ["pixels", "superpixels"])
def test_colour_models_on_pixels_or_superpixel_means(clip, features):
  frames, masks = clip
  config = segmentation_config()
  config.gmm.color_features = features
  real_fit = gmm.fit_pixel_models
  with mock.patch.object(gmm, "fit_pixel_models", side_effect=real_fit) as fit:
    pred = segment_video(frames, None, None, config)
  assert fit.called == (features == "pixels")
  assert region_similarity(pred, masks).mean() > 0.9


def test_one_frame_video(clip):
  frames, masks = clip
  pred = segment_video(frames[:1])  # No flow: appearance saliency alone.
  assert pred.shape == (1,) + masks.shape[1:]
  assert region_similarity(pred, masks[:1]).mean() > 0.8


@pytest.mark.parametrize("value", [0, 255, 128])
def test_constant_frames_give_empty_masks(value):
  pred = segment_video(np.full((4, 40, 48, 3), value, np.uint8))
  assert pred.shape == (4, 40, 48) and not pred.any()


def test_black_frames_inside_a_video(clip):
  frames, masks = clip
  mixed = frames.copy()
  mixed[:3] = 0
  pred = segment_video(mixed)
  assert not pred[:3].any()
  assert region_similarity(pred[3:], masks[3:]).mean() > 0.8


def test_too_few_gmm_samples_still_segments(clip):
  frames, masks = clip
  config = segmentation_config()
  config.gmm.min_samples = 100000  # Every GMM is flat: the cut rests on saliency alone.
  pred = segment_video(frames, None, None, config)
  assert region_similarity(pred, masks).mean() > 0.6


@pytest.mark.parametrize(
  "span, message",
  [
    ((5, 4), "empty"),
    ((-1, 3), "0 <= f_s"),
    ((0, 10), "10 frames"),
    ((12, 20), "10 frames"),
    ((1, 2, 3), "two frame indices"),
  ],
)
def test_bad_spans(clip, span, message):
  with pytest.raises(SegmentationError, match=message):
    segment_video(clip[0], span)


def test_bad_frames():
  with pytest.raises(SegmentationError, match="one size"):
    segment_video([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 40, 3), np.uint8)])
  with pytest.raises(SegmentationError, match="uint8"):
    segment_video(np.zeros((2, 32, 32, 3), np.float32))
  with pytest.raises(SegmentationError, match=r"\[T,H,W,3\]"):
    segment_video(np.zeros((2, 32, 32), np.uint8))
  with pytest.raises(SegmentationError, match="at least one frame"):
    segment_video(np.zeros((0, 32, 32, 3), np.uint8))
  with pytest.raises(SegmentationError, match="16x16"):
    segment_video(np.zeros((3, 8, 64, 3), np.uint8))
  with pytest.raises(SegmentationError, match="frame reader"):
    segment_video("video.mp4")


def test_reader_returning_wrong_frames(clip):
  reader = _Reader(clip[0][:, :, :50])
  reader.width = 96  # Claims another size than it delivers.
  with pytest.raises(SegmentationError, match="reader returned"):
    segment_video(reader)


def test_bad_previous_masks_and_config(clip):
  frames, masks = clip
  with pytest.raises(SegmentationError, match="previous_masks"):
    segment_video(frames, None, masks[:-1])
  config = segmentation_config()
  config.beta = 1.5
  with pytest.raises(ConfigError, match="beta"):
    segment_video(frames, None, None, config)
  for key, value, message in (
    ("saliency.threshold_method", "median", "threshold_method"),
    ("saliency.region_fraction", 1.5, "region_fraction"),
    ("saliency.region_gap", -0.5, "region_gap"),
    ("refine.color_weight", -0.1, "color_weight"),
    ("refine.chroma_sigma", -1.0, "chroma_sigma"),
    ("gmm.color_features", "histogram", "color_features"),
  ):
    config = segmentation_config()
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(ConfigError, match=message):
      segment_video(frames, None, None, config)


def test_guided_chroma_sharpens_a_subsampled_colour_edge():
  # A dark red object on the left of a light green background, whose chroma was averaged
  # over two columns across the edge (4:2:0), while its lightness stays sharp.
  lab = np.zeros((4, 8, 3), np.float32)
  lab[:, :4] = (30.0, 50.0, 30.0)
  lab[:, 4:] = (70.0, -50.0, 40.0)
  blurred = lab.copy()
  blurred[:, 3:5, 1:] = (lab[:, 3:4, 1:] + lab[:, 4:5, 1:]) / 2
  out = refine.guided_chroma(blurred, 10.0)
  np.testing.assert_array_equal(out[..., 0], blurred[..., 0])
  # The pixels on either side of the edge move back towards their own side's chroma.
  assert out[0, 3, 1] > blurred[0, 3, 1] + 10 and out[0, 4, 1] < blurred[0, 4, 1] - 10
  np.testing.assert_allclose(out[:, :2, 1:], lab[:, :2, 1:], atol=1e-4)


def test_actor_leaving_the_view_gives_empty_masks():
  # The actor runs out of the frame at frame 9 and is gone from frame 11 on.
  frames, masks = testing.moving_actor_clip(16, (72, 96), seed=0, exit_frame=9)
  assert not masks[11:].any()
  pred = segment_video(frames)
  assert not pred[11:].any()  # Empty, not the background's most salient patch.
  assert region_similarity(pred[:10], masks[:10]).mean() > 0.9


def test_a_part_of_the_actor_behind_a_thin_pole_is_kept():
  # The actor crosses a static white pole, 4 pixels wide, which cuts it into two regions.
  frames, masks = testing.moving_actor_clip(16, (96, 128), seed=0, jitter=0, speed=0.02)
  frames[:, :, 60:64] = 245
  masks[:, :, 60:64] = False
  left, right = masks.copy(), masks.copy()
  left[:, :, 60:] = False
  right[:, :, :64] = False
  left_smaller = left.sum((1, 2)) < right.sum((1, 2))
  smaller = np.where(left_smaller[:, None, None], left, right)
  crossing = smaller.sum((1, 2)) > 100  # Frames where both parts are sizeable.

  def smaller_part_recall(gap=None):
    config = segmentation_config()
    if gap is not None:
      config.saliency.region_gap = gap
    pred = segment_video(frames, config=config)
    assert not pred[:, :, 60:64].any()  # The cut does not bridge the pole.
    return (pred & smaller).sum((1, 2))[crossing] / smaller.sum((1, 2))[crossing]

  dropped, default = smaller_part_recall(0.0), smaller_part_recall()
  # Without the gap, region selection drops most of the smaller part in most crossing frames;
  # the gap keeps it whole in several of them, and loses nothing anywhere.
  assert crossing.sum() == 11 and (dropped < 0.5).sum() >= 6
  assert ((dropped < 0.5) & (default > 0.9)).sum() >= 3
  assert np.all(default >= dropped)


@pytest.mark.parametrize("size", [(64, 64), (1080, 1920)])
def test_small_and_full_hd_frames(size):
  frames, masks = testing.moving_actor_clip(6, size, seed=1)
  pred = segment_video(frames)
  assert pred.shape == masks.shape
  assert region_similarity(pred, masks).mean() > 0.85


def test_motion_contrast_needs_motion():
  # A still camera and a still actor give no usable motion cue: the flow's noise must not shape
  # the smoothness term. A moving actor's span hands each superpixel's velocity to it.
  moving, _ = testing.moving_actor_clip(6, (64, 80), seed=4)
  still = np.repeat(moving[:1], 6, axis=0)
  spy = mock.Mock(wraps=graphcut.smoothness_edges)
  with mock.patch.object(graphcut, "smoothness_edges", spy):
    for frames in (still, moving):
      segment_span(frames, segmentation_config())
  (still_call, moving_call) = spy.call_args_list
  assert still_call.args[4] is None and still_call.args[5] == 0.5
  velocity = moving_call.args[4]
  assert velocity.shape == (moving_call.args[0].num_nodes, 2) and np.abs(velocity).max() > 1
