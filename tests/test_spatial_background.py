"""Tests of segtube_jax.spatial.background: texture that moves with the background."""

import cv2
import ml_collections
import numpy as np
import pytest

from segtube_jax.errors import ConfigError
from segtube_jax.schema import segmentation_config
from segtube_jax.spatial import background, initial_masks, saliency, segment_video, superpixels
from segtube_jax.spatial import flow as flow_lib


def _texture(rng: np.random.Generator, shape: tuple[int, int], mean: float) -> np.ndarray:
  """Fine grey texture (a few pixels across) around ``mean``."""
  noise = cv2.GaussianBlur(rng.uniform(-1.0, 1.0, shape).astype(np.float32), (0, 0), 2.0)
  return mean + 40.0 * noise / np.abs(noise).max()


def _shadow_scene(num_frames: int = 10, size: tuple[int, int] = (96, 128), seed: int = 0):
  """A panning camera over textured ground, a textured actor and the actor's cast shadow.

  The shadow is the ground darkened to 45% (a soft edge) under an ellipse that travels with the actor, so
  its texture is the ground's and moves with the ground. Returns (frames uint8 [T,H,W,3],
  actor masks, shadow masks), both bool [T,H,W].
  """
  rng = np.random.default_rng(seed)
  h, w = size
  pan, speed = 2, 5  # Pixels per frame: the ground moves left, the actor right.
  ground = _texture(rng, (h, w + pan * num_frames), 120.0)
  skin = _texture(rng, (h, w), 90.0)
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  frames = np.empty((num_frames, h, w, 3), np.uint8)
  actors = np.empty((num_frames, h, w), bool)
  shadows = np.empty((num_frames, h, w), bool)
  for t in range(num_frames):
    image = ground[:, pan * t : pan * t + w].copy()
    cx = 0.3 * w + speed * t
    actor = ((xs - cx) / (0.12 * w)) ** 2 + ((ys - 0.45 * h) / (0.2 * h)) ** 2 <= 1.0
    shadow = ((xs - cx - 0.05 * w) / (0.18 * w)) ** 2 + ((ys - 0.72 * h) / (0.09 * h)) ** 2 <= 1.0
    shadow &= ~actor
    # A penumbra two pixels wide, as the sun's disc gives: the ground darkens smoothly.
    image *= 1.0 - 0.55 * cv2.GaussianBlur(shadow.astype(np.float32), (0, 0), 2.0)
    moved = np.roll(skin, int(round(speed * t)), axis=1)  # The actor's texture travels with it.
    image[actor] = moved[actor]
    rgb = np.stack([image, 0.9 * image, 0.8 * image], axis=-1)
    frames[t] = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    actors[t], shadows[t] = actor, shadow
  return frames, actors, shadows


def test_frame_step_reaches_the_minimum_shift_within_bounds():
  assert background.frame_step(10.0, 6) == 1
  assert background.frame_step(background.MIN_SHIFT / 3, 6) == 3
  assert background.frame_step(0.1, 6) == 6
  assert background.frame_step(0.0, 4) == 4  # No motion at all: the longest baseline.


def test_patch_correlation_is_gain_invariant_and_silent_on_flat_patches():
  rng = np.random.default_rng(0)
  texture = background.band_pass(3.0 * _texture(rng, (48, 64), 120.0))
  inner = (slice(8, -8), slice(8, -8))
  # The same texture in shadow (45% of the light) correlates fully.
  np.testing.assert_allclose(
    background.patch_correlation(texture, 0.45 * texture)[inner], 1, atol=1e-3
  )
  other = background.band_pass(3.0 * _texture(rng, (48, 64), 120.0))
  assert abs(background.patch_correlation(texture, other)[inner].mean()) < 0.1  # Unrelated.
  # Smooth shading is no texture: a ramp correlates with itself, but nothing passes the band.
  ramp = background.band_pass(np.full((48, 64), 100.0) + np.linspace(0, 30, 64)[None])
  assert np.abs(background.patch_correlation(ramp, ramp)[inner]).max() < 0.05


def _consistency(frames, scale_factor=1.0):
  # Work resolution = graph resolution here.
  labels = superpixels.slic_labels(frames, 200, 10.0, 4, frames.shape[1:3])
  forward, backward = flow_lib.dense_flows(frames)
  graph = superpixels.build_graph(labels, superpixels.lab_frames(frames), forward, 0.04, 0.1)
  sp_flow = saliency.superpixel_flow(graph, forward, backward)
  residual = saliency.motion_residual(graph, sp_flow, 0.2)
  scale = saliency.motion_scale(graph, residual) * scale_factor
  values, k = background.background_consistency(graph, sp_flow, frames, scale, 6)
  again, _ = background.background_consistency(graph, sp_flow, frames, scale, 6, threads=3)
  np.testing.assert_allclose(again, values, atol=1e-6)  # Threads do not change the result.
  return graph, values, k


def _mean_over(graph, values, masks):
  """Area-weighted mean of per-superpixel ``values`` over superpixels mostly inside masks."""
  inside = graph.frame_mean(masks.astype(np.float64)) > 0.7
  return float(np.sum(values[inside] * graph.area[inside]) / np.sum(graph.area[inside]))


def test_the_shadow_and_the_ground_move_with_the_background_the_actor_does_not():
  frames, actors, shadows = _shadow_scene()
  graph, values, k = _consistency(frames)
  assert k == 1  # The actor moves 7 pixels a frame against the ground.
  ground = ~(actors | shadows)
  assert _mean_over(graph, values, ground) > 0.6
  assert _mean_over(graph, values, shadows) > 0.35
  assert _mean_over(graph, values, actors) < 0.1
  # Were the actor 4x slower, the frames compared would lie 3-4 apart; the background's motion
  # composed over them still explains the ground and not the actor.
  graph, values, k = _consistency(frames, 0.25)
  assert k in (3, 4)
  assert _mean_over(graph, values, ground) > _mean_over(graph, values, actors) + 0.25


def _iou(a: np.ndarray, b: np.ndarray) -> float:
  return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_initial_segmentation_leaves_most_of_the_cast_shadow_out(seed):
  # B_o, the saliency segmentation the temporal networks are trained on. (The final cut takes
  # this shadow back here: its darkened ground has the colour of the actor's texture.)
  frames, actors, shadows = _shadow_scene(seed=seed)
  config = segmentation_config()
  with_cue = initial_masks(frames, config=config)
  config.saliency.background_consistency = False
  without = initial_masks(frames, config=config)
  inner = slice(1, -1)  # DAVIS scoring leaves out the first and last frame.
  taken = lambda pred: (pred & shadows)[inner].sum() / shadows[inner].sum()  # noqa: E731
  assert taken(without) > 0.2  # The premise: the flow drags the shadow along with the actor.
  assert taken(with_cue) < 0.55 * taken(without)
  assert _iou(with_cue[inner], actors[inner]) > _iou(without[inner], actors[inner]) + 0.05


@pytest.mark.parametrize(
  "key, value, message",
  [
    ("background_consistency", "yes", r"background_consistency.*a bool"),
    ("consistency_max_step", 0, r"consistency_max_step.*an integer >= 1"),
    ("consistency_max_step", 2.5, r"consistency_max_step.*an integer >= 1"),
  ],
)
def test_bad_settings_are_refused_by_name(key, value, message):
  settings = segmentation_config().to_dict()
  settings["saliency"][key] = value
  frames, _, _ = _shadow_scene(num_frames=3, size=(40, 48))
  with pytest.raises(ConfigError, match=message):
    segment_video(frames, config=ml_collections.ConfigDict(settings))
