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


def _shadow_scene(
  num_frames: int = 10, size: tuple[int, int] = (96, 128), seed: int = 0, window: bool = False
):
  """A panning camera over textured ground, a textured actor and the actor's cast shadow.

  The shadow is the ground darkened to 45% (a soft edge) under an ellipse that travels with the actor, so
  its texture is the ground's and moves with the ground. With ``window`` the actor has a
  see-through hole in its middle (a sail's transparent panel): the ground shows through it,
  while the actor's mask, a silhouette, includes it. Returns (frames uint8 [T,H,W,3], actor
  masks, shadow masks, window masks), all bool [T,H,W].
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
  windows = np.zeros((num_frames, h, w), bool)
  for t in range(num_frames):
    image = ground[:, pan * t : pan * t + w].copy()
    cx = 0.3 * w + speed * t
    rx, ry = (0.2, 0.3) if window else (0.12, 0.2)  # Room for a window inside.
    actor = ((xs - cx) / (rx * w)) ** 2 + ((ys - 0.45 * h) / (ry * h)) ** 2 <= 1.0
    shadow = ((xs - cx - 0.05 * w) / (0.18 * w)) ** 2 + ((ys - 0.72 * h) / (0.09 * h)) ** 2 <= 1.0
    shadow &= ~actor
    # A penumbra two pixels wide, as the sun's disc gives: the ground darkens smoothly.
    image *= 1.0 - 0.55 * cv2.GaussianBlur(shadow.astype(np.float32), (0, 0), 2.0)
    moved = np.roll(skin, int(round(speed * t)), axis=1)  # The actor's texture travels with it.
    hole = (((xs - cx) / (0.1 * w)) ** 2 + ((ys - 0.45 * h) / (0.16 * h)) ** 2 <= 1.0) & window
    image[actor & ~hole] = moved[actor & ~hole]
    windows[t] = hole
    rgb = np.stack([image, 0.9 * image, 0.8 * image], axis=-1)
    frames[t] = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    actors[t], shadows[t] = actor, shadow
  return frames, actors, shadows, windows


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
  frames, actors, shadows, _ = _shadow_scene()
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


def _grid_graph(values: np.ndarray):
  """A graph of 6x6 square superpixels (5x5 pixels each) per frame, built by the library."""
  t = len(values)
  block = np.arange(36).reshape(6, 6).repeat(5, axis=0).repeat(5, axis=1)
  labels = np.broadcast_to(block, (t, 30, 30)).astype(np.int32)
  lab = np.zeros((t, 30, 30, 3), np.float32)
  graph = superpixels.build_graph(labels, lab, np.zeros((t, 30, 30, 2), np.float32), 0.04, 0.1)
  return graph, np.asarray(values, np.float64).reshape(-1)


def test_only_consistency_joined_to_the_border_counts():
  c = np.full((6, 6), 0.8)  # Background, all around the border.
  c[1:5, 1:5] = 0.05  # The actor.
  c[2:4, 2:4] = 0.9  # Seen through the actor: enclosed by it.
  c[4, 1] = 0.6  # The actor's shadow, on the ground at the border.
  c[1, 4] = 0.95  # Beside the border ring: as far as the ring's own 0.8 carries.
  graph, values = _grid_graph([c, np.zeros((6, 6))])
  reach = background.border_connected(graph, values).reshape(2, 6, 6)
  expected = c.copy()
  expected[2:4, 2:4] = 0.05  # Only through the actor's 0.05.
  expected[1, 4] = 0.8
  np.testing.assert_allclose(reach[0], expected)
  np.testing.assert_array_equal(reach[1], 0.0)
  # Negative correlations count as none.
  reach = background.border_connected(graph, np.where(values > 0, -values, 0))
  np.testing.assert_array_equal(reach, 0.0)


def test_a_see_through_window_keeps_its_saliency_the_shadow_does_not():
  frames, actors, shadows, windows = _shadow_scene(window=True)
  graph, values, _ = _consistency(frames)
  reach = background.border_connected(graph, values)
  # The ground's texture moves in the window (where it stays uncovered from frame to frame)...
  window_c = _mean_over(graph, values, windows)
  assert window_c > 0.15
  # ...but the actor encloses it: little of that evidence is joined to the border.
  assert _mean_over(graph, reach, windows) < 0.5 * window_c
  assert _mean_over(graph, reach, shadows) > 0.15 + _mean_over(graph, reach, windows)
  assert _mean_over(graph, reach, ~(actors | shadows)) > 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
  return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_initial_segmentation_leaves_most_of_the_cast_shadow_out(seed):
  # B_o, the saliency segmentation the temporal networks are trained on. (The final cut takes
  # this shadow back here: its darkened ground has the colour of the actor's texture.)
  frames, actors, shadows, _ = _shadow_scene(seed=seed)
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
  frames, _, _, _ = _shadow_scene(num_frames=3, size=(40, 48))
  with pytest.raises(ConfigError, match=message):
    segment_video(frames, config=ml_collections.ConfigDict(settings))
