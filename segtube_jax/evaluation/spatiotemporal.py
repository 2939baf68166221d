"""Spatio-temporal detection quality: ST-IoU and video-mAP (the joint metric the paper lacks).

The Segment-tube paper scores temporal localization (mAP at tIoU) and spatial segmentation
(mask IoU) separately. Here a detection is judged as a whole tube:

* ``ST-IoU(det, gt) = tIoU x mean mask IoU``, where tIoU is the temporal IoU of the frame
  intervals ``[start, end)`` and the mean mask IoU is taken over the frames of their temporal
  intersection that have a ground-truth mask (a frame with no predicted mask counts as an
  empty prediction, i.e. IoU 0 unless the ground truth is empty; that is already folded into
  ``frame_iou``). When no frame of the intersection has a ground-truth mask the spatial term
  is 0: the detection cannot be verified.
* video-mAP at an ST-IoU threshold follows ActivityNet's detection protocol: per class,
  detections in descending score order (stable) each take the still-unmatched ground-truth
  instance of the same class and video with the highest ST-IoU >= threshold (first one on
  ties); the rest, duplicates included, are false positives. AP is the interpolated area under
  the precision envelope, as :mod:`segtube_jax.evaluation.temporal_map`'s ActivityNet AP.

Masks are per video (one predicted mask per frame, whatever the class), so the per-frame mask
IoU is computed once per video (e.g. with
:func:`segtube_jax.evaluation.segmentation_metrics.frame_iou_maps`) and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from segtube_jax.errors import ConfigError
from segtube_jax.evaluation import temporal_map
from segtube_jax.types import DetectedSegment

DEFAULT_THRESHOLDS = (0.2, 0.5)
# (label, start_frame, end_frame): one ground-truth instance, end exclusive.
GtInstance = tuple[str, int, int]


def temporal_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
  """IoU of two frame intervals ``[start, end)``."""
  inter = min(a[1], b[1]) - max(a[0], b[0])
  if inter <= 0:
    return 0.0
  return inter / ((a[1] - a[0]) + (b[1] - b[0]) - inter)


def spatial_iou(span: tuple[int, int], frame_iou: Mapping[int, float]) -> float:
  """Mean of ``frame_iou`` over the frames of ``[start, end)`` that have one; 0 if none."""
  start, end = span
  if end - start <= len(frame_iou):
    values = [frame_iou[f] for f in range(start, end) if f in frame_iou]
  else:  # long span, sparse masks: walk the masks instead of the frames
    values = [v for f, v in frame_iou.items() if start <= f < end]
  return float(np.mean(values)) if values else 0.0


def st_iou(det: DetectedSegment, gt_span: tuple[int, int], frame_iou: Mapping[int, float]) -> float:
  """Spatio-temporal IoU of a detection with one ground-truth instance.

  Args:
    det: the detection (its frames ``[start_frame, end_frame)``; its label is not checked).
    gt_span: the instance's frames ``(start, end)``, end exclusive.
    frame_iou: frame -> IoU of the video's predicted mask with the ground-truth mask, for the
      frames that have a ground-truth mask.

  Returns:
    tIoU x mean mask IoU over the temporal intersection, in [0, 1].
  """
  tiou = temporal_iou((det.start_frame, det.end_frame), gt_span)
  if tiou == 0.0:
    return 0.0
  inter = (max(det.start_frame, gt_span[0]), min(det.end_frame, gt_span[1]))
  return tiou * spatial_iou(inter, frame_iou)


def _threshold_key(threshold: float) -> str:
  return f"{threshold:g}"


def _check_thresholds(thresholds: Sequence[float]) -> list[float]:
  thresholds = [float(t) for t in thresholds]
  if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
    raise ConfigError(
      f"ST-IoU thresholds must be a non-empty list of values in (0, 1], got {thresholds}"
    )
  return thresholds


def match_detections(
  dets: Sequence[tuple[str, DetectedSegment]],
  ground_truth: Mapping[str, Sequence[GtInstance]],
  frame_iou: Mapping[str, Mapping[int, float]],
  threshold: float,
) -> np.ndarray:
  """True-positive flags of one class's detections, already in rank order.

  Args:
    dets: (video id, detection) pairs of one class, best first.
    ground_truth: video id -> instances; only those with the detections' label are matched.
    frame_iou: video id -> {frame: mask IoU}.
    threshold: minimum ST-IoU of a match.

  Returns:
    bool [len(dets)].
  """
  tp = np.zeros(len(dets), bool)
  taken: dict[str, set[int]] = {}
  for i, (video, det) in enumerate(dets):
    used = taken.setdefault(video, set())
    best, best_j = -1.0, -1
    for j, (label, start, end) in enumerate(ground_truth.get(video, ())):
      if label != det.label or j in used:
        continue
      ov = st_iou(det, (start, end), frame_iou.get(video, {}))
      if ov > best:  # strict: the first instance wins ties
        best, best_j = ov, j
    if best_j >= 0 and best >= threshold:
      used.add(best_j)
      tp[i] = True
  return tp


def video_map(
  detections: Mapping[str, Sequence[DetectedSegment]],
  ground_truth: Mapping[str, Sequence[GtInstance]],
  frame_iou: Mapping[str, Mapping[int, float]],
  thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
  classes: Sequence[str] | None = None,
) -> dict:
  """video-mAP at ST-IoU thresholds.

  Args:
    detections: video id -> detections (any class).
    ground_truth: video id -> ``(label, start_frame, end_frame)`` instances. Its keys are the
      evaluated videos (list a video without instances with ``[]``); detections of other videos
      are ignored and counted in ``num_detections_ignored``.
    frame_iou: video id -> {frame: mask IoU}, for every evaluated video that has instances.
    thresholds: ST-IoU thresholds; a match needs ST-IoU >= threshold.
    classes: class names to report, in order; by default the sorted labels of the ground truth
      and the evaluated detections. Detections of other labels are ignored (and counted).

  Returns:
    ``{"thresholds": [...], "classes": [...], "mAP": [per threshold], "AP_per_class":
    {"0.2": {cls: ap}}, "num_gt": {cls: n}, "num_detections": {cls: n},
    "num_detections_ignored": n}``. AP is a fraction; a class without ground truth has AP
    ``None`` and is left out of the mean (mAP is ``None`` if no class has ground truth).

  Raises:
    ConfigError: bad thresholds, or a video with instances has no ``frame_iou``.
  """
  thresholds = _check_thresholds(thresholds)
  no_masks = sorted(v for v, inst in ground_truth.items() if inst and v not in frame_iou)
  if no_masks:
    raise ConfigError(
      f"video_map: no per-frame mask IoU for videos {no_masks[:5]}; the "
      "spatio-temporal metric needs ground-truth masks"
    )
  if classes is None:
    labels = {inst[0] for insts in ground_truth.values() for inst in insts}
    labels |= {d.label for v, dets in detections.items() if v in ground_truth for d in dets}
    classes = sorted(labels)
  classes = list(classes)
  known = set(classes)
  by_class: dict[str, list[tuple[str, DetectedSegment]]] = {c: [] for c in classes}
  ignored = 0
  for video, dets in detections.items():
    for det in dets:
      if video in ground_truth and det.label in known:
        by_class[det.label].append((video, det))
      else:
        ignored += 1
  num_gt = {c: 0 for c in classes}
  for insts in ground_truth.values():
    for label, _, _ in insts:
      if label in num_gt:
        num_gt[label] += 1
  ap = np.full((len(thresholds), len(classes)), np.nan)
  for c, name in enumerate(classes):
    if not num_gt[name]:
      continue
    # Stable sort: equal scores keep input order (video order, then list order).
    ranked = sorted(by_class[name], key=lambda vd: -vd[1].score)
    for t, thr in enumerate(thresholds):
      tp = match_detections(ranked, ground_truth, frame_iou, thr)
      ap[t, c] = temporal_map.interpolated_ap(tp, num_gt[name])
  mean = temporal_map.mean_average_precision(ap) if classes else np.full(len(thresholds), np.nan)

  def _json(x: float) -> float | None:
    return None if np.isnan(x) else float(x)

  return {
    "thresholds": thresholds,
    "classes": classes,
    "mAP": [_json(m) for m in mean],
    "AP_per_class": {
      _threshold_key(thr): {name: _json(ap[t, c]) for c, name in enumerate(classes)}
      for t, thr in enumerate(thresholds)
    },
    "num_gt": num_gt,
    "num_detections": {c: len(by_class[c]) for c in classes},
    "num_detections_ignored": ignored,
  }
