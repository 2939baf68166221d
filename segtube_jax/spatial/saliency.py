"""Saliency of superpixels: the initial segmentation B_o of Sec. 2.3 and a data-term prior.

Two cues, both computed on the superpixel graph and both using the frame border as the
background prior (an actor rarely fills the border strip):

* Appearance: geodesic saliency (Wei et al., ECCV 2012), the colour-geodesic distance from a
  superpixel to the nearest border superpixel. It is the cheap core of boundary connectivity and
  minimum-barrier saliency: one multi-source Dijkstra over the whole span.
* Motion: the residual of a superpixel's mean optical flow against a robust affine model of the
  border superpixels' flow. The affine model absorbs camera pan, zoom and the linear parallax of
  a ground plane, which a single median border vector does not.

Their product is the saliency: motion alone also fires on water or wind-blown foliage, and
appearance alone fires on any contrasted background object; an actor has both.
"""

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from segtube_jax.spatial.superpixels import SuperpixelGraph


def _frame_max(graph: SuperpixelGraph, values: np.ndarray) -> np.ndarray:
  """Per-frame maximum of per-superpixel ``values`` -> [T]."""
  return np.maximum.reduceat(values, graph.offsets[:-1])


def _frame_mean(graph: SuperpixelGraph, values: np.ndarray) -> np.ndarray:
  """Per-frame area-weighted mean of per-superpixel ``values`` -> [T]."""
  starts = graph.offsets[:-1]
  return np.add.reduceat(values * graph.area, starts) / np.add.reduceat(graph.area, starts)


def appearance_saliency(graph: SuperpixelGraph) -> np.ndarray:
  """Geodesic colour distance to the frame border, scaled to [0, 1] per frame -> [N].

  Frames without any colour contrast (constant or all-black) get zero saliency everywhere.
  """
  n = graph.num_nodes
  e = graph.spatial_edges
  if e.shape[0] == 0 or not graph.border.any():
    return np.zeros(n)
  dc = np.linalg.norm(graph.color[e[:, 0]] - graph.color[e[:, 1]], axis=1).astype(np.float64)
  # csgraph drops explicit zeros as missing edges; a tiny floor keeps flat regions connected.
  adj = csr_matrix((dc + 1e-6, (e[:, 0], e[:, 1])), shape=(n, n))
  dist = dijkstra(adj, directed=False, indices=np.flatnonzero(graph.border), min_only=True)
  dist = np.where(np.isfinite(dist), dist, 0.0)
  peak = _frame_max(graph, dist)[graph.frame]
  # 1 Lab unit of contrast over a whole frame is sensor noise, not an object.
  return np.where(peak > 1.0, dist / np.maximum(peak, 1e-9), 0.0)


def _affine_residual(graph: SuperpixelGraph, flow: np.ndarray, keep: float = 0.7,
                     iters: int = 3) -> np.ndarray:
  """Per-superpixel distance of ``flow`` [N,2] to a trimmed affine fit of border flow."""
  out = np.zeros(graph.num_nodes)
  design = np.concatenate([graph.centroid, np.ones((graph.num_nodes, 1), np.float32)], axis=1)
  for t in range(len(graph.offsets) - 1):
    s = slice(graph.offsets[t], graph.offsets[t + 1])
    xb, fb = design[s][graph.border[s]], flow[s][graph.border[s]]
    if xb.shape[0] < 3:
      continue
    use = np.ones(xb.shape[0], bool)
    for _ in range(iters):
      # Trimming the worst residuals drops border superpixels covered by the actor.
      model, *_ = np.linalg.lstsq(xb[use], fb[use], rcond=None)
      r = np.linalg.norm(xb @ model - fb, axis=1)
      use = r <= np.quantile(r, keep)
    out[s] = np.linalg.norm(design[s] @ model - flow[s], axis=1)
  return out


def motion_saliency(graph: SuperpixelGraph, forward: np.ndarray, backward: np.ndarray,
                    noise: float, min_motion: float) -> tuple[np.ndarray, bool]:
  """Flow relative to the background motion model, scaled to [0, 1] over the span.

  The scale is a high quantile of the frames' strongest residuals, not each frame's own
  maximum: in a frame where the actor pauses, per-frame scaling would promote whatever else
  moves a little (a drifting object, flow noise) to full saliency.

  Args:
    graph: Superpixels of the span.
    forward: float32 [T,H,W,2] flow t -> t+1.
    backward: float32 [T,H,W,2] flow t -> t-1.
    noise: residuals below this many pixels count as zero.
    min_motion: spans whose typical strongest residual is below this many pixels have no
      usable motion cue (static scene, or a single frame).

  Returns:
    (saliency [N], usable): usable is False when the span has no motion cue.
  """
  t = len(graph.offsets) - 1
  if t < 2:
    return np.zeros(graph.num_nodes), False
  has_fwd = (graph.frame < t - 1).astype(np.float64)
  has_bwd = (graph.frame > 0).astype(np.float64)
  total = has_fwd * _affine_residual(graph, graph.frame_mean(forward))
  total += has_bwd * _affine_residual(graph, graph.frame_mean(backward))
  resid = np.maximum(total / np.maximum(has_fwd + has_bwd, 1.0) - noise, 0.0)
  scale = float(np.quantile(_frame_max(graph, resid), 0.75))
  if scale < min_motion:
    return np.zeros(graph.num_nodes), False
  return np.minimum(resid / scale, 1.0), True


def combined_saliency(appearance: np.ndarray, motion: np.ndarray, usable: bool) -> np.ndarray:
  """Product of both cues, or appearance alone when the span has no motion cue -> [N]."""
  return appearance * motion if usable else appearance


def adaptive_threshold(graph: SuperpixelGraph, saliency: np.ndarray, k: float,
                       min_fraction: float, span_fraction: float) -> np.ndarray:
  """Per-frame saliency threshold -> [T].

  Within a frame: max(mean + k * std, min_fraction * max), area weighted. Mean plus a multiple
  of the deviation adapts to how peaked the frame's saliency is; the floor relative to the
  maximum keeps a frame of uniformly low saliency from turning all foreground. Across frames:
  never below span_fraction times the median frame threshold, so that a frame whose saliency is
  weak overall (the actor pauses) starts with little or no foreground instead of its noise.
  """
  mean = _frame_mean(graph, saliency)
  std = np.sqrt(np.maximum(_frame_mean(graph, saliency**2) - mean**2, 0.0))
  thr = np.maximum(mean + k * std, min_fraction * _frame_max(graph, saliency))
  return np.maximum(thr, span_fraction * np.median(thr))


def initial_labels(graph: SuperpixelGraph, saliency: np.ndarray, threshold: np.ndarray
                   ) -> np.ndarray:
  """Initial segmentation B_o: superpixels above their frame's threshold -> bool [N]."""
  return (saliency > threshold[graph.frame]) & (saliency > 0)


def saliency_probability(graph: SuperpixelGraph, saliency: np.ndarray, threshold: np.ndarray
                         ) -> np.ndarray:
  """Foreground probability s / (s + threshold): 0.5 at the threshold, 0 at zero -> [N].

  Frames whose threshold is zero (no saliency at all) get probability 0: nothing stands out.
  """
  thr = threshold[graph.frame]
  return np.where(thr > 0, saliency / np.maximum(saliency + thr, 1e-12), 0.0)
