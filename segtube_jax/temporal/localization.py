"""Coarse-to-fine temporal localization: Eqs. (1)-(4) of the paper, jittable.

The window-level part (flags, specific labels and scores) and the frame-level part (the frame
score alpha_t and the frame labels l_t) are pure JAX with static shapes, so the alternating loop
can compile them once per padded size. Turning frame labels into segments is host-side NumPy.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# alpha_t is accumulated in fixed point so the O(H + T) difference-array sum is exact and
# deterministic (a float32 running sum over 10^5 frames would drift by ~1e-4 near gamma).
_FIXED_POINT_BITS = 20


def window_scores(proposal_logits: jax.Array, class_logits: jax.Array, valid: jax.Array | None = None) -> jax.Array:
  """Per-window class scores from the two networks, Eqs. (1) and (2).

  Args:
    proposal_logits: [H, 2] proposal-network logits (column 1: action, Eq. (1)).
    class_logits: [H, K + 1] classification-network logits (column 0: background).
    valid: optional bool [H]; padding windows get no score.

  Returns:
    [H, K] float32: ``v_spe`` in the column of ``l_spe`` for flagged windows whose specific label
    is an action, 0 elsewhere.
  """
  flagged = proposal_logits[:, 1] > proposal_logits[:, 0]  # l_fla, Eq. (1).
  probs = jax.nn.softmax(class_logits.astype(jnp.float32), axis=-1)
  l_spe = jnp.argmax(probs, axis=-1)  # Eq. (2).
  v_spe = jnp.max(probs, axis=-1)
  keep = flagged & (l_spe > 0)
  if valid is not None:
    keep &= valid
  num_classes = class_logits.shape[-1] - 1
  one_hot = jax.nn.one_hot(l_spe - 1, num_classes, dtype=jnp.float32)
  return one_hot * jnp.where(keep, v_spe, 0.0)[:, None]


def aggregate_frame_scores(starts: jax.Array, ends: jax.Array, scores: jax.Array, num_frames: int) -> jax.Array:
  """Frame score alpha_t for every class at once, Eq. (3).

  alpha[t, k] is the sum of ``scores[j, k]`` over the windows j that contain frame t divided by
  the number of windows that contain t (0 where none does). O(H + T) through difference arrays
  and a cumulative sum; never builds an [H, T] matrix. Jit-compatible: pad H with windows whose
  start equals their end (they contain no frame); ``num_frames`` must be static.

  Args:
    starts: int [H], first frame of each window.
    ends: int [H], end frame (exclusive) of each window.
    scores: float [H, K] in [0, 1] (``v_spe`` in the column of ``l_spe``); they are summed in
      fixed point with a resolution of 2^-20.
    num_frames: T.

  Returns:
    float32 [T, K].
  """
  scale = float(1 << _FIXED_POINT_BITS)
  starts = jnp.clip(starts.astype(jnp.int32), 0, num_frames)
  ends = jnp.clip(ends.astype(jnp.int32), 0, num_frames)
  ends = jnp.maximum(ends, starts)
  fixed = jnp.round(jnp.clip(scores.astype(jnp.float32), 0.0, 1.0) * scale).astype(jnp.int32)
  diff = jnp.zeros((num_frames + 1, scores.shape[1]), jnp.int32)
  diff = diff.at[starts].add(fixed).at[ends].add(-fixed)
  count = jnp.zeros((num_frames + 1,), jnp.int32).at[starts].add(1).at[ends].add(-1)
  total = jnp.cumsum(diff[:-1], axis=0)
  count = jnp.cumsum(count[:-1])
  alpha = total.astype(jnp.float32) / (scale * jnp.maximum(count, 1).astype(jnp.float32))[:, None]
  return jnp.where(count[:, None] > 0, alpha, 0.0)


def frame_labels(alpha: jax.Array, gamma: float = 0.6, video_class: jax.Array | int | None = None) -> jax.Array:
  """Frame labels l_t, Eq. (4): the class whose alpha_t exceeds gamma, else 0 (background).

  Args:
    alpha: [T, K] frame scores.
    gamma: threshold (the paper uses 0.6).
    video_class: the paper's single video class k' (1-based); None labels every frame with its
      best class, so a video may hold several classes.

  Returns:
    int32 [T]: class ids, 0 for background.
  """
  if video_class is None:
    best = jnp.argmax(alpha, axis=-1)
    return jnp.where(jnp.max(alpha, axis=-1) > gamma, best + 1, 0).astype(jnp.int32)
  k = jnp.asarray(video_class, jnp.int32)
  return jnp.where(alpha[:, k - 1] > gamma, k, 0).astype(jnp.int32)


def video_class(scores: jax.Array) -> jax.Array:
  """The paper's video class k': the action label with the highest mean v_spe over its windows.

  Args:
    scores: [H, K] from :func:`window_scores`.

  Returns:
    int32 scalar, 1-based class id (0 when no window is labelled with an action).
  """
  labelled = scores > 0
  counts = labelled.sum(axis=0)
  mean = scores.sum(axis=0) / jnp.maximum(counts, 1)
  return jnp.where(counts.sum() > 0, jnp.argmax(mean) + 1, 0).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Segment:
  """A temporal detection: class id (1-based), frames [start, end) and score (mean alpha)."""
  label: int
  start: int
  end: int
  score: float


def extract_segments(labels: np.ndarray, alpha: np.ndarray, min_length: int = 1) -> list[Segment]:
  """Runs of consecutive frames sharing a non-zero label become segments (f_s, f_e, class, score).

  Args:
    labels: int [T] frame labels from Eq. (4).
    alpha: [T, K] frame scores; a segment's score is the mean alpha of its class over the run.
    min_length: shorter runs are dropped.
  """
  labels = np.asarray(labels)
  alpha = np.asarray(alpha)
  if labels.size == 0:
    return []
  change = np.flatnonzero(np.diff(labels)) + 1
  bounds = np.concatenate([[0], change, [labels.size]])
  out = []
  for s, e in zip(bounds[:-1], bounds[1:]):
    k = int(labels[s])
    if k > 0 and e - s >= min_length:
      out.append(Segment(k, int(s), int(e), float(alpha[s:e, k - 1].mean())))
  return out


def temporal_iou(a: tuple[float, float], b: np.ndarray) -> np.ndarray:
  """tIoU of interval ``a`` with intervals ``b`` [N, 2]."""
  b = np.asarray(b, np.float64).reshape(-1, 2)
  inter = np.clip(np.minimum(a[1], b[:, 1]) - np.maximum(a[0], b[:, 0]), 0, None)
  union = (a[1] - a[0]) + (b[:, 1] - b[:, 0]) - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def temporal_nms(segments: Sequence[Segment], iou_threshold: float) -> list[Segment]:
  """Greedy per-class temporal non-maximum suppression (highest score first, stable)."""
  order = sorted(range(len(segments)), key=lambda i: -segments[i].score)
  kept: list[Segment] = []
  for i in order:
    s = segments[i]
    same = [(k.start, k.end) for k in kept if k.label == s.label]
    if not same or temporal_iou((s.start, s.end), np.array(same)).max() <= iou_threshold:
      kept.append(s)
  return sorted(kept, key=lambda s: (s.start, s.label))


def pad_windows(starts: np.ndarray, ends: np.ndarray, bucket: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Pads window arrays to a multiple of ``bucket`` with empty windows (start == end == 0).

  Returns (starts, ends, valid) so jitted code compiles once per bucket, not once per video.
  """
  h = int(starts.shape[0])
  size = max(bucket, -(-h // bucket) * bucket)
  pad = size - h
  valid = np.concatenate([np.ones(h, bool), np.zeros(pad, bool)])
  return (np.concatenate([starts, np.zeros(pad, starts.dtype)]),
          np.concatenate([ends, np.zeros(pad, ends.dtype)]), valid)
