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

from segtube_jax.errors import ConfigError

# Window scores are rounded to multiples of 2^-20 before they are summed: block carries are then exact
# integers, and float32 sums of such values are exact while they stay below 2^(24 - 20) = 16.
_FIXED_POINT_BITS = 20
# Frames per block of the blocked prefix sum in aggregate_frame_scores (16 ran fastest of 8 to 48 on CPU).
_BLOCK = 16


def flag_labels(proposal_logits: jax.Array) -> jax.Array:
  """Flag label l_fla, Eq. (1): 1 iff p_pro(1) > p_pro(0), else 0.

  Args:
    proposal_logits: [..., 2] logits (column 1: action, column 0: no action). Softmax is
      monotonic, so comparing logits equals comparing the probabilities p_pro.

  Returns:
    int32 array [...] of 0/1 flags.
  """
  if proposal_logits.shape[-1] != 2:
    raise ConfigError(f"proposal logits must have 2 columns, got shape {proposal_logits.shape}")
  return (proposal_logits[..., 1] > proposal_logits[..., 0]).astype(jnp.int32)


def specific_labels(class_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Specific label and score (l_spe, v_spe), Eq. (2), from [..., K+1] class logits.

  p_cla = softmax(logits); l_spe = argmax_k p_cla(k) (0 is background) and
  v_spe = max_k p_cla(k) in [0, 1].

  Returns:
    (l_spe int32 [...], v_spe float32 [...]).
  """
  if class_logits.shape[-1] < 2:
    raise ConfigError(f"class logits need K+1 >= 2 columns, got shape {class_logits.shape}")
  probs = jax.nn.softmax(class_logits.astype(jnp.float32), axis=-1)
  return jnp.argmax(probs, axis=-1).astype(jnp.int32), jnp.max(probs, axis=-1)


def window_scores(
  proposal_logits: jax.Array, class_logits: jax.Array, valid: jax.Array | None = None
) -> jax.Array:
  """Per-window class scores from the two networks, Eqs. (1) and (2).

  Args:
    proposal_logits: [H, 2] proposal-network logits (column 1: action, Eq. (1)).
    class_logits: [H, K + 1] classification-network logits (column 0: background).
    valid: optional bool [H]; padding windows get no score.

  Returns:
    [H, K] float32: ``v_spe`` in the column of ``l_spe`` for flagged windows whose specific label
    is an action, 0 elsewhere.
  """
  flagged = flag_labels(proposal_logits) == 1
  l_spe, v_spe = specific_labels(class_logits)
  keep = flagged & (l_spe > 0)
  if valid is not None:
    keep &= valid
  num_classes = class_logits.shape[-1] - 1
  one_hot = jax.nn.one_hot(l_spe - 1, num_classes, dtype=jnp.float32)
  return one_hot * jnp.where(keep, v_spe, 0.0)[:, None]


def aggregate_frame_scores(
  starts: jax.Array, ends: jax.Array, scores: jax.Array, num_frames: int
) -> jax.Array:
  """Frame score alpha_t for every class at once, Eq. (3).

  alpha[t, k] is the sum of ``scores[j, k]`` over the windows j that contain frame t divided by
  the number of windows that contain t (0 where none does). The denominator counts every window
  with ``start < end`` containing t, whatever its score: windows not flagged by Eq. (1), windows
  labelled background and windows of other classes count too, as Eq. (3)'s |{j | f_t in h_j}|.
  With :func:`window_scores`, column k' - 1 is therefore exactly the paper's alpha_t(f_t | k'):
  the sum of v_spe over the flagged windows labelled k' containing f_t, over the number of all
  windows containing f_t. Padding windows must be empty (start == end, as :func:`pad_windows`
  makes them): a zero score alone does not keep a window out of the count.

  O(H + T) through difference arrays and a cumulative sum; never builds an [H, T] matrix.
  Jit-compatible: pad H with windows whose start equals their end (they contain no frame);
  ``num_frames`` must be static.

  The cumulative sum is blocked, as XLA:CPU runs ``jnp.cumsum`` over 10^5 frames slowly (a
  reduce-window): frames are grouped in blocks of ``_BLOCK``; the total entering each block (its
  carry) is an int32 cumulative sum over the blocks of the windows starting / ending before it; the
  window differences are scattered straight into a [block, class, frame in block] array that holds
  each block's carry on its first frame, and its prefix sums along the last axis are one float32
  matmul with a triangular matrix. The window count rides along as an extra class column.

  Accuracy: scores are first rounded to multiples of 2^-20 (at most 2^-21 off). The carries are
  exact (while fewer than 2048 windows cover a frame). Within a block, float32 sums of multiples of
  2^-20 are exact while below 16: while, in each class, the carry plus the scores of the windows
  starting in the block, and the scores of those ending in it, stay below 16 -- always so with the
  default windows (16 and 32 frames at 75% overlap: 8 cover a frame, 6 start and 6 end in a block).
  alpha is then the mean of the rounded scores up to the rounding of the final division. Beyond
  that, the extra error is float32 rounding within one block; it does not accumulate along the video.

  Args:
    starts: int [H], first frame of each window.
    ends: int [H], end frame (exclusive) of each window.
    scores: float [H, K] in [0, 1] (``v_spe`` in the column of ``l_spe``); values outside are
      clipped.
    num_frames: T.

  Returns:
    float32 [T, K].
  """
  num_classes = scores.shape[1]
  block = _BLOCK
  num_blocks = -(-num_frames // block)
  starts, ends, fixed_int, values = _fixed_point_windows(starts, ends, scores, num_frames, block)
  carry = _block_carries(starts, ends, fixed_int, num_blocks, block)
  total = _block_running_totals(carry, starts, ends, values, block)
  count = total[:, num_classes:, :]
  alpha = jnp.where(count > 0, total[:, :num_classes, :] / jnp.maximum(count, 1.0), 0.0)
  return alpha.transpose(0, 2, 1).reshape(num_blocks * block, num_classes)[:num_frames]


def _fixed_point_windows(
  starts: jax.Array, ends: jax.Array, scores: jax.Array, num_frames: int, block: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Clipped bounds (empty windows moved past the last block), fixed-point scores, count column."""
  num_windows = scores.shape[0]
  num_blocks = -(-num_frames // block)
  starts = jnp.clip(jnp.asarray(starts).astype(jnp.int32), 0, num_frames)
  ends = jnp.clip(jnp.asarray(ends).astype(jnp.int32), 0, num_frames)
  # Empty (padding) windows are sent past the last block, where their updates are dropped: adding
  # +x then -x could round once many of them pile up on one frame. So are updates at frame T when
  # T is a multiple of the block.
  empty = ends <= starts
  starts = jnp.where(empty, num_blocks * block, starts)
  ends = jnp.where(empty, num_blocks * block, ends)
  fixed = jnp.round(
    jnp.clip(jnp.asarray(scores).astype(jnp.float32), 0.0, 1.0) * float(1 << _FIXED_POINT_BITS)
  )
  # Column K counts the windows.
  fixed_int = jnp.concatenate(
    [fixed.astype(jnp.int32), jnp.ones((num_windows, 1), jnp.int32)], axis=1
  )
  values = jnp.concatenate(
    [fixed * 2.0**-_FIXED_POINT_BITS, jnp.ones((num_windows, 1), jnp.float32)], axis=1
  )
  return starts, ends, fixed_int, values


def _block_carries(
  starts: jax.Array, ends: jax.Array, fixed_int: jax.Array, num_blocks: int, block: int
) -> jax.Array:
  """Float32 [block, class + 1] totals over the frames before each block, exact in fixed point."""
  num_classes = fixed_int.shape[1] - 1
  # Carry of block i, the total over frames < i * block: an int32 cumulative sum over the blocks of
  # the windows starting (ending) before the block. associative_scan is faster than cumsum here.
  per_block = jnp.zeros((num_blocks, num_classes + 1), jnp.int32)
  per_block = per_block.at[starts // block + 1].add(fixed_int, mode="drop")
  per_block = per_block.at[ends // block + 1].subtract(fixed_int, mode="drop")
  carry = jax.lax.associative_scan(jnp.add, per_block, axis=0).astype(jnp.float32)
  return carry.at[:, :num_classes].multiply(2.0**-_FIXED_POINT_BITS)


def _block_running_totals(
  carry: jax.Array, starts: jax.Array, ends: jax.Array, values: jax.Array, block: int
) -> jax.Array:
  """Running totals [block, class + 1, frame in block] from the carries and window differences."""
  # Difference array [block, class, frame in block] holding the carry on each block's first frame;
  # its prefix sums along the last axis are then the running totals.
  diff = jnp.pad(carry[:, :, None], ((0, 0), (0, 0), (0, block - 1)))
  dims = jax.lax.ScatterDimensionNumbers(
    update_window_dims=(1,), inserted_window_dims=(0, 2), scatter_dims_to_operand_dims=(0, 2)
  )
  mode = jax.lax.GatherScatterMode.FILL_OR_DROP
  diff = jax.lax.scatter_add(
    diff, jnp.stack([starts // block, starts % block], axis=1), values, dims, mode=mode
  )
  diff = jax.lax.scatter_sub(
    diff, jnp.stack([ends // block, ends % block], axis=1), values, dims, mode=mode
  )
  upper = jnp.triu(jnp.ones((block, block), jnp.float32))  # upper[i, j] = 1 for i <= j.
  return jnp.dot(diff, upper, precision=jax.lax.Precision.HIGHEST)


def frame_labels(
  alpha: jax.Array, gamma: float = 0.6, video_class: jax.Array | int | None = None
) -> jax.Array:
  """Frame labels l_t, Eq. (4): the class whose alpha_t exceeds gamma, else 0 (background).

  Args:
    alpha: [T, K] frame scores.
    gamma: threshold (the paper uses 0.6).
    video_class: the paper's single video class k' (1-based, may be traced): frames with
      alpha[t, k' - 1] > gamma get k', the others 0, and 0 (no class) labels every frame 0. None
      labels every frame with its best class, so a video may hold several classes.

  Returns:
    int32 [T]: class ids, 0 for background.
  """
  if video_class is None:
    # jnp.argmax, written as one pass over the classes: XLA:CPU reduces rows of ~20 classes (and
    # argmax's variadic reduce) slowly, but fuses this chain of element-wise selects into one loop.
    # Ties keep the first class; a NaN propagates to the maximum, so its frame is background.
    alpha = jnp.asarray(alpha)
    best_score = alpha[..., 0]
    best = jnp.zeros(alpha.shape[:-1], jnp.int32)
    for k in range(1, alpha.shape[-1]):
      score = alpha[..., k]
      better = (score > best_score) | jnp.isnan(score)
      best = jnp.where(better, k, best)
      best_score = jnp.where(better, score, best_score)
    return jnp.where(best_score > gamma, best + 1, 0).astype(jnp.int32)
  k = jnp.asarray(video_class, jnp.int32)
  column = jnp.take(jnp.asarray(alpha), jnp.maximum(k - 1, 0), axis=-1)
  return jnp.where((k > 0) & (column > gamma), k, 0).astype(jnp.int32)


def video_class(scores: jax.Array) -> jax.Array:
  """The paper's video class k': the action label with the highest mean v_spe over its windows.

  The mean of each label is over the windows given that label, i.e. flagged by Eq. (1) with
  l_spe = k (the classification network only labels flagged clips); ties go to the lowest label.

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


def pad_windows(
  starts: np.ndarray, ends: np.ndarray, bucket: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Pads window arrays to a multiple of ``bucket`` with empty windows (start == end == 0).

  Returns (starts, ends, valid) so jitted code compiles once per bucket, not once per video.
  """
  h = int(starts.shape[0])
  size = max(bucket, -(-h // bucket) * bucket)
  pad = size - h
  valid = np.concatenate([np.ones(h, bool), np.zeros(pad, bool)])
  return (
    np.concatenate([starts, np.zeros(pad, starts.dtype)]),
    np.concatenate([ends, np.zeros(pad, ends.dtype)]),
    valid,
  )
