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

import dataclasses
import json
import math
import numbers
import os
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from segtube_jax.errors import AnnotationError, ConfigError, DatasetError, DetectionFileError

PROTOCOLS = ("thumos14", "activitynet")
DEFAULT_TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5)
DATASET_SUBSETS = ("training", "validation", "testing")
# Video extensions the official evaluator strips from detection video names.
_VIDEO_SUFFIXES = (".mp4", ".mpeg")

PathLike = str | os.PathLike


def _as_array(value: Any, dtype: Any, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
  array = np.asarray(value, dtype=dtype)
  if array.size == 0:
    array = array.reshape((0,) + shape_tail)
  return array


@dataclasses.dataclass(frozen=True)
class Detections:
  """Temporal detections, one row each, in file order.

  Attributes:
    video: (N,) video ids (str).
    label: (N,) class indices into the ground truth's ``classes``.
    segment: (N, 2) ``[t_start, t_end]`` in seconds.
    score: (N,) confidences; higher ranks first.
    source: where they came from, for messages.
  """
  video: np.ndarray
  label: np.ndarray
  segment: np.ndarray
  score: np.ndarray
  source: str = "<detections>"

  def __post_init__(self):
    # Coerced here so that hand-made detections can be given as plain lists.
    object.__setattr__(self, "video", _as_array(self.video, str))
    object.__setattr__(self, "label", _as_array(self.label, np.int64))
    object.__setattr__(self, "segment", _as_array(self.segment, np.float64, (2,)))
    object.__setattr__(self, "score", _as_array(self.score, np.float64))
    n = len(self.video)
    if not (self.label.shape == (n,) and self.segment.shape == (n, 2) and self.score.shape == (n,)):
      raise ValueError(
          f"{self.source}: expected video (N,), label (N,), segment (N, 2), score (N,); got "
          f"{self.video.shape}, {self.label.shape}, {self.segment.shape}, {self.score.shape}")

  def __len__(self) -> int:
    return len(self.video)


@dataclasses.dataclass(frozen=True)
class GroundTruth:
  """Ground-truth instances and Ambiguous intervals of one subset.

  Attributes:
    classes: class names; ``label`` indexes them.
    video: (M,) video id of each instance.
    label: (M,) class index of each instance.
    segment: (M, 2) ``[t_start, t_end]`` in seconds. Within a (video, class) instances
      keep annotation-file order, which the THUMOS14 protocol's matching depends on.
    ambiguous_video: (A,) video id of each Ambiguous interval.
    ambiguous_segment: (A, 2) Ambiguous intervals.
    source: where it came from, for messages.
  """
  classes: tuple[str, ...]
  video: np.ndarray
  label: np.ndarray
  segment: np.ndarray
  ambiguous_video: np.ndarray
  ambiguous_segment: np.ndarray
  source: str = "<ground truth>"

  def __post_init__(self):
    object.__setattr__(self, "classes", tuple(self.classes))
    object.__setattr__(self, "video", _as_array(self.video, str))
    object.__setattr__(self, "label", _as_array(self.label, np.int64))
    object.__setattr__(self, "segment", _as_array(self.segment, np.float64, (2,)))
    object.__setattr__(self, "ambiguous_video", _as_array(self.ambiguous_video, str))
    object.__setattr__(self, "ambiguous_segment",
                       _as_array(self.ambiguous_segment, np.float64, (2,)))

  def instances_per_class(self) -> np.ndarray:
    """(C,) number of ground-truth instances of each class."""
    return np.bincount(self.label, minlength=len(self.classes))


# ----------------------------------------------------------------------------------------
# Readers.


def read_thumos14_detections(path: PathLike, classes: Sequence[str]) -> Detections:
  """Reads a THUMOS14 detection file (``video_name t_start t_end class_id score`` lines).

  Args:
    path: the text file. Blank lines are skipped; a trailing ``.mp4``/``.mpeg`` on the
      video name is dropped, as the official evaluator does.
    classes: class names; ``class_id`` k (1-based, as in ``detclasslist.txt``) is
      ``classes[k - 1]``.

  Returns:
    The detections in file order.

  Raises:
    DetectionFileError: the file is unreadable, or a line has the wrong field count, a
      non-numeric or non-finite value, ``t_start > t_end`` or an unknown ``class_id``.
  """
  path = pathlib.Path(path)
  return _parse_thumos14_detections(_read_text(path), path, classes)


def _parse_thumos14_detections(text: str, path: pathlib.Path,
                               classes: Sequence[str]) -> Detections:
  linenos, rows = [], []
  for lineno, line in enumerate(text.splitlines(), 1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 5:
      raise DetectionFileError(
          f"{path}:{lineno}: expected 'video_name t_start t_end class_id score' (5 fields), got "
          f"{len(fields)} fields: {line.strip()!r}")
    linenos.append(lineno)
    rows.append(fields)
  if not rows:
    return Detections([], [], [], [], source=str(path))
  videos, starts, ends, class_ids, scores = zip(*rows)
  start = _numeric_column(path, linenos, starts, "t_start", float)
  end = _numeric_column(path, linenos, ends, "t_end", float)
  class_id = _numeric_column(path, linenos, class_ids, "class_id", int)
  score = _numeric_column(path, linenos, scores, "score", float)
  bad = np.flatnonzero(start > end)
  if bad.size:
    i = bad[0]
    raise DetectionFileError(
        f"{path}:{linenos[i]}: expected t_start <= t_end, got {start[i]:g} > {end[i]:g}")
  bad = np.flatnonzero((class_id < 1) | (class_id > len(classes)))
  if bad.size:
    i = bad[0]
    raise DetectionFileError(
        f"{path}:{linenos[i]}: expected class_id in 1..{len(classes)} (detclasslist), got "
        f"{class_id[i]}")
  if any(suffix in text for suffix in _VIDEO_SUFFIXES):  # rare: skip the per-row work
    videos = [_strip_video_suffix(v) for v in videos]
  return Detections(video=videos, label=class_id - 1, segment=np.stack([start, end], axis=1),
                    score=score, source=str(path))


def read_activitynet_detections(path: PathLike, classes: Sequence[str]) -> Detections:
  """Reads ActivityNet-style JSON detections.

  Args:
    path: a JSON file ``{"results": {video_id: [{"label": str, "score": float,
      "segment": [t_start, t_end]}, ...]}}`` (other top-level keys are ignored).
    classes: class names that ``label`` must be one of.

  Returns:
    The detections in file order (videos as listed, then list order).

  Raises:
    DetectionFileError: invalid JSON or a missing/ill-typed key, naming the JSON key.
  """
  path = pathlib.Path(path)
  return _parse_activitynet_detections(_read_text(path), path, classes)


def _parse_activitynet_detections(text: str, path: pathlib.Path,
                                  classes: Sequence[str]) -> Detections:
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise DetectionFileError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
  if not isinstance(data, Mapping) or not isinstance(data.get("results"), Mapping):
    raise DetectionFileError(
        f"{path}: expected a JSON object with key 'results' mapping video ids to detection "
        "lists")
  class_index = {name: i for i, name in enumerate(classes)}
  videos, labels, segments, scores = [], [], [], []
  for video, items in data["results"].items():
    key = f"results[{video!r}]"
    if not isinstance(items, list):
      raise DetectionFileError(f"{path}: {key}: expected a list of detections, got "
                               f"{type(items).__name__}")
    for j, item in enumerate(items):
      item_key = f"{key}[{j}]"
      if not isinstance(item, Mapping):
        raise DetectionFileError(f"{path}: {item_key}: expected an object with 'label', 'score' "
                                 f"and 'segment', got {type(item).__name__}")
      for name in ("label", "score", "segment"):
        if name not in item:
          raise DetectionFileError(f"{path}: {item_key}: missing key {name!r}")
      label, score, segment = item["label"], item["score"], item["segment"]
      if label not in class_index:
        raise DetectionFileError(
            f"{path}: {item_key}['label']: expected one of the ground-truth classes, got "
            f"{label!r}")
      if not _is_finite_number(score):
        raise DetectionFileError(
            f"{path}: {item_key}['score']: expected a finite number, got {score!r}")
      if (not isinstance(segment, list) or len(segment) != 2 or
          not all(_is_finite_number(t) for t in segment) or segment[0] > segment[1]):
        raise DetectionFileError(
            f"{path}: {item_key}['segment']: expected [t_start, t_end] (finite seconds, "
            f"t_start <= t_end), got {segment!r}")
      videos.append(video)
      labels.append(class_index[label])
      segments.append(segment)
      scores.append(score)
  return Detections(videos, labels, segments, scores, source=str(path))


def read_detections(path: PathLike, classes: Sequence[str]) -> Detections:
  """Reads a detection file: ActivityNet JSON (``.json`` or text starting with ``{``), else
  THUMOS14 text. See :func:`read_thumos14_detections` and :func:`read_activitynet_detections`.
  """
  path = pathlib.Path(path)
  text = _read_text(path)
  if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
    return _parse_activitynet_detections(text, path, classes)
  return _parse_thumos14_detections(text, path, classes)


def ground_truth_from_dataset(dataset: Mapping[str, Any],
                              subset: str = "testing",
                              source: str = "<dataset>") -> GroundTruth:
  """Builds ground truth from a dataset dict (annotations.json format).

  Args:
    dataset: ``{"classes": [...], "database": {video_id: {"subset": ..., "annotations":
      [{"label", "segment"}], "ambiguous": [[t0, t1], ...]}}}``; ``ambiguous`` is optional.
    subset: only videos of this subset are used.
    source: name of the dataset for messages (e.g. the file path).

  Returns:
    The ground truth; per video, instances keep their list order.

  Raises:
    ConfigError: ``subset`` is not training/validation/testing.
    DatasetError: the structure is wrong or no video belongs to ``subset``.
    AnnotationError: an annotation or Ambiguous entry is malformed.
  """
  if subset not in DATASET_SUBSETS:
    raise ConfigError(f"unknown subset {subset!r}; expected one of {list(DATASET_SUBSETS)}")
  if not isinstance(dataset, Mapping):
    raise DatasetError(f"{source}: expected a JSON object, got {type(dataset).__name__}")
  classes = dataset.get("classes")
  if (not isinstance(classes, list) or not classes or
      not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes)):
    raise DatasetError(f"{source}: 'classes': expected a non-empty list of distinct class names")
  database = dataset.get("database")
  if not isinstance(database, Mapping):
    raise DatasetError(f"{source}: 'database': expected an object mapping video ids to entries")
  class_index = {name: i for i, name in enumerate(classes)}
  videos, labels, segments, amb_videos, amb_segments = [], [], [], [], []
  num_videos = 0
  for video, info in database.items():
    key = f"database[{video!r}]"
    if not isinstance(info, Mapping):
      raise DatasetError(f"{source}: {key}: expected an object, got {type(info).__name__}")
    if info.get("subset") not in DATASET_SUBSETS:
      raise DatasetError(f"{source}: {key}['subset']: expected one of {list(DATASET_SUBSETS)}, "
                         f"got {info.get('subset')!r}")
    if info["subset"] != subset:
      continue
    num_videos += 1
    annotations = info.get("annotations", [])
    if not isinstance(annotations, list):
      raise DatasetError(f"{source}: {key}['annotations']: expected a list")
    for j, ann in enumerate(annotations):
      ann_key = f"{key}['annotations'][{j}]"
      if not isinstance(ann, Mapping) or "label" not in ann or "segment" not in ann:
        raise AnnotationError(f"{source}: {ann_key}: expected an object with 'label' and "
                              "'segment'")
      if ann["label"] not in class_index:
        raise AnnotationError(f"{source}: {ann_key}['label']: expected one of 'classes', got "
                              f"{ann['label']!r}")
      videos.append(video)
      labels.append(class_index[ann["label"]])
      segments.append(_check_segment(ann["segment"], source, f"{ann_key}['segment']"))
    ambiguous = info.get("ambiguous") or []
    if not isinstance(ambiguous, list):
      raise DatasetError(f"{source}: {key}['ambiguous']: expected a list of [t_start, t_end]")
    for j, seg in enumerate(ambiguous):
      amb_videos.append(video)
      amb_segments.append(_check_segment(seg, source, f"{key}['ambiguous'][{j}]"))
  if not num_videos:
    raise DatasetError(f"{source}: no video has subset {subset!r}")
  return GroundTruth(classes, videos, labels, segments, amb_videos, amb_segments, source=source)


def load_ground_truth(path: PathLike, subset: str = "testing") -> GroundTruth:
  """Loads ground truth from a THUMOS14 annotation folder or an annotations.json file.

  Args:
    path: a folder (read with :func:`segtube_jax.data.thumos14.load_thumos14_annotations`)
      or a dataset-format JSON file.
    subset: ``"testing"`` or ``"validation"`` (or ``"training"`` for JSON).

  Returns:
    The ground truth of ``subset``.

  Raises:
    DatasetError: the path is missing or not valid JSON, or see
      :func:`ground_truth_from_dataset`.
    AnnotationError: a THUMOS14 annotation file is malformed.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    # Data-side reader, not training/model code; imported lazily to keep this module light.
    from segtube_jax.data import thumos14  # pylint: disable=g-import-not-at-top
    dataset = thumos14.load_thumos14_annotations(path, subset)
  elif path.is_file():
    try:
      dataset = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise DatasetError(f"{path}: expected a dataset JSON file, cannot parse it ({e})") from None
  else:
    raise DatasetError(f"{path}: ground truth not found; expected a THUMOS14 annotation folder "
                       "or an annotations.json file")
  return ground_truth_from_dataset(dataset, subset, source=str(path))


# ----------------------------------------------------------------------------------------
# Scoring.


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


def thumos14_average_precision(ground_truth: GroundTruth, detections: Detections,
                               tious: Sequence[float] = DEFAULT_TIOUS) -> np.ndarray:
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


def activitynet_average_precision(ground_truth: GroundTruth, detections: Detections,
                                  tious: Sequence[float] = DEFAULT_TIOUS) -> np.ndarray:
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
      ap[t, c] = _interpolated_ap(tp_all[t, idx], ctx.npos[c])
  return ap


def average_precision(ground_truth: GroundTruth, detections: Detections, protocol: str,
                      tious: Sequence[float] = DEFAULT_TIOUS) -> np.ndarray:
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
      raise ValueError(f"{detections.source}: labels must index the {num_classes} ground-truth "
                       "classes")
    self.classes = ground_truth.classes
    self.gt = ground_truth
    self.dets = detections
    self.npos = ground_truth.instances_per_class()
    # Codes are ranks in the sorted union of names, so ordering by code is ordering by name.
    m, a = len(ground_truth.video), len(ground_truth.ambiguous_video)
    names = np.concatenate([ground_truth.video, ground_truth.ambiguous_video, detections.video])
    _, codes = np.unique(names, return_inverse=True)
    self.num_codes = int(codes.max()) + 1 if codes.size else 1
    self.gt_code, self.amb_code, self.det_code = codes[:m], codes[m:m + a], codes[m + a:]

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
        yield g_order[g0:g1], d_order[d_start[pos]:d_start[pos] + d_count[pos]]

  def overlaps_ambiguous(self) -> np.ndarray:
    """(N,) whether each detection intersects an Ambiguous interval of its video."""
    out = np.zeros(len(self.dets), bool)
    for code in np.unique(self.amb_code):
      di = np.flatnonzero(self.det_code == code)
      if di.size:
        amb = self.gt.ambiguous_segment[self.amb_code == code]
        seg = self.dets.segment[di]
        inter = (np.minimum(amb[:, 1:2], seg[None, :, 1]) -
                 np.maximum(amb[:, 0:1], seg[None, :, 0]))
        out[di] = (inter > 0).any(axis=0)
    return out


def _non_interpolated_ap(tp: np.ndarray, npos: int) -> float:
  """Sum of precisions at the true positives over npos (TH14evalDet's ``prap``)."""
  if not tp.any():
    return 0.0
  precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
  return float(precision[tp].sum() / npos)


def _interpolated_ap(tp: np.ndarray, npos: int) -> float:
  """Area under the monotone precision envelope (ActivityNet's ``interpolated_prec_rec``)."""
  if not len(tp):
    return 0.0
  tp_cum = np.cumsum(tp)
  precision = tp_cum / np.arange(1, len(tp) + 1)
  recall = tp_cum / npos
  mprec = np.concatenate([[0.0], precision, [0.0]])
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mprec = np.maximum.accumulate(mprec[::-1])[::-1]
  idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
  return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _check_tious(tious: Sequence[float]) -> list[float]:
  tious = [float(t) for t in tious]
  if not tious or not all(0.0 <= t <= 1.0 for t in tious):
    raise ConfigError(f"tIoU thresholds must be a non-empty list of values in [0, 1], got {tious}")
  return tious


def _check_segment(segment: Any, source: str, key: str) -> list[float]:
  if (not isinstance(segment, (list, tuple)) or len(segment) != 2 or
      not all(_is_finite_number(t) for t in segment) or not segment[0] < segment[1]):
    raise AnnotationError(f"{source}: {key}: expected [t_start, t_end] (finite seconds, "
                          f"t_start < t_end), got {segment!r}")
  return [float(segment[0]), float(segment[1])]


def _is_finite_number(value: Any) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool) and
          math.isfinite(value))


def _numeric_column(path: pathlib.Path, linenos: list[int], values: Sequence[str], name: str,
                    kind: type) -> np.ndarray:
  """Parses one column at once; on failure finds the offending line for the message."""
  dtype = np.float64 if kind is float else np.int64
  try:
    column = np.fromiter(map(kind, values), dtype, count=len(values))
  except ValueError:
    column = None
  if column is not None and (kind is int or np.isfinite(column).all()):
    return column
  parsed_values = []
  for lineno, value in zip(linenos, values):
    try:
      parsed = kind(value)
    except ValueError:
      parsed = None
    if parsed is None or (kind is float and not math.isfinite(parsed)):
      what = "an integer" if kind is int else "a finite number"
      raise DetectionFileError(f"{path}:{lineno}: expected {name} to be {what}, got {value!r}")
    parsed_values.append(parsed)
  return np.array(parsed_values, dtype=dtype)


def _read_text(path: pathlib.Path) -> str:
  try:
    return path.read_text()
  except FileNotFoundError:
    raise DetectionFileError(f"{path}: detection file not found") from None
  except IsADirectoryError:
    raise DetectionFileError(f"{path}: expected a detection file, got a folder") from None
  except UnicodeDecodeError as e:
    raise DetectionFileError(f"{path}: expected a text file, cannot decode it ({e})") from None


def _strip_video_suffix(video: str) -> str:
  for suffix in _VIDEO_SUFFIXES:
    if video.endswith(suffix):
      return video[:-len(suffix)]
  return video
