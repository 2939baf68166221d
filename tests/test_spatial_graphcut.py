"""Tests of the Eq. (5)-(7) terms and the graph cut (segtube_jax.spatial.graphcut)."""

import itertools

import numpy as np
import pytest

from segtube_jax.errors import SegmentationError
from segtube_jax.spatial import graphcut
from segtube_jax.spatial.superpixels import SuperpixelGraph


def _energy(labels, d_fg, d_bg, edges, weights):
  unary = np.where(labels, d_fg, d_bg).sum()
  return unary + weights[labels[edges[:, 0]] != labels[edges[:, 1]]].sum()


@pytest.mark.parametrize("seed", range(5))
def test_min_cut_is_the_exact_minimum(seed):
  rng = np.random.default_rng(seed)
  n = 7
  d_fg, d_bg = rng.uniform(0, 3, n), rng.uniform(0, 3, n)
  edges = np.array(
    [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.5]
  ).reshape(-1, 2)
  weights = rng.uniform(0, 2, len(edges))
  labels = graphcut.min_cut(d_fg, d_bg, edges, weights)
  best = min(
    _energy(np.array(b, bool), d_fg, d_bg, edges, weights)
    for b in itertools.product([False, True], repeat=n)
  )
  assert _energy(labels, d_fg, d_bg, edges, weights) == pytest.approx(best)


def test_min_cut_smoothness_flips_a_weak_node():
  d_fg = np.array([0.0, 0.0, 0.6])
  d_bg = np.array([5.0, 5.0, 0.4])  # Node 2 prefers bg alone...
  edges = np.array([[0, 2], [1, 2]])
  assert graphcut.min_cut(d_fg, d_bg, edges, np.array([0.0, 0.0])).tolist() == [True, True, False]
  # ...but strong links to two fg nodes pull it to fg.
  assert graphcut.min_cut(d_fg, d_bg, edges, np.array([1.0, 1.0])).tolist() == [True, True, True]


def test_min_cut_rejects_bad_input():
  with pytest.raises(SegmentationError, match="finite"):
    graphcut.min_cut(np.array([np.nan]), np.array([1.0]), np.zeros((0, 2), int), np.zeros(0))
  with pytest.raises(SegmentationError, match="non-negative"):
    graphcut.min_cut(np.ones(2), np.ones(2), np.array([[0, 1]]), np.array([-1.0]))
  with pytest.raises(SegmentationError, match="shape"):
    graphcut.min_cut(np.ones(2), np.ones(3), np.array([[0, 1]]), np.array([1.0]))
  assert graphcut.min_cut(np.zeros(0), np.zeros(0), np.zeros((0, 2), int), np.zeros(0)).size == 0


def test_data_term_eq6():
  d_fg, d_bg = graphcut.data_term(np.array([0.5, 0.9, 0.0, 1.0]))
  np.testing.assert_allclose(d_fg[:2], -np.log([0.5, 0.9]))
  np.testing.assert_allclose(d_bg[:2], -np.log([0.5, 0.1]))
  assert np.all(np.isfinite(d_fg)) and np.all(np.isfinite(d_bg))  # Clipped at 0 and 1.


def _toy_graph():
  color = np.array([[50, 0, 0], [50, 0, 0], [80, 10, 0], [50, 0, 0]], np.float32)
  return SuperpixelGraph(
    labels=np.zeros((2, 2, 2), np.int32),
    frame=np.array([0, 0, 0, 1], np.int32),
    offsets=np.array([0, 3, 4]),
    color=color,
    centroid=np.zeros((4, 2), np.float32),
    area=np.ones(4),
    border=np.ones(4, bool),
    spatial_edges=np.array([[0, 1], [1, 2]]),
    temporal_edges=np.array([[0, 3]]),
    temporal_overlap=np.array([0.5]),
  )


def test_smoothness_edges_eq7():
  g = _toy_graph()
  edges, w = graphcut.smoothness_edges(g, lambda_spatial=2.0, lambda_temporal=3.0, sigma_scale=2.0)
  d2 = np.array([0.0, 30.0**2 + 10.0**2, 0.0])
  sigma2 = 2.0 * d2.mean()
  np.testing.assert_array_equal(edges, [[0, 1], [1, 2], [0, 3]])
  np.testing.assert_allclose(w, [2.0, 2.0 * np.exp(-d2[1] / sigma2), 3.0 * 0.5])


def test_contrast_sigma2_never_zero():
  c = np.zeros((3, 3))
  assert graphcut.contrast_sigma2(c, c, 2.0) > 0
  assert graphcut.contrast_sigma2(np.zeros((0, 3)), np.zeros((0, 3)), 2.0) == 1.0


def test_smoothness_edges_motion_boundaries_weaken_spatial_pairs_only():
  g = _toy_graph()
  plain = graphcut.smoothness_edges(g, 2.0, 3.0, 2.0)[1]
  still = np.zeros((4, 2))
  np.testing.assert_allclose(graphcut.smoothness_edges(g, 2.0, 3.0, 2.0, still, 0.5)[1], plain)
  velocity = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [9.0, 9.0]])
  np.testing.assert_allclose(graphcut.smoothness_edges(g, 2.0, 3.0, 2.0, velocity, 0.0)[1], plain)
  _, w = graphcut.smoothness_edges(g, 2.0, 3.0, 2.0, velocity, 0.5)
  # Spatial pairs (0,1): no motion difference; (1,2): ||dv||^2 = 25, sigma_v^2 = 2 * 12.5.
  factor = np.array([1.0, 0.5 + 0.5 * np.exp(-25.0 / 25.0), 1.0])  # The temporal pair keeps 1.
  np.testing.assert_allclose(w, plain * factor)


def test_motion_boundary_moves_the_cut_where_colour_gives_no_edge():
  # A row of four equally coloured superpixels: 0 and 1 move together, 2 and 3 stand still.
  # Node 1 leans a little to the background; without a motion term the cut leaves it there.
  g = SuperpixelGraph(
    labels=np.zeros((1, 1, 4), np.int32),
    frame=np.zeros(4, np.int32),
    offsets=np.array([0, 4]),
    color=np.full((4, 3), 50.0, np.float32),
    centroid=np.zeros((4, 2), np.float32),
    area=np.ones(4),
    border=np.ones(4, bool),
    spatial_edges=np.array([[0, 1], [1, 2], [2, 3]]),
    temporal_edges=np.zeros((0, 2), np.int64),
    temporal_overlap=np.zeros(0),
  )
  d_fg, d_bg = graphcut.data_term(np.array([0.99, 0.45, 0.5, 0.01]))
  velocity = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
  for contrast, expected in ((0.0, [True, False, False, False]), (0.5, [True, True, False, False])):
    edges, w = graphcut.smoothness_edges(g, 1.0, 1.0, 2.0, velocity, contrast)
    assert graphcut.min_cut(d_fg, d_bg, edges, w).tolist() == expected
