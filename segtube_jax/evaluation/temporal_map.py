"""Temporal action detection mAP under the THUMOS14 and ActivityNet protocols.

Pure NumPy: reads detection files and ground truth, and scores them. Two protocols:

``thumos14`` reproduces the official THUMOS14 evaluator (``TH14evalDet``/``TH14eventdetpr``,
MATLAB, in the version shipped with SCNN), exactly:

* Matching is ground-truth driven, per (video, class): the detections of the video are
  sorted by descending score (stable, so ties keep file order); each ground-truth
  instance, in file order, takes the still-unmatched detection with the highest overlap
  (first one on ties), provided that overlap is strictly greater than the threshold.
* Unmatched detections that intersect (positive length) an Ambiguous interval of their
  video are dropped, neither true nor false positives.
* The surviving detections of a class are ranked by descending score; ties are broken
  by video name (the evaluator concatenates videos in sorted-name order before its
  stable sort), then by file order.
* AP is not interpolated: the sum of the precisions at each true positive, divided by
  the number of ground-truth instances. mAP averages all classes that have ground truth
  (in THUMOS14 every one of the 20 does, so it is the evaluator's plain mean).

``activitynet`` reproduces ActivityNet's ``eval_detection.py``: detections of a class in
descending score order (stable, file order on ties, where that script's unstable
quicksort leaves ties arbitrary) each take the best-overlapping unmatched ground truth of
their video with tIoU >= threshold (on equal tIoU, the later ground truth, as that
script's reversed argsort gives); Ambiguous intervals are not used; AP is the
interpolated area under the precision envelope. mAP averages classes with ground truth.

Overlap is temporal IoU. The THUMOS14 protocol computes the union as the hull of the two
intervals and ActivityNet as the sum of lengths minus the intersection, like the
reference implementations; they agree mathematically but can differ in the last bit,
which matters for overlaps that sit exactly on a threshold.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from segtube_jax.errors import ConfigError
from segtube_jax.evaluation.detection_files import (
  DATASET_SUBSETS,
  Detections,
  GroundTruth,
  PathLike,
  ground_truth_from_dataset,
  load_ground_truth,
  read_activitynet_detections,
  read_detections,
  read_thumos14_detections,
)

# The readers live in detection_files; they are re-exported so one import serves scoring.
__all__ = [
  "DATASET_SUBSETS",
  "DEFAULT_TIOUS",
  "Detections",
  "GroundTruth",
  "PROTOCOLS",
  "PathLike",
  "average_precision",
  "activitynet_average_precision",
  "ground_truth_from_dataset",
  "iou_matrix",
  "load_ground_truth",
  "mean_average_precision",
  "read_activitynet_detections",
  "read_detections",
  "read_thumos14_detections",
  "thumos14_average_precision",
]

PROTOCOLS = ("thumos14", "activitynet")
DEFAULT_TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5)


def iou_matrix(a: np.ndarray, b: np.ndarray, union: str = "hull") -> np.ndarray:
  """Temporal IoU of every interval in ``a`` (M, 2) with every one in ``b`` (N, 2).

  Args:
    a: (M, 2) intervals ``[t_start, t_end]``.
    b: (N, 2) intervals.
    union: ``"hull"`` (max end - min start, as TH14evalDet) or ``"sum"`` (length sum minus
      intersection, as ActivityNet's ``segment_iou``).

  Returns:
    (M, N) IoU; 0 where the intervals do not intersect with positive length.
  """
  a0, a1 = a[:, 0:1], a[:, 1:2]
  b0, b1 = b[None, :, 0], b[None, :, 1]
  inter = np.minimum(a1, b1) - np.maximum(a0, b0)
  if union == "hull":
    union_len = np.maximum(a1, b1) - np.minimum(a0, b0)
  elif union == "sum":
    union_len = (b1 - b0) + (a1 - a0) - np.clip(inter, 0.0, None)
  else:
    raise ValueError(f"union must be 'hull' or 'sum', got {union!r}")
  out = np.zeros(inter.shape)
  np.divide(inter, union_len, out=out, where=inter > 0)
  return out


def thumos14_average_precision(
  ground_truth: GroundTruth, detections: Detections, tious: Sequence[float] = DEFAULT_TIOUS
) -> np.ndarray:
  """Per-class AP under the official THUMOS14 protocol (see module docstring).

  Args:
    ground_truth: ground truth, including Ambiguous intervals.
    detections: detections with labels indexing ``ground_truth.classes``.
    tious: overlap thresholds; a match needs IoU strictly greater.

  Returns:
    (T, C) AP; NaN for classes without ground truth.
  """
  tious = _check_tious(tious)
  ctx = _Context(ground_truth, detections)
  matched = np.zeros((len(tious), len(detections)), bool)
  for gi, di in ctx.groups():
    ov = iou_matrix(ground_truth.segment[gi], detections.segment[di], "hull")
    best = ov.max(axis=1)
    for t, thr in enumerate(tious):
      free = np.ones(len(di), bool)
      # Instances that overlap no detection above thr cannot change anything: skip them.
      for k in np.flatnonzero(best > thr):
        row = np.where(free, ov[k], -1.0)
        j = int(row.argmax())  # first maximum, as MATLAB's max
        if row[j] > thr:
          free[j] = False
      matched[t, di[~free]] = True

  ignored = ctx.overlaps_ambiguous()
  # The evaluator concatenates videos in sorted-name order, sorts each video's detections
  # by score, then stable-sorts the whole class by score: score, video name, file order.
  rank = np.lexsort((np.arange(len(detections)), ctx.det_code, -detections.score))
  ap = np.full((len(tious), len(ctx.classes)), np.nan)
  for c in np.flatnonzero(ctx.npos):
    idx = rank[detections.label[rank] == c]
    for t in range(len(tious)):
      tp = matched[t, idx]
      tp = tp[tp | ~ignored[idx]]
      ap[t, c] = _non_interpolated_ap(tp, ctx.npos[c])
  return ap


def activitynet_average_precision(
  ground_truth: GroundTruth, detections: Detections, tious: Sequence[float] = DEFAULT_TIOUS
) -> np.ndarray:
  """Per-class AP under ActivityNet's ``eval_detection.py`` rules (see module docstring).

  Args:
    ground_truth: ground truth; Ambiguous intervals are not used.
    detections: detections with labels indexing ``ground_truth.classes``.
    tious: tIoU thresholds; a match needs IoU >= threshold.

  Returns:
    (T, C) AP; NaN for classes without ground truth.
  """
  tious = _check_tious(tious)
  ctx = _Context(ground_truth, detections)
  tp_all = np.zeros((len(tious), len(detections)), bool)
  for gi, di in ctx.groups():
    iou = iou_matrix(detections.segment[di], ground_truth.segment[gi], "sum")
    best = iou.max(axis=1)
    num_gt = len(gi)
    for t, thr in enumerate(tious):
      locked = np.zeros(num_gt, bool)
      # Detections below thr against every instance are false positives: skip them.
      for j in np.flatnonzero(best >= thr):
        row = np.where(locked, -1.0, iou[j])
        g = num_gt - 1 - int(row[::-1].argmax())  # last maximum, as the reversed argsort
        if row[g] >= thr:
          locked[g] = True
          tp_all[t, di[j]] = True

  rank = np.argsort(-detections.score, kind="stable")
  ap = np.full((len(tious), len(ctx.classes)), np.nan)
  for c in np.flatnonzero(ctx.npos):
    idx = rank[detections.label[rank] == c]
    for t in range(len(tious)):
      ap[t, c] = interpolated_ap(tp_all[t, idx], ctx.npos[c])
  return ap


def average_precision(
  ground_truth: GroundTruth,
  detections: Detections,
  protocol: str,
  tious: Sequence[float] = DEFAULT_TIOUS,
) -> np.ndarray:
  """(T, C) per-class AP under ``protocol`` (``"thumos14"`` or ``"activitynet"``)."""
  if protocol == "thumos14":
    return thumos14_average_precision(ground_truth, detections, tious)
  if protocol == "activitynet":
    return activitynet_average_precision(ground_truth, detections, tious)
  raise ConfigError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")


def mean_average_precision(ap: np.ndarray) -> np.ndarray:
  """(T,) mean over the classes that have ground truth (non-NaN columns of ``ap``)."""
  has_gt = ~np.isnan(ap).all(axis=0)
  if not has_gt.any():
    return np.full(ap.shape[0], np.nan)
  return ap[:, has_gt].mean(axis=1)


class _Context:
  """Video codes and (video, class) grouping shared by both protocols."""

  def __init__(self, ground_truth: GroundTruth, detections: Detections):
    num_classes = len(ground_truth.classes)
    if len(detections) and (detections.label.min() < 0 or detections.label.max() >= num_classes):
      raise ValueError(
        f"{detections.source}: labels must index the {num_classes} ground-truth classes"
      )
    self.classes = ground_truth.classes
    self.gt = ground_truth
    self.dets = detections
    self.npos = ground_truth.instances_per_class()
    # Codes are ranks in the sorted union of names, so ordering by code is ordering by name.
    m, a = len(ground_truth.video), len(ground_truth.ambiguous_video)
    names = np.concatenate([ground_truth.video, ground_truth.ambiguous_video, detections.video])
    _, codes = np.unique(names, return_inverse=True)
    self.num_codes = int(codes.max()) + 1 if codes.size else 1
    self.gt_code, self.amb_code, self.det_code = codes[:m], codes[m : m + a], codes[m + a :]

  def groups(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields (ground-truth indices in file order, detection indices by descending score)
    for every (class, video) that has both."""
    gt, dets = self.gt, self.dets
    g_order = np.lexsort((np.arange(len(gt.label)), self.gt_code, gt.label))
    d_order = np.lexsort((np.arange(len(dets)), -dets.score, self.det_code, dets.label))
    g_keys = gt.label[g_order] * self.num_codes + self.gt_code[g_order]
    d_keys = dets.label[d_order] * self.num_codes + self.det_code[d_order]
    g_unique, g_start = np.unique(g_keys, return_index=True)
    g_end = np.append(g_start[1:], len(g_keys))
    d_unique, d_start, d_count = np.unique(d_keys, return_index=True, return_counts=True)
    for key, g0, g1 in zip(g_unique, g_start, g_end):
      pos = np.searchsorted(d_unique, key)
      if pos < len(d_unique) and d_unique[pos] == key:
        yield g_order[g0:g1], d_order[d_start[pos] : d_start[pos] + d_count[pos]]

  def overlaps_ambiguous(self) -> np.ndarray:
    """(N,) whether each detection intersects an Ambiguous interval of its video."""
    out = np.zeros(len(self.dets), bool)
    for code in np.unique(self.amb_code):
      di = np.flatnonzero(self.det_code == code)
      if di.size:
        amb = self.gt.ambiguous_segment[self.amb_code == code]
        seg = self.dets.segment[di]
        inter = np.minimum(amb[:, 1:2], seg[None, :, 1]) - np.maximum(amb[:, 0:1], seg[None, :, 0])
        out[di] = (inter > 0).any(axis=0)
    return out


def _non_interpolated_ap(tp: np.ndarray, npos: int) -> float:
  """Sum of precisions at the true positives over npos (TH14evalDet's ``prap``)."""
  if not tp.any():
    return 0.0
  precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
  return float(precision[tp].sum() / npos)


def envelope_ap(precision: np.ndarray, recall: np.ndarray) -> float:
  """Area under the monotone precision envelope of a PR curve (ActivityNet's ``interpolated_prec_rec``)."""
  precision, recall = np.asarray(precision, float), np.asarray(recall, float)
  mprec = np.concatenate([[0.0], precision, [0.0]])
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mprec = np.maximum.accumulate(mprec[::-1])[::-1]
  idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
  return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def interpolated_ap(tp: np.ndarray, npos: int) -> float:
  """ActivityNet AP of detections ranked by score (``tp``: hit flags) against ``npos`` instances."""
  if not len(tp):
    return 0.0
  tp_cum = np.cumsum(tp)
  return envelope_ap(tp_cum / np.arange(1, len(tp) + 1), tp_cum / npos)


def _check_tious(tious: Sequence[float]) -> list[float]:
  tious = [float(t) for t in tious]
  if not tious or not all(0.0 <= t <= 1.0 for t in tious):
    raise ConfigError(f"tIoU thresholds must be a non-empty list of values in [0, 1], got {tious}")
  return tious
