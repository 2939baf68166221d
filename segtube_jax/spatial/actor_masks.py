"""Spatial action segmentation of a frame span: Eq. (5)-(7) with the initialisation of Sec. 2.3.

Pipeline for the frames f_s..f_e of one video, given at ``work_height`` rows:

1. DIS optical flow both ways between consecutive frames (at work_height, its patch search
   down to pyramid level ``flow.finest_scale``; then averaged down to ``graph_height``, where
   steps 2-4 run). From it, each frame's exposure and white balance relative to the span
   (spatial/exposure.py), divided out of the frames every later step sees.
2. SLIC superpixels per frame; spatial neighbours share a boundary, temporal neighbours are
   linked along the forward flow.
3. Initial segmentation B_o from saliency (appearance x motion x the chance that the background's
   motion does not explain the superpixel's texture, where that texture is joined to the
   border, spatial/background.py; per-frame Otsu threshold with hysteresis), or from previous
   masks when the alternating optimisation of Sec. 2.3 supplies them.
4. Rounds of: fit fg/bg colour GMMs to pixels of the current labelling (over the whole span;
   spatial/gmm.py) and fg/bg location densities per frame (spatial/location.py); one graph cut
   of Eq. (5) over all superpixels of the span; stop when the labelling stops changing. Then,
   per frame, foreground regions with little saliency next to the frame's strongest one are
   dropped.
5. A pixel-level cut per frame near the superpixel boundary (optional), then upsampling.
"""

import dataclasses

import ml_collections
import numpy as np
import threadpoolctl

from segtube_jax.spatial import background as background_lib
from segtube_jax.spatial import exposure as exposure_lib
from segtube_jax.spatial import flow as flow_lib
from segtube_jax.spatial import gmm as gmm_lib
from segtube_jax.spatial import graphcut, parallel
from segtube_jax.spatial import location as location_lib
from segtube_jax.spatial import refine as refine_lib
from segtube_jax.spatial import saliency as saliency_lib
from segtube_jax.spatial import superpixels as sp_lib


@dataclasses.dataclass
class SpanResult:
  """Segmentation of one span at work resolution, with what produced it (for diagnostics).

  Attributes:
    masks: bool [T,h,w] final masks at work resolution.
    labels: bool [N] superpixel labels after the last cut and the region selection.
    initial: bool [N] initial labelling B_o.
    saliency: float [N] combined saliency.
    graph: the superpixel graph.
    rounds: graph cuts performed.
  """

  masks: np.ndarray
  labels: np.ndarray
  initial: np.ndarray
  saliency: np.ndarray
  graph: sp_lib.SuperpixelGraph
  rounds: int


def label_masks(
  graph: sp_lib.SuperpixelGraph, labels: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
  """Bool masks [T,rows,cols] of superpixel ``labels`` [N], nearest-resized to ``size``."""
  return flow_lib.resize_labels(labels[graph.labels].astype(np.uint8), size) > 0


def _location_features(graph: sp_lib.SuperpixelGraph, time_scale: float) -> np.ndarray:
  """Location of each superpixel: normalised centroid (x, y), plus scaled time when > 0.

  A location GMM pooled over the span blurs a moving actor's path into a wide blob; with time
  as a third coordinate the model follows the actor's trajectory through the span.
  """
  loc = graph.centroid.astype(np.float64)
  t = len(graph.offsets) - 1
  if time_scale <= 0 or t < 2:
    return loc
  return np.concatenate([loc, (time_scale * graph.frame / (t - 1))[:, None]], axis=1)


def segment_span(
  frames: np.ndarray, config: ml_collections.ConfigDict, init_masks: np.ndarray | None = None
) -> SpanResult:
  """Segments uint8 frames [T,h,w,3] already at work resolution.

  Args:
    frames: The span's frames, uint8 RGB at work resolution.
    config: Segmentation config (see :func:`segtube_jax.schema.segmentation_config`).
    init_masks: Optional bool [T,h,w] initial segmentation replacing the saliency B_o in the
      frames where it has any foreground.

  Returns:
    The SpanResult.
  """
  # Every matrix here is tiny (3x3 covariances): multithreaded BLAS only adds sync overhead
  # (40x slower GMM fits measured on 2 shared cores). Parallelism is across videos instead.
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    return _segment_span(frames, config, init_masks)


@dataclasses.dataclass
class _Saliency:
  """The graph of a span and its saliency: everything B_o is made of."""

  graph: sp_lib.SuperpixelGraph
  saliency: np.ndarray  # [N]
  threshold: np.ndarray  # [T]
  initial: np.ndarray  # bool [N], B_o
  frames: np.ndarray  # uint8 [T,h,w,3], the frames at the graph's resolution
  work_frames: np.ndarray  # uint8 [T,H,W,3], the span's frames, exposure compensated
  velocity: np.ndarray | None  # [N,2] mean flow per superpixel; None: no usable motion cue


def _saliency(frames: np.ndarray, config: ml_collections.ConfigDict) -> _Saliency:
  """Flow, SLIC graph, appearance x motion saliency and B_o of frames at work resolution."""
  h, w = frames.shape[1:3]
  gsize = flow_lib.work_size(h, w, config.graph_height)
  gframes = flow_lib.resize_frames(frames, gsize)
  # Flow at work resolution, then averaged down: DIS on the smaller frames loses the thin,
  # slow parts of an actor (measured -18 points J on blackswan).
  threads = parallel.frame_threads(config.threads)
  forward, backward = flow_lib.dense_flows(
    frames, config.flow.preset, gsize, config.flow.finest_scale, threads
  )
  if config.compensate_exposure:
    gains = exposure_lib.exposure_gains(gframes, forward, backward, threads)
    frames = exposure_lib.compensate(frames, gains)
    gframes = exposure_lib.compensate(gframes, gains)
  sp = config.superpixels
  labels = sp_lib.slic_labels(
    gframes,
    sp.n_segments,
    sp.compactness,
    sp.max_num_iter,
    gsize,
    threads,
  )
  graph = sp_lib.build_graph(
    labels, sp_lib.lab_frames(gframes), forward, config.saliency.border, sp.min_temporal_overlap
  )
  sal_cfg = config.saliency
  appearance = saliency_lib.appearance_saliency(graph)
  flow = saliency_lib.superpixel_flow(graph, forward, backward)
  motion, usable = saliency_lib.motion_saliency(
    graph, flow, sal_cfg.motion_noise * gsize[0], sal_cfg.min_motion * gsize[0]
  )
  saliency = saliency_lib.combined_saliency(appearance, motion, usable)
  if usable and sal_cfg.background_consistency:
    residual = saliency_lib.motion_residual(graph, flow, sal_cfg.motion_noise * gsize[0])
    consistency, _ = background_lib.background_consistency(
      graph,
      flow,
      frames,
      saliency_lib.motion_scale(graph, residual),
      sal_cfg.consistency_max_step,
      threads,
    )
    saliency = saliency * (1.0 - background_lib.border_connected(graph, consistency))
  threshold = saliency_lib.adaptive_threshold(
    graph,
    saliency,
    sal_cfg.threshold_k,
    sal_cfg.min_threshold,
    sal_cfg.span_threshold,
    sal_cfg.threshold_method,
  )
  initial = saliency_lib.initial_labels(graph, saliency, threshold, sal_cfg.seed_fraction)
  # Without a usable motion cue the flow differences are noise, not motion boundaries.
  velocity = flow.velocity() if usable else None
  return _Saliency(graph, saliency, threshold, initial, gframes, frames, velocity)


def initial_segmentation(frames: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """The initial segmentation B_o of Sec. 2.3 (saliency only, no graph cut) -> bool [T,h,w].

  What the saliency-aware clips of Sec. 2.1 are made from. It costs the flow, SLIC and the
  saliency, about half of :func:`segment_span`.

  Args:
    frames: uint8 RGB frames [T,h,w,3] at work resolution.
    config: Segmentation config.
  """
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    cues = _saliency(frames, config)
  return label_masks(cues.graph, cues.initial, frames.shape[1:3])


def _segment_span(
  frames: np.ndarray, config: ml_collections.ConfigDict, init_masks: np.ndarray | None
) -> SpanResult:
  """:func:`segment_span` with BLAS threads already limited."""
  h, w = frames.shape[1:3]
  cues = _saliency(frames, config)
  graph, saliency, threshold, initial = cues.graph, cues.saliency, cues.threshold, cues.initial
  if init_masks is not None:
    gsize = graph.labels.shape[1:]
    given = graph.frame_mean(flow_lib.resize_labels(init_masks.astype(np.uint8), gsize)) > 0.5
    has_fg = np.bincount(graph.frame, given, len(graph.offsets) - 1) > 0
    initial = np.where(has_fg[graph.frame], given, initial)
  p_sal = saliency_lib.saliency_probability(graph, saliency, threshold)

  labels_fg, col_models, rounds = _alternate(
    graph, initial, p_sal, config, cues.frames, cues.velocity
  )
  # After the rounds, not inside them: dropping regions between rounds gained nothing.
  labels_fg = saliency_lib.keep_salient_regions(
    graph, labels_fg, saliency, config.saliency.region_fraction, config.saliency.region_gap
  )
  masks = label_masks(graph, labels_fg, (h, w))
  if config.refine.enabled:
    masks = refine_lib.refine_masks(
      cues.work_frames, masks, col_models, config.refine, parallel.frame_threads(config.threads)
    )
  return SpanResult(
    masks=masks, labels=labels_fg, initial=initial, saliency=saliency, graph=graph, rounds=rounds
  )


def _foreground_prior(graph: sp_lib.SuperpixelGraph, initial: np.ndarray, power: float) -> float:
  """Tempered foreground prior: B_o's area share, its odds raised to ``power``.

  Fixed over the rounds: a prior re-estimated from every round's labelling feeds back on
  itself and shrinks the foreground to nothing.
  """
  if power <= 0:
    return 0.5
  frac = float(np.clip(np.sum(graph.area[initial]) / np.sum(graph.area), 1e-3, 1 - 1e-3))
  odds = (frac / (1.0 - frac)) ** power
  return odds / (1.0 + odds)


def _gmm_settings(
  g_cfg: ml_collections.ConfigDict,
) -> tuple[gmm_lib.GmmSettings, gmm_lib.GmmSettings, gmm_lib.GmmSettings]:
  """Settings of the fg colour, bg colour and location GMMs from ``config.gmm``."""
  col_fg = gmm_lib.GmmSettings(
    g_cfg.color_components,
    g_cfg.max_samples,
    g_cfg.max_iter,
    g_cfg.min_samples,
    reg_covar=1.0,
    seed=g_cfg.seed,
  )
  col_bg = dataclasses.replace(col_fg, components=g_cfg.bg_color_components)
  loc = gmm_lib.GmmSettings(
    g_cfg.location_components,
    g_cfg.max_samples,
    g_cfg.max_iter,
    g_cfg.min_samples,
    reg_covar=1e-3,
    seed=g_cfg.seed,
  )
  return col_fg, col_bg, loc


def _alternate(
  graph: sp_lib.SuperpixelGraph,
  initial: np.ndarray,
  p_sal: np.ndarray,
  config: ml_collections.ConfigDict,
  graph_frames: np.ndarray,
  velocity: np.ndarray | None,
) -> tuple[np.ndarray, tuple[gmm_lib.Model, gmm_lib.Model], int]:
  """Rounds of GMM estimation and one graph cut of Eq. (5) each, from labelling ``initial``.

  The data term is Eq. (6) with U as label posteriors, mixed with the saliency probability
  ``p_sal`` (weight ``config.saliency_weight``) to keep the labelling anchored. The colour
  models are fitted to pixels of ``graph_frames`` (uint8 [T,h,w,3] at the graph's resolution)
  or to superpixel mean colours (``config.gmm.color_features``). ``velocity`` [N,2] (None: no
  usable motion) makes the spatial smoothness sensitive to motion boundaries as well.

  Returns:
    (fg labels bool [N], (fg, bg) colour GMMs of the last round, rounds run).
  """
  g_cfg = config.gmm
  col_fg, col_bg, loc = _gmm_settings(g_cfg)
  color = graph.color.astype(np.float64)
  by_pixel = g_cfg.color_features == "pixels"
  if by_pixel:
    segment = graph.labels.reshape(-1)
    pixels = graph_frames.reshape(-1, 3)
    quantized = gmm_lib.quantized_colors(pixels)
  location = _location_features(graph, g_cfg.location_time_scale)
  prior = _foreground_prior(graph, initial, g_cfg.prior_power)
  edges, weights = graphcut.smoothness_edges(
    graph,
    config.lambda_spatial,
    config.lambda_temporal,
    config.sigma_scale,
    velocity,
    config.motion_contrast,
  )
  current = initial
  col_models = loc_models = (None, None)
  rounds = 0
  for rounds in range(1, config.max_rounds + 1):
    if by_pixel:
      col_models = gmm_lib.fit_pixel_models(
        pixels, graph.labels, current, col_fg, col_bg, col_models
      )
      u_col = gmm_lib.pixel_color_posterior(col_models, quantized, segment, graph.area, prior)
    else:
      col_models = (
        gmm_lib.fit_gmm(color[current], col_fg, col_models[0]),
        gmm_lib.fit_gmm(color[~current], col_bg, col_models[1]),
      )
      u_col = gmm_lib.label_posterior(*col_models, color, prior)
    if g_cfg.location_model == "frame":
      u_loc = location_lib.frame_location_posterior(
        graph, current, g_cfg.location_bandwidth, g_cfg.location_window
      )
    else:
      loc_models = gmm_lib.fit_label_models(location, current, loc, loc_models)
      u_loc = gmm_lib.label_posterior(*loc_models, location, prior)
    p_model = config.beta * u_col + (1.0 - config.beta) * u_loc
    p_fg = config.saliency_weight * p_sal + (1.0 - config.saliency_weight) * p_model
    new = graphcut.min_cut(*graphcut.data_term(p_fg), edges, weights)
    changed = np.count_nonzero(new != current) / max(graph.num_nodes, 1)
    current = new
    if changed < config.min_change:
      break
  return current, col_models, rounds
