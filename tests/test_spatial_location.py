"""Tests of the per-frame location model of Eq. (6) (segtube_jax.spatial.location)."""

import numpy as np
import pytest

from segtube_jax.spatial import location, superpixels


def _pixel_graph(t, h, w):
  """A graph whose superpixels are single pixels, so posteriors can be read as images."""
  labels = np.broadcast_to(np.arange(h * w).reshape(h, w), (t, h, w)).copy()
  lab = np.zeros((t, h, w, 3), np.float32)
  return superpixels.build_graph(labels, lab, np.zeros((t, h, w, 2), np.float32), 0.05, 0.1)


def _square(t, h, w, y, x, side, frames=None):
  fg = np.zeros((t, h, w), bool)
  for i in range(t) if frames is None else frames:
    fg[i, y : y + side, x : x + side] = True
  return fg.reshape(-1)


def _posterior(graph, fg, bandwidth=0.5, window=0):
  t, h, w = graph.labels.shape
  return location.frame_location_posterior(graph, fg, bandwidth, window).reshape(t, h, w)


def test_posterior_is_high_on_the_actor_and_falls_off_with_distance():
  graph = _pixel_graph(1, 80, 120)
  post = _posterior(graph, _square(1, 80, 120, 30, 40, 16))[0]
  assert post[38, 48] > 0.9  # Centre of the actor.
  assert post[38, 60] < post[38, 56] < post[38, 48]  # Monotone away from it.
  assert post[5, 110] < 0.01  # Far away: background.


def test_posterior_scales_with_the_actor():
  # Twice the frame and twice the actor: the same posterior at corresponding points.
  small = _posterior(_pixel_graph(1, 80, 120), _square(1, 80, 120, 30, 40, 16))[0]
  big = _posterior(_pixel_graph(1, 160, 240), _square(1, 160, 240, 60, 80, 32))[0]
  for y, x in ((38, 48), (38, 58), (26, 48), (50, 70)):
    assert big[2 * y, 2 * x] == pytest.approx(small[y, x], abs=0.08)


def test_window_pools_neighbouring_frames_and_empty_windows_are_background():
  graph = _pixel_graph(6, 40, 60)
  fg = _square(6, 40, 60, 10, 20, 10, frames=[0, 1])  # The actor is gone from frame 2 on.
  alone = _posterior(graph, fg, window=0)
  pooled = _posterior(graph, fg, window=1)
  assert alone[1, 15, 25] > 0.9 and alone[2].max() == 0.0
  assert pooled[2, 15, 25] > 0.5  # Frame 2 borrows frame 1's actor.
  assert pooled[3:].max() == 0.0  # No foreground within a frame: U^loc is zero.
