"""Spatial action segmentation of a frame span: Eq. (5)-(7) with the initialisation of Sec. 2.3.

Pipeline for the frames f_s..f_e of one video, all at ``work_height`` rows:

1. DIS optical flow both ways between consecutive frames.
2. SLIC superpixels per frame; spatial neighbours share a boundary, temporal neighbours are
   linked along the forward flow.
3. Initial segmentation B_o from saliency (appearance x motion, adaptive threshold), or from
   previous masks when the alternating optimisation of Sec. 2.3 supplies them.
4. Rounds of: fit fg/bg colour and location GMMs to the current labelling; one graph cut of
   Eq. (5) over all superpixels of the span; stop when the labelling stops changing.
5. A pixel-level cut per frame near the superpixel boundary (optional), then upsampling.
"""

import dataclasses
from typing import Any, Protocol

import cv2
import ml_collections
import numpy as np

from segtube_jax.errors import SegmentationError
from segtube_jax.spatial import config as config_lib
from segtube_jax.spatial import flow as flow_lib
from segtube_jax.spatial import gmm as gmm_lib
from segtube_jax.spatial import graphcut
from segtube_jax.spatial import refine as refine_lib
from segtube_jax.spatial import saliency as saliency_lib
from segtube_jax.spatial import superpixels as sp_lib


class FrameReader(Protocol):
  """What :func:`segment_video` needs of a frame reader (see segtube_jax.data.video)."""

  num_frames: int
  height: int
  width: int

  def read(self, start: int = 0, stop: int | None = None, size: Any = None) -> np.ndarray:
    ...


@dataclasses.dataclass
class SpanResult:
  """Segmentation of one span at work resolution, with what produced it (for diagnostics).

  Attributes:
    masks: bool [T,h,w] final masks at work resolution.
    labels: bool [N] superpixel labels after the last cut.
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


def segment_span(frames: np.ndarray, config: ml_collections.ConfigDict,
                 init_masks: np.ndarray | None = None) -> SpanResult:
  """Segments uint8 frames [T,h,w,3] already at work resolution.

  Args:
    frames: The span's frames, uint8 RGB at work resolution.
    config: Segmentation config (see :func:`config.default_config`).
    init_masks: Optional bool [T,h,w] initial segmentation replacing the saliency B_o in the
      frames where it has any foreground.

  Returns:
    The SpanResult.
  """
  t, h, w = frames.shape[:3]
  forward, backward = flow_lib.dense_flows(frames, config.flow.preset)
  slic_size = flow_lib.work_size(h, w, config.slic_height)
  small = flow_lib.resize_frames(frames, slic_size)
  sp = config.superpixels
  labels = sp_lib.slic_labels(small, sp.n_segments, sp.compactness, sp.max_num_iter, (h, w))
  graph = sp_lib.build_graph(labels, sp_lib.lab_frames(frames), forward, config.saliency.border,
                             sp.min_temporal_overlap)

  sal_cfg = config.saliency
  appearance = saliency_lib.appearance_saliency(graph)
  motion, usable = saliency_lib.motion_saliency(graph, forward, backward, sal_cfg.motion_noise,
                                                sal_cfg.min_motion)
  saliency = saliency_lib.combined_saliency(appearance, motion, usable, graph)
  threshold = saliency_lib.adaptive_threshold(graph, saliency, sal_cfg.threshold_k,
                                              sal_cfg.min_threshold)
  current = saliency_lib.initial_labels(graph, saliency, threshold)
  if init_masks is not None:
    given = graph.frame_mean(init_masks.astype(np.float64)) > 0.5
    has_fg = np.bincount(graph.frame, given, t) > 0
    current = np.where(has_fg[graph.frame], given, current)
  initial = current.copy()
  p_sal = saliency_lib.saliency_probability(graph, saliency, threshold)

  edges, weights = graphcut.smoothness_edges(graph, config.lambda_spatial,
                                             config.lambda_temporal, config.sigma_scale)
  g_cfg = config.gmm
  col_settings = gmm_lib.GmmSettings(g_cfg.color_components, g_cfg.max_samples, g_cfg.max_iter,
                                     g_cfg.min_samples, reg_covar=1.0, seed=g_cfg.seed)
  loc_settings = gmm_lib.GmmSettings(g_cfg.location_components, g_cfg.max_samples,
                                     g_cfg.max_iter, g_cfg.min_samples, reg_covar=1e-3,
                                     seed=g_cfg.seed)
  color = graph.color.astype(np.float64)
  location = _location_features(graph, g_cfg.location_time_scale)
  rounds = 0
  col_models = (None, None)
  for rounds in range(1, config.max_rounds + 1):
    col_models = gmm_lib.fit_label_models(color, current, col_settings)
    loc_models = gmm_lib.fit_label_models(location, current, loc_settings)
    u_col = gmm_lib.label_posterior(*col_models, color)
    u_loc = gmm_lib.label_posterior(*loc_models, location)
    p_model = config.beta * u_col + (1.0 - config.beta) * u_loc
    p_fg = config.saliency_weight * p_sal + (1.0 - config.saliency_weight) * p_model
    d_fg, d_bg = graphcut.data_term(p_fg)
    new = graphcut.min_cut(d_fg, d_bg, edges, weights)
    changed = np.count_nonzero(new != current) / max(graph.num_nodes, 1)
    current = new
    if changed < config.min_change:
      break

  masks = current[graph.labels]
  if config.refine.enabled:
    masks = refine_lib.refine_masks(frames, masks, col_models, config.refine)
  return SpanResult(masks=masks, labels=current, initial=initial, saliency=saliency,
                    graph=graph, rounds=rounds)


def _check_span(span: tuple[int, int] | None, num_frames: int) -> tuple[int, int]:
  """Validates an inclusive span [f_s, f_e]; None means the whole video."""
  if num_frames < 1:
    raise SegmentationError("frames: expected at least one frame, got an empty video")
  if span is None:
    return 0, num_frames - 1
  start, end = (int(v) for v in span)
  if start > end:
    raise SegmentationError(f"span [{start}, {end}]: expected start <= end (empty span)")
  if start < 0 or end >= num_frames:
    raise SegmentationError(
        f"span [{start}, {end}]: expected 0 <= start <= end < {num_frames} (frames in the video)")
  return start, end


def _read_span(frames: np.ndarray | FrameReader, start: int, end: int) -> np.ndarray:
  """Frames start..end (inclusive) as uint8 [T,H,W,3], from an array or a reader."""
  if isinstance(frames, np.ndarray):
    clip = frames[start:end + 1]
  else:
    clip = np.asarray(frames.read(start, end + 1))
  if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
    raise SegmentationError(
        f"frames: expected uint8 [T,H,W,3] RGB, got {clip.dtype} {tuple(clip.shape)}")
  if clip.shape[0] != end - start + 1:
    raise SegmentationError(
        f"frames: expected {end - start + 1} frames for span [{start}, {end}], "
        f"the reader returned {clip.shape[0]}")
  return clip


def _num_frames_and_size(frames: np.ndarray | FrameReader) -> tuple[int, int, int]:
  if isinstance(frames, np.ndarray):
    if frames.ndim != 4 or frames.shape[-1] != 3:
      raise SegmentationError(
          f"frames: expected an array [T,H,W,3] (all frames of one size), got shape "
          f"{tuple(frames.shape)} dtype {frames.dtype}")
    return frames.shape[0], frames.shape[1], frames.shape[2]
  if isinstance(frames, (list, tuple)):
    raise SegmentationError("frames: expected an array [T,H,W,3] or a frame reader, got a list; "
                            "stack the frames (all of one size) first")
  return int(frames.num_frames), int(frames.height), int(frames.width)


def segment_video(frames: np.ndarray | FrameReader, span: tuple[int, int] | None = None,
                  previous_masks: np.ndarray | None = None,
                  config: ml_collections.ConfigDict | None = None) -> np.ndarray:
  """Segments the actor in frames f_s..f_e of a video, minimising Eq. (5).

  Args:
    frames: uint8 [T,H,W,3] RGB array, or a frame reader with ``num_frames``, ``height``,
      ``width`` and ``read(start, stop)`` (only the span is read).
    span: Inclusive frame range (f_s, f_e); None for the whole video.
    previous_masks: Optional bool [T,H,W] masks from the previous iteration of the alternating
      optimisation (Sec. 2.3); they replace the saliency initialisation in the span frames
      where they hold any foreground. None: unsupervised, saliency initialisation.
    config: Segmentation config; None for :func:`config.default_config`.

  Returns:
    bool [T,H,W] masks at full frame resolution; frames outside the span are all False.

  Raises:
    SegmentationError: on an empty or out-of-range span, frames that are not uint8 RGB of one
      size, or previous masks of the wrong shape.
  """
  config = config_lib.default_config() if config is None else config
  config_lib.validate_config(config)
  num, height, width = _num_frames_and_size(frames)
  start, end = _check_span(span, num)
  if previous_masks is not None:
    previous_masks = np.asarray(previous_masks)
    if previous_masks.shape != (num, height, width):
      raise SegmentationError(
          f"previous_masks: expected shape {(num, height, width)} (one mask per frame), got "
          f"{tuple(previous_masks.shape)}")
  clip = _read_span(frames, start, end)
  if clip.shape[1:3] != (height, width):
    raise SegmentationError(
        f"frames: expected {height}x{width} frames, got {clip.shape[1]}x{clip.shape[2]}")
  size = flow_lib.work_size(height, width, config.work_height)
  small = flow_lib.resize_frames(clip, size)
  init = None
  if previous_masks is not None:
    init = flow_lib.resize_labels(previous_masks[start:end + 1].astype(np.uint8), size) > 0
  result = segment_span(small, config, init)
  out = np.zeros((num, height, width), bool)
  out[start:end + 1] = upsample_masks(result.masks, (height, width))
  return out


def upsample_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Bilinear upsampling of bool masks [T,h,w] to ``size`` = (rows, cols), thresholded at 0.5.

  Interpolating then thresholding gives smooth diagonal boundaries instead of the staircase a
  nearest-neighbour upsampling leaves.
  """
  rows, cols = size
  if masks.shape[1:3] == (rows, cols):
    return masks.astype(bool)
  return np.stack([cv2.resize(m.astype(np.float32), (cols, rows),
                              interpolation=cv2.INTER_LINEAR) > 0.5 for m in masks])
