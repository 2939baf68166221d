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

Saliency also decides between regions: B_o keeps only regions that hold a strongly salient
superpixel (hysteresis), and after the graph cut a region with little saliency beside its
frame's strongest one is dropped (a distractor that shares a colour with the actor) unless it
lies right next to it (a part of the actor behind a thin occluder).
"""

import dataclasses

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

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


def background_models(
  graph: SuperpixelGraph, flow: np.ndarray, keep: float = 0.7, iters: int = 3
) -> list[np.ndarray | None]:
  """Per frame, a trimmed least-squares affine model of the border superpixels' flow [N,2].

  A model is a float64 [3,2] matrix mapping (x / W, y / H, 1) to the flow in pixels at the
  graph's resolution; None for a frame with fewer than 3 border superpixels. Trimming the worst
  residuals drops border superpixels covered by the actor.
  """
  design = np.concatenate([graph.centroid, np.ones((graph.num_nodes, 1), np.float32)], axis=1)
  models = []
  for t in range(len(graph.offsets) - 1):
    s = slice(graph.offsets[t], graph.offsets[t + 1])
    xb, fb = design[s][graph.border[s]], flow[s][graph.border[s]]
    if xb.shape[0] < 3:
      models.append(None)
      continue
    use = np.ones(xb.shape[0], bool)
    for _ in range(iters):
      model, *_ = np.linalg.lstsq(xb[use], fb[use], rcond=None)
      r = np.linalg.norm(xb @ model - fb, axis=1)
      use = r <= np.quantile(r, keep)
    models.append(np.asarray(model, np.float64))
  return models


def _affine_residual(graph: SuperpixelGraph, flow: np.ndarray) -> np.ndarray:
  """Per-superpixel distance of ``flow`` [N,2] to the trimmed affine fit of border flow."""
  out = np.zeros(graph.num_nodes)
  design = np.concatenate([graph.centroid, np.ones((graph.num_nodes, 1), np.float32)], axis=1)
  for t, model in enumerate(background_models(graph, flow)):
    if model is not None:
      s = slice(graph.offsets[t], graph.offsets[t + 1])
      out[s] = np.linalg.norm(design[s] @ model - flow[s], axis=1)
  return out


@dataclasses.dataclass(frozen=True)
class SuperpixelFlow:
  """Mean optical flow of every superpixel, both directions (pixels per frame at graph size).

  Attributes:
    forward: float64 [N,2] mean flow t -> t+1 (zero in the last frame, which has none).
    backward: float64 [N,2] mean flow t -> t-1 (zero in the first frame).
    has_forward: float64 [N] 1 where the forward flow exists, else 0.
    has_backward: float64 [N] 1 where the backward flow exists, else 0.
  """

  forward: np.ndarray
  backward: np.ndarray
  has_forward: np.ndarray
  has_backward: np.ndarray

  def velocity(self) -> np.ndarray:
    """Each superpixel's motion, forward and reversed backward flow averaged -> [N,2]."""
    total = self.has_forward[:, None] * self.forward - self.has_backward[:, None] * self.backward
    return total / np.maximum(self.has_forward + self.has_backward, 1.0)[:, None]


def superpixel_flow(
  graph: SuperpixelGraph, forward: np.ndarray, backward: np.ndarray
) -> SuperpixelFlow:
  """Area-weighted mean of the flows [T,H,W,2] (graph size) over each superpixel."""
  t = len(graph.offsets) - 1
  return SuperpixelFlow(
    forward=graph.frame_mean(forward),
    backward=graph.frame_mean(backward),
    has_forward=(graph.frame < t - 1).astype(np.float64),
    has_backward=(graph.frame > 0).astype(np.float64),
  )


def motion_residual(graph: SuperpixelGraph, flow: SuperpixelFlow, noise: float) -> np.ndarray:
  """Each superpixel's flow residual against the background model, less ``noise`` -> [N].

  Pixels at the graph's resolution, forward and backward residuals averaged where both exist.
  """
  has_fwd, has_bwd = flow.has_forward, flow.has_backward
  total = has_fwd * _affine_residual(graph, flow.forward)
  total += has_bwd * _affine_residual(graph, flow.backward)
  return np.maximum(total / np.maximum(has_fwd + has_bwd, 1.0) - noise, 0.0)


def motion_scale(graph: SuperpixelGraph, residual: np.ndarray) -> float:
  """The span's typical strongest residual: the 0.75 quantile of the per-frame maxima."""
  return float(np.quantile(_frame_max(graph, residual), 0.75))


def motion_saliency(
  graph: SuperpixelGraph, flow: SuperpixelFlow, noise: float, min_motion: float
) -> tuple[np.ndarray, bool]:
  """Flow relative to the background motion model, scaled to [0, 1] over the span.

  The scale is a high quantile of the frames' strongest residuals (:func:`motion_scale`), not
  each frame's own maximum: in a frame where the actor pauses, per-frame scaling would promote
  whatever else moves a little (a drifting object, flow noise) to full saliency.

  Args:
    graph: Superpixels of the span.
    flow: Their mean flows (:func:`superpixel_flow`).
    noise: residuals below this many pixels count as zero.
    min_motion: spans whose typical strongest residual is below this many pixels have no
      usable motion cue (static scene, or a single frame).

  Returns:
    (saliency [N], usable): usable is False when the span has no motion cue.
  """
  if len(graph.offsets) - 1 < 2:
    return np.zeros(graph.num_nodes), False
  resid = motion_residual(graph, flow, noise)
  scale = motion_scale(graph, resid)
  if scale < min_motion:
    return np.zeros(graph.num_nodes), False
  return np.minimum(resid / scale, 1.0), True


def combined_saliency(appearance: np.ndarray, motion: np.ndarray, usable: bool) -> np.ndarray:
  """Product of both cues, or appearance alone when the span has no motion cue -> [N]."""
  return appearance * motion if usable else appearance


def _otsu(graph: SuperpixelGraph, saliency: np.ndarray, bins: int = 64) -> np.ndarray:
  """Per-frame Otsu threshold of ``saliency``, area weighted, on [0, frame max] -> [T].

  The cut of the frame's saliency histogram that maximises the between-class variance (Otsu
  1979), for all frames at once from cumulative sums.
  """
  t = len(graph.offsets) - 1
  peak = np.maximum(_frame_max(graph, saliency), 1e-12)
  bin_of = np.minimum((saliency / peak[graph.frame] * bins).astype(np.int64), bins - 1)
  hist = np.bincount(graph.frame.astype(np.int64) * bins + bin_of, graph.area, t * bins).reshape(
    t, bins
  )
  centres = (np.arange(bins) + 0.5) / bins
  w0 = np.cumsum(hist, axis=1)  # Weight and first moment of the class below each cut.
  m0 = np.cumsum(hist * centres, axis=1)
  total, m_total = w0[:, -1:], m0[:, -1:]
  # Between-class variance up to a per-frame factor: (mu_T w0 - m0)^2 / (w0 w1).
  between = (m_total * w0 - m0 * total) ** 2 / np.maximum(w0 * (total - w0), 1e-12)
  cut = np.argmax(between[:, :-1], axis=1)
  return (cut + 1) / bins * peak


def adaptive_threshold(
  graph: SuperpixelGraph,
  saliency: np.ndarray,
  k: float,
  min_fraction: float,
  span_fraction: float,
  method: str = "otsu",
) -> np.ndarray:
  """Per-frame saliency threshold -> [T].

  Within a frame: Otsu's threshold of the area-weighted saliency histogram (``method="otsu"``)
  or mean + k * std (``"mean_std"``), never below min_fraction times the frame's maximum.
  Mean plus a multiple of the deviation depends on the actor's share of the frame: for an
  actor covering 3% of it, the threshold falls in the background's tail and lets clutter and
  distractors into B_o. Otsu splits the two modes whatever their sizes. The floor relative to
  the maximum keeps a frame of uniformly low saliency from turning all foreground. Across
  frames: never below span_fraction times the median frame threshold, so that a frame whose
  saliency is weak overall (the actor pauses) starts with little or no foreground instead of
  its noise.
  """
  if method == "otsu":
    thr = _otsu(graph, saliency)
  elif method == "mean_std":
    mean = _frame_mean(graph, saliency)
    thr = mean + k * np.sqrt(np.maximum(_frame_mean(graph, saliency**2) - mean**2, 0.0))
  else:
    raise ValueError(f"threshold method {method!r}: expected 'otsu' or 'mean_std'")
  thr = np.maximum(thr, min_fraction * _frame_max(graph, saliency))
  return np.maximum(thr, span_fraction * np.median(thr))


def _regions(graph: SuperpixelGraph, labels: np.ndarray) -> np.ndarray:
  """Region id [N] of every superpixel: connected components of ``labels`` within each frame.

  Regions follow spatial edges only, so a region never spans two frames. Superpixels labelled
  False each form a region of their own.
  """
  e = graph.spatial_edges
  e = e[labels[e[:, 0]] & labels[e[:, 1]]]
  n = graph.num_nodes
  adj = csr_matrix((np.ones(e.shape[0]), (e[:, 0], e[:, 1])), shape=(n, n))
  return connected_components(adj, directed=False)[1]


def initial_labels(
  graph: SuperpixelGraph, saliency: np.ndarray, threshold: np.ndarray, seed_fraction: float = 0.0
) -> np.ndarray:
  """Initial segmentation B_o: superpixels above their frame's threshold -> bool [N].

  With ``seed_fraction`` > 0 the threshold is a hysteresis, as in Canny's edge detector: a
  region above it is kept only when it holds a seed, a superpixel with at least
  ``seed_fraction`` times its frame's maximum saliency. Patches of background clutter and slow
  distractors pass a small actor's threshold, but they are rarely the frame's most salient
  spot; the actor is.
  """
  above = (saliency > threshold[graph.frame]) & (saliency > 0)
  if seed_fraction <= 0 or not above.any():
    return above
  seeds = above & (saliency >= seed_fraction * _frame_max(graph, saliency)[graph.frame])
  region = _regions(graph, above)
  return above & np.isin(region, region[seeds])


def keep_salient_regions(
  graph: SuperpixelGraph,
  labels: np.ndarray,
  saliency: np.ndarray,
  fraction: float,
  gap: float = 0.0,
) -> np.ndarray:
  """Drops foreground regions whose saliency mass is below ``fraction`` of their frame's best.

  A region is a connected component of ``labels`` in one frame; its mass is the sum of
  saliency times area. The colour term of Eq. (6) labels foreground anything of the actor's
  colours, such as a distractor that shares one of them; the actor is the region that holds
  the saliency. In a frame where no region has any saliency, all are kept.

  With ``gap`` > 0 a weak region within ``gap`` times the strongest region's radius
  sqrt(area / pi) of it is kept too: a part of the actor cut off by a thin occluder (a head
  behind a pole) or joined only loosely by the cut (a leg, the end of a board) lies next to the
  rest of it; a distractor that shares its colours need not.

  Returns:
    bool [N] labels with the weak regions set to background.
  """
  if fraction <= 0 or not labels.any():
    return labels
  region = _regions(graph, labels)
  mass = np.bincount(region, np.where(labels, saliency * graph.area, 0.0))
  frame_of = np.zeros(mass.shape[0], np.int64)
  frame_of[region] = graph.frame
  best = np.zeros(len(graph.offsets) - 1)
  np.maximum.at(best, frame_of[region[labels]], mass[region[labels]])
  keep = mass >= fraction * best[frame_of]
  if gap > 0:
    keep |= _near_strongest(graph, labels, region, mass >= best[frame_of], gap)
  return labels & keep[region]


def _near_strongest(
  graph: SuperpixelGraph, labels: np.ndarray, region: np.ndarray, strongest: np.ndarray, gap: float
) -> np.ndarray:
  """Whether each region [R] has a pixel within ``gap`` radii of its frame's strongest region."""
  near = np.zeros(strongest.shape[0], bool)
  for t in range(len(graph.offsets) - 1):
    ids = slice(graph.offsets[t], graph.offsets[t + 1])
    top = labels[ids] & strongest[region[ids]]
    if not top.any():
      continue
    local = graph.labels[t] - graph.offsets[t]
    mask = top[local].astype(np.uint8)
    radius = int(round(gap * np.sqrt(mask.sum() / np.pi)))
    if radius > 0:
      kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
      mask = cv2.dilate(mask, kernel)
    touched = np.bincount(local.ravel(), mask.ravel(), top.shape[0]) > 0
    near[region[ids][touched & labels[ids]]] = True
  return near


def saliency_probability(
  graph: SuperpixelGraph, saliency: np.ndarray, threshold: np.ndarray
) -> np.ndarray:
  """Foreground probability s / (s + threshold): 0.5 at the threshold, 0 at zero -> [N].

  Frames whose threshold is zero (no saliency at all) get probability 0: nothing stands out.
  """
  thr = threshold[graph.frame]
  return np.where(thr > 0, saliency / np.maximum(saliency + thr, 1e-12), 0.0)
