"""Coarse-to-fine temporal localization of one video with trained networks (Sec. 2.1, Eqs. 1-4).

Coarse: every window of both scales goes through the proposal network (flag l_fla, Eq. 1) and
the classification network (l_spe, v_spe, Eq. 2), as sequences of ``config.clips.seq_len``
consecutive windows of one scale, exactly as in training. Fine: frame scores alpha_t (Eq. 3)
and frame labels (Eq. 4, gamma), then runs of labelled frames become segments.

How a segment gets its class (``config.detector.class_assignment``):
  'paper'   the paper's rule, Eqs. (3)-(4): one class k' per video, the action label with the
            highest mean v_spe over the windows labelled with it (``temporal.video_class``);
            alpha_t(f_t | k') is Eq. (3) over the windows labelled k' (the sum of their v_spe
            over the windows containing frame t, divided by the number of ALL windows containing
            t), and runs of alpha_t(f_t | k') > gamma are instances of k', scored by their mean
            alpha_t(f_t | k'). Windows of other classes add nothing. No action window: no segment.
            For videos of one action (the paper's ActSeg / mixed datasets).
  'segment' (default) a class-agnostic alpha_t (Eq. 3 summing the v_spe of every flagged action
            window, whatever its class) and runs of alpha_t > gamma, each run taking the class
            with the highest summed score inside it: a video may hold several classes (THUMOS14).
  'frame'   Eq. (3) per class and Eq. (4) picks each frame's best class.
The former 'video' mode (class-agnostic runs all stamped k', so frames covered only by another
class's windows became k' detections) is gone: 'paper' replaces it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from segtube_jax import clips as clips_lib
from segtube_jax import models, schema, temporal
from segtube_jax.data import video as video_lib
from segtube_jax.errors import CheckpointError
from segtube_jax.training import checkpointing, steps
from segtube_jax.types import DetectedSegment

CLASS_ASSIGNMENTS = schema.defaults.CLASS_ASSIGNMENTS
_WINDOW_BUCKET = 256  # Windows are padded to a multiple of this: few compiled shapes.


@dataclasses.dataclass
class Localization:
  """What the temporal stage found in one video.

  Attributes:
    alpha: float32 [T, K] per-class frame scores (Eq. 3).
    frame_score: float32 [T] the score thresholded by Eq. (4): alpha_t(f_t | k') in 'paper'
      mode, the best class's alpha_t in 'frame' mode, the sum over the classes in 'segment' mode.
    segments: the detections, frames end-exclusive.
    num_windows: windows scored.
    flagged: windows flagged as actions by the proposal network.
    video_class: the paper's video class k' (1-based; 0 when no flagged window has an action
      label), computed in every mode; only 'paper' mode uses it.
  """

  alpha: np.ndarray
  frame_score: np.ndarray
  segments: list[DetectedSegment]
  num_windows: int
  flagged: int
  video_class: int = 0


def prepare_frames(frames: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Video frames -> the stored training resolution (``config.dataset.frame_size``)."""
  size = tuple(config.dataset.frame_size) if config.dataset.frame_size else None
  return video_lib.resize_frames(frames, size)


def clip_frames(
  frames: np.ndarray, masks: np.ndarray | None, config: ml_collections.ConfigDict
) -> np.ndarray:
  """Saliency-aware, resized, centre-cropped frames uint8 [T, h, w, 3], as the eval pipeline makes them.

  Args:
    frames: uint8 [T, H, W, 3] at ``config.dataset.frame_size``.
    masks: float or bool [T, H, W] (1 = actor, frames without a mask all ones) or None.
    config: the experiment config.
  """
  cfg = config.clips
  _, ch, cw = config.model.clip_shape
  resize = tuple(cfg.resize) if cfg.resize else (ch, cw)
  return clips_lib.saliency_aware_crops(
    frames, masks, cfg.saliency_mode, cfg.background_weight, resize, (ch, cw)
  )


def window_clips(
  frames: np.ndarray,
  masks: np.ndarray | None,
  starts: np.ndarray,
  ends: np.ndarray,
  config: ml_collections.ConfigDict,
) -> np.ndarray:
  """Clips uint8 [H, 16, h, w, 3] of the windows (end exclusive); see :func:`clip_frames`."""
  return clips_lib.gather_clips(
    clip_frames(frames, masks, config), starts, ends, config.model.clip_shape[0]
  )


class Localizer:
  """Trained networks plus Eqs. (1)-(4) for whole videos.

  Args:
    config: the experiment config (``model``, ``clips``, ``detector``).
    params: the networks' parameters (``steps.SegtubeNetworks``).
    classes: class names, in label order (label k + 1 is ``classes[k]``).
  """

  def __init__(self, config: ml_collections.ConfigDict, params: Any, classes: list[str]):
    schema.validate_detector(config)
    self.config, self.params, self.classes = config, params, list(classes)
    self.model = steps.SegtubeNetworks(config.model, len(classes))
    dtype = models.DTYPES[config.model.dtype]
    self._predict = steps.make_predict_fn(self.model, dtype)
    # gamma is an argument, not a constant: tuning it (evaluation/tune_gamma.py) reuses one compile.
    self._frame_stage = jax.jit(
      functools.partial(_frame_stage, mode=config.detector.class_assignment),
      static_argnames=("num_frames",),
    )

  def window_logits(
    self, frames: np.ndarray, masks: np.ndarray | None
  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(starts [H], ends [H], proposal logits [H, 2], class logits [H, K+1]) for every window."""
    cfg = self.config.clips
    windows = clips_lib.enumerate_windows(len(frames), tuple(cfg.window_lengths), cfg.overlap)
    s = cfg.seq_len
    order = []  # Window indices laid out as sequences of s consecutive windows of one scale.
    for scale in range(len(cfg.window_lengths)):
      idx = windows.of_scale(scale)
      for first in range(0, len(idx), s):
        part = idx[first : first + s]
        order.append(np.concatenate([part, np.full(s - len(part), -1)]))
    if not order:
      k = len(self.classes) + 1
      return (
        windows.starts,
        windows.ends,
        np.zeros((0, 2), np.float32),
        np.zeros((0, k), np.float32),
      )
    order = np.stack(order)
    prepared = clip_frames(frames, masks, self.config)
    clip_len = self.config.model.clip_shape[0]
    batch = self.config.detector.batch_size
    pro, cla = [], []
    # Clips are assembled one batch of sequences at a time: memory holds the prepared frames
    # and one batch, not every window's 16 frames.
    for i in range(0, len(order), batch):
      part = order[i : i + batch]
      flat = part.reshape(-1)
      clips = np.zeros((flat.size, clip_len) + prepared.shape[1:], np.uint8)
      real = flat >= 0
      clips[real] = clips_lib.gather_clips(
        prepared, windows.starts[flat[real]], windows.ends[flat[real]], clip_len
      )
      clips = clips.reshape(part.shape + clips.shape[1:])
      pad = batch - len(part)
      if pad:
        clips = np.concatenate([clips, np.zeros((pad,) + clips.shape[1:], clips.dtype)])
      p, c = jax.device_get(self._predict(self.params, clips))
      pro.append(p[: batch - pad])
      cla.append(c[: batch - pad])
    flat = order.reshape(-1)
    real = flat >= 0
    pro = np.concatenate(pro).reshape(-1, 2)[real]
    cla = np.concatenate(cla).reshape(-1, len(self.classes) + 1)[real]
    index = flat[real]
    out_p, out_c = np.empty_like(pro), np.empty_like(cla)
    out_p[index], out_c[index] = pro, cla
    return windows.starts, windows.ends, out_p, out_c

  def localize(
    self, frames: np.ndarray, masks: np.ndarray | None = None, fps: float = 25.0
  ) -> Localization:
    """Detections in one video.

    Args:
      frames: uint8 [T, H, W, 3] at ``config.dataset.frame_size`` (see :func:`prepare_frames`).
      masks: optional actor masks [T, H, W] for saliency-aware clips (all ones where unknown).
      fps: frame rate, for the detections' times.
    """
    starts, ends, pro, cla = self.window_logits(frames, masks)
    return self.localize_windows(starts, ends, pro, cla, len(frames), fps)

  def localize_windows(
    self,
    starts: np.ndarray,
    ends: np.ndarray,
    pro: np.ndarray,
    cla: np.ndarray,
    num_frames: int,
    fps: float = 25.0,
    gamma: float | None = None,
  ) -> Localization:
    """Eqs. (1)-(4) and the segments from the windows' logits (see :meth:`window_logits`).

    Args:
      starts, ends: int [H] window frames (end exclusive).
      pro, cla: [H, 2] proposal and [H, K+1] classification logits.
      num_frames: the video's length.
      fps: frame rate, for the detections' times.
      gamma: Eq. (4)'s threshold; None: ``config.detector.gamma``.
    """
    k = len(self.classes)
    if len(starts) == 0:
      return Localization(
        np.zeros((num_frames, k), np.float32), np.zeros(num_frames, np.float32), [], 0, 0
      )
    gamma = self.config.detector.gamma if gamma is None else gamma
    starts_p, ends_p, valid = temporal.pad_windows(starts, ends, bucket=_WINDOW_BUCKET)
    pad = len(starts_p) - len(starts)
    pro_p = np.concatenate([pro, np.zeros((pad, 2), pro.dtype)])
    cla_p = np.concatenate([cla, np.zeros((pad, k + 1), cla.dtype)])
    alpha, frame_score, labels, video_class = jax.device_get(
      self._frame_stage(
        starts_p, ends_p, pro_p, cla_p, valid, np.float32(gamma), num_frames=num_frames
      )
    )
    segments = self._segments(np.asarray(labels), np.asarray(alpha), np.asarray(frame_score), fps)
    flagged = int((pro[:, 1] > pro[:, 0]).sum())
    return Localization(
      np.asarray(alpha), np.asarray(frame_score), segments, len(starts), flagged, int(video_class)
    )

  def _segments(
    self, labels: np.ndarray, alpha: np.ndarray, frame_score: np.ndarray, fps: float
  ) -> list[DetectedSegment]:
    d = self.config.detector
    out = []
    for seg in temporal.extract_segments(labels, alpha, min_length=d.min_segment_frames):
      if d.class_assignment == "segment":
        # The run's class: the highest summed score inside it, the paper's video-level rule
        # applied per run. Its score: the run's mean alpha_t times the share of that class.
        totals = alpha[seg.start : seg.end].sum(axis=0)
        label = int(np.argmax(totals))
        share = float(totals[label] / max(totals.sum(), 1e-12))
        score = float(frame_score[seg.start : seg.end].mean()) * share
      else:
        # 'paper': every run is of k', scored by its mean alpha_t(f_t | k'); 'frame': each run's
        # class and its mean alpha of that class.
        label, score = seg.label - 1, seg.score
      out.append(
        DetectedSegment(self.classes[label], label, int(seg.start), int(seg.end), score, fps)
      )
    if d.nms_iou > 0:
      out = _nms(out, d.nms_iou)
    return out


def _frame_stage(starts, ends, pro, cla, valid, gamma, *, num_frames: int, mode: str):
  """Window scores (Eqs. 1-2), alpha_t (Eq. 3) and frame labels (Eq. 4): one compiled function.

  Returns (alpha [T, K], frame_score [T], labels int32 [T], k' int32 scalar). gamma is traced, so
  one compile serves every gamma.
  """
  scores = temporal.window_scores(pro, cla, valid)
  alpha = temporal.aggregate_frame_scores(starts, ends, scores, num_frames)
  k = temporal.video_class(scores)
  if mode == "frame":
    labels = temporal.frame_labels(alpha, gamma)
    frame_score = alpha.max(axis=-1)
  elif mode == "paper":
    # Eq. (3) conditioned on k': column k'-1 of alpha sums the v_spe of the windows labelled k'
    # over the windows containing t and divides by the number of all windows containing t.
    frame_score = jnp.where(k > 0, jnp.take(alpha, jnp.maximum(k, 1) - 1, axis=1), 0.0)
    labels = temporal.frame_labels(alpha, gamma, video_class=k)  # Eq. (4): k' or 0.
  else:
    # Each window's score sits in one column: the row sum is Eq. (3) over every flagged window.
    frame_score = alpha.sum(axis=-1)
    labels = (frame_score > gamma).astype(jnp.int32)
  return alpha, frame_score, labels, k


def _nms(segments: list[DetectedSegment], iou: float) -> list[DetectedSegment]:
  """Greedy temporal NMS per class (``temporal.temporal_nms``) over detected segments."""
  keyed = {
    temporal.Segment(s.class_index, s.start_frame, s.end_frame, s.score): s for s in segments
  }
  return [keyed[k] for k in temporal.temporal_nms(list(keyed), iou)]


def load_localizer(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, classes: list[str]
) -> tuple[Localizer, int]:
  """The networks of the latest checkpoint in ``workdir`` with Eqs. (1)-(4); returns (localizer, step)."""
  try:
    step, params = checkpointing.latest_params(workdir)
  except (FileNotFoundError, CheckpointError) as e:
    # latest_params words its errors for config.init_from; here the workdir is what was asked for.
    reason = str(e).removeprefix("config.init_from: ")
    raise CheckpointError(
      f"{workdir}: no usable checkpoint to evaluate ({reason}); train first: "
      f"python train.py --config ... --workdir {workdir}"
    ) from None
  return Localizer(config, params, classes), step
