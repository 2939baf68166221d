"""Data and smoothness terms of Eq. (5)-(7) and their minimisation by one s-t graph cut.

All superpixels of the span are nodes of a single graph; spatial and temporal neighbour pairs
are its n-links. Edges are handed to PyMaxflow as arrays (``add_edges``, ``add_grid_tedges``).
"""

import maxflow
import numpy as np

from segtube_jax.errors import SegmentationError
from segtube_jax.spatial.superpixels import SuperpixelGraph

_EPS = 1e-4  # Probability floor: keeps -log finite and lets strong n-links overrule a unary.


def data_term(p_fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Data term D_i of Eq. (6) from the foreground probability of each node.

  Args:
    p_fg: [N] probability of label foreground, i.e. the argument of the log in Eq. (6)
      for b = fg (for b = bg the argument is 1 - p_fg, as U_bg = 1 - U_fg).

  Returns:
    (D_i(fg), D_i(bg)), each [N].
  """
  p = np.clip(np.asarray(p_fg, np.float64), _EPS, 1.0 - _EPS)
  return -np.log(p), -np.log1p(-p)


def contrast_sigma2(color_a: np.ndarray, color_b: np.ndarray, scale: float) -> float:
  """sigma^2 of Eq. (7): ``scale`` times the mean squared colour distance over the pairs.

  Eq. (7) as printed has no sigma; without one exp(-||c - c'||^2) on Lab colours is ~0 for
  any visible edge. GrabCut's choice (scale 2) normalises by the video's own contrast.
  """
  if color_a.shape[0] == 0:
    return 1.0
  d2 = float(np.mean(np.sum((color_a - color_b) ** 2, axis=1)))
  return max(scale * d2, 1e-6)


def smoothness_edges(
  graph: SuperpixelGraph,
  lambda_spatial: float,
  lambda_temporal: float,
  sigma_scale: float,
  velocity: np.ndarray | None = None,
  motion_contrast: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
  """Neighbour pairs and weights of the smoothness term S_iv, Eq. (7).

  Spatial pairs get lambda_spatial exp(-||c - c'||^2 / sigma^2). Temporal pairs get the same
  times lambda_temporal and the fraction of s_{t,i}'s flow-warped pixels landing in s_{t+1,v},
  so a superpixel's temporal links sum to at most lambda_temporal whatever it overlaps.

  With ``velocity``, spatial pairs are also contrast-sensitive to motion: their weight is
  multiplied by (1 - m) + m exp(-||v - v'||^2 / sigma_v^2), m = ``motion_contrast`` and
  sigma_v^2 = sigma_scale times the mean ||v - v'||^2 over the spatial pairs. An actor whose
  colours the background shares still moves differently from it, and a motion boundary is
  where the cut should run; m < 1 leaves the colour term part of its say where the flow
  bleeds across a boundary (with m = 1 a limb moving against the torso is cut off).

  Args:
    graph: Superpixels of the span.
    lambda_spatial: Weight of spatial pairs.
    lambda_temporal: Weight of temporal pairs.
    sigma_scale: sigma^2 in units of the mean squared difference over the pairs.
    velocity: Optional float [N,2] mean flow of each superpixel.
    motion_contrast: m in [0, 1]; 0 (or no velocity) gives Eq. (7) as printed.

  Returns:
    (edges int64 [E,2], weights float64 [E]).
  """
  edges = np.concatenate([graph.spatial_edges, graph.temporal_edges])
  ca, cb = graph.color[edges[:, 0]], graph.color[edges[:, 1]]
  sigma2 = contrast_sigma2(ca, cb, sigma_scale)
  contrast = np.exp(-np.sum((ca - cb) ** 2, axis=1) / sigma2)
  scale = np.concatenate(
    [
      np.full(graph.spatial_edges.shape[0], lambda_spatial),
      lambda_temporal * graph.temporal_overlap,
    ]
  )
  if velocity is not None and motion_contrast > 0:
    scale[: graph.spatial_edges.shape[0]] *= motion_boundary_factor(
      graph.spatial_edges, velocity, sigma_scale, motion_contrast
    )
  return edges.astype(np.int64), (scale * contrast).astype(np.float64)


def motion_boundary_factor(
  pairs: np.ndarray, velocity: np.ndarray, sigma_scale: float, motion_contrast: float
) -> np.ndarray:
  """(1 - m) + m exp(-||v - v'||^2 / sigma_v^2) for each pair of ``pairs`` [E,2] -> [E]."""
  va, vb = velocity[pairs[:, 0]], velocity[pairs[:, 1]]
  sigma2 = contrast_sigma2(va, vb, sigma_scale)
  return (1.0 - motion_contrast) + motion_contrast * np.exp(
    -np.sum((va - vb) ** 2, axis=1) / sigma2
  )


def min_cut(
  d_fg: np.ndarray, d_bg: np.ndarray, edges: np.ndarray, weights: np.ndarray
) -> np.ndarray:
  """Minimises Eq. (5) exactly (binary, submodular) with one max-flow -> fg labels bool [N].

  Args:
    d_fg: [N] cost of labelling each node foreground.
    d_bg: [N] cost of labelling each node background.
    edges: int [E,2] node pairs.
    weights: [E] non-negative cost of giving a pair different labels.
  """
  n = d_fg.shape[0]
  if d_bg.shape != (n,) or edges.shape != (weights.shape[0], 2):
    raise SegmentationError(
      f"graph cut: expected d_fg, d_bg of shape ({n},) and edges [E,2] matching weights [E], "
      f"got {d_bg.shape}, {edges.shape}, {weights.shape}"
    )
  if n == 0:
    return np.zeros(0, bool)
  if not (np.all(np.isfinite(d_fg)) and np.all(np.isfinite(d_bg)) and np.all(weights >= 0)):
    raise SegmentationError("graph cut: expected finite unaries and non-negative edge weights")
  g = maxflow.Graph[float](n, edges.shape[0])
  nodes = g.add_nodes(n)
  if edges.shape[0]:
    g.add_edges(nodes[edges[:, 0]], nodes[edges[:, 1]], weights, weights)
  # Source side = foreground: a node left on the source side cuts its sink link, paying d_fg.
  g.add_grid_tedges(nodes, d_bg, d_fg)
  g.maxflow()
  return ~g.get_grid_segments(nodes)
