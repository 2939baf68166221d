"""Detection files and temporal ground truth: the inputs of the temporal mAP protocols.

Readers of THUMOS14 text detections (``video t0 t1 class_id score``) and ActivityNet JSON
(``{"results": {video: [{"label", "score", "segment"}]}}``), and ground truth from a THUMOS14
annotation folder or an ``annotations.json`` in the project's dataset format. Pure NumPy;
malformed input raises :class:`DetectionFileError` / :class:`AnnotationError` naming the file,
line or key and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import json
import math
import numbers
import os
import pathlib
from typing import Any

import numpy as np

from segtube_jax.errors import AnnotationError, ConfigError, DatasetError, DetectionFileError

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
        f"{self.video.shape}, {self.label.shape}, {self.segment.shape}, {self.score.shape}"
      )

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
    object.__setattr__(
      self, "ambiguous_segment", _as_array(self.ambiguous_segment, np.float64, (2,))
    )

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


def _parse_thumos14_detections(text: str, path: pathlib.Path, classes: Sequence[str]) -> Detections:
  linenos, rows = [], []
  for lineno, line in enumerate(text.splitlines(), 1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 5:
      raise DetectionFileError(
        f"{path}:{lineno}: expected 'video_name t_start t_end class_id score' (5 fields), got "
        f"{len(fields)} fields: {line.strip()!r}"
      )
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
      f"{path}:{linenos[i]}: expected t_start <= t_end, got {start[i]:g} > {end[i]:g}"
    )
  bad = np.flatnonzero((class_id < 1) | (class_id > len(classes)))
  if bad.size:
    i = bad[0]
    raise DetectionFileError(
      f"{path}:{linenos[i]}: expected class_id in 1..{len(classes)} (detclasslist), got "
      f"{class_id[i]}"
    )
  if any(suffix in text for suffix in _VIDEO_SUFFIXES):  # rare: skip the per-row work
    videos = [_strip_video_suffix(v) for v in videos]
  return Detections(
    video=videos,
    label=class_id - 1,
    segment=np.stack([start, end], axis=1),
    score=score,
    source=str(path),
  )


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


def _parse_activitynet_detections(
  text: str, path: pathlib.Path, classes: Sequence[str]
) -> Detections:
  data = _load_json(text, path, DetectionFileError)
  if not isinstance(data, Mapping) or not isinstance(data.get("results"), Mapping):
    raise DetectionFileError(
      f"{path}: expected a JSON object with key 'results' mapping video ids to detection lists"
    )
  class_index = {name: i for i, name in enumerate(classes)}
  videos, labels, segments, scores = [], [], [], []
  for video, items in data["results"].items():
    key = f"results[{video!r}]"
    if not isinstance(items, list):
      raise DetectionFileError(
        f"{path}: {key}: expected a list of detections, got {type(items).__name__}"
      )
    for j, item in enumerate(items):
      item_key = f"{key}[{j}]"
      if not isinstance(item, Mapping):
        raise DetectionFileError(
          f"{path}: {item_key}: expected an object with 'label', 'score' "
          f"and 'segment', got {type(item).__name__}"
        )
      for name in ("label", "score", "segment"):
        if name not in item:
          raise DetectionFileError(f"{path}: {item_key}: missing key {name!r}")
      label, score, segment = item["label"], item["score"], item["segment"]
      if not isinstance(label, str) or label not in class_index:
        raise DetectionFileError(
          f"{path}: {item_key}['label']: expected one of the ground-truth classes, got {label!r}"
        )
      if not _is_finite_number(score):
        raise DetectionFileError(
          f"{path}: {item_key}['score']: expected a finite number, got {score!r}"
        )
      if (
        not isinstance(segment, list)
        or len(segment) != 2
        or not all(_is_finite_number(t) for t in segment)
        or segment[0] > segment[1]
      ):
        raise DetectionFileError(
          f"{path}: {item_key}['segment']: expected [t_start, t_end] (finite seconds, "
          f"t_start <= t_end), got {segment!r}"
        )
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


def ground_truth_from_dataset(
  dataset: Mapping[str, Any], subset: str = "testing", source: str = "<dataset>"
) -> GroundTruth:
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
  if (
    not isinstance(classes, list)
    or not classes
    or not all(isinstance(c, str) for c in classes)
    or len(set(classes)) != len(classes)
  ):
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
      raise DatasetError(
        f"{source}: {key}['subset']: expected one of {list(DATASET_SUBSETS)}, "
        f"got {info.get('subset')!r}"
      )
    if info["subset"] != subset:
      continue
    num_videos += 1
    annotations = info.get("annotations", [])
    if not isinstance(annotations, list):
      raise DatasetError(f"{source}: {key}['annotations']: expected a list")
    for j, ann in enumerate(annotations):
      ann_key = f"{key}['annotations'][{j}]"
      if not isinstance(ann, Mapping) or "label" not in ann or "segment" not in ann:
        raise AnnotationError(f"{source}: {ann_key}: expected an object with 'label' and 'segment'")
      if not isinstance(ann["label"], str) or ann["label"] not in class_index:
        raise AnnotationError(
          f"{source}: {ann_key}['label']: expected one of 'classes', got {ann['label']!r}"
        )
      videos.append(video)
      labels.append(class_index[ann["label"]])
      segments.append(_check_segment(ann["segment"], source, f"{ann_key}['segment']"))
    ambiguous = info.get("ambiguous")
    ambiguous = [] if ambiguous is None else ambiguous
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
      text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
      raise DatasetError(f"{path}: expected a dataset JSON file, cannot read it ({e})") from None
    dataset = _load_json(text, path, DatasetError, "expected a dataset JSON file, cannot parse it")
  else:
    raise DatasetError(
      f"{path}: ground truth not found; expected a THUMOS14 annotation folder "
      "or an annotations.json file"
    )
  return ground_truth_from_dataset(dataset, subset, source=str(path))


# ----------------------------------------------------------------------------------------
# Scoring.


def _check_segment(segment: Any, source: str, key: str) -> list[float]:
  if (
    not isinstance(segment, (list, tuple))
    or len(segment) != 2
    or not all(_is_finite_number(t) for t in segment)
    or not segment[0] < segment[1]
  ):
    raise AnnotationError(
      f"{source}: {key}: expected [t_start, t_end] (finite seconds, "
      f"t_start < t_end), got {segment!r}"
    )
  return [float(segment[0]), float(segment[1])]


def _is_finite_number(value: Any) -> bool:
  if not isinstance(value, numbers.Real) or isinstance(value, bool):
    return False
  try:
    return math.isfinite(value)
  except OverflowError:  # A JSON integer beyond the float range.
    return False


def _load_json(text: str, path: pathlib.Path, error: type[Exception], what: str = "") -> Any:
  """json.loads that refuses repeated keys (they would silently drop entries) with ``error``."""

  def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = {}
    for key, value in pairs:
      if key in out:
        raise error(f"{path}: duplicate key {key!r} in one JSON object; expected unique keys")
      out[key] = value
    return out

  try:
    return json.loads(text, object_pairs_hook=unique)
  except json.JSONDecodeError as e:
    if what:
      raise error(f"{path}: {what} (line {e.lineno}: {e.msg})") from None
    raise error(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
  except (ValueError, RecursionError) as e:  # Integers of thousands of digits; absurd nesting.
    raise error(f"{path}: {what or 'invalid JSON'} ({type(e).__name__}: {str(e)[:200]})") from None


def _numeric_column(
  path: pathlib.Path, linenos: list[int], values: Sequence[str], name: str, kind: type
) -> np.ndarray:
  """Parses one column at once; on failure finds the offending line for the message."""
  dtype = np.float64 if kind is float else np.int64
  try:
    column = np.fromiter(map(kind, values), dtype, count=len(values))
  except (ValueError, OverflowError):
    column = None
  if column is not None and (kind is int or np.isfinite(column).all()):
    return column
  parsed_values = []
  for lineno, value in zip(linenos, values):
    try:
      parsed = kind(value)
    except ValueError:
      parsed = None
    if (
      parsed is None
      or (kind is float and not math.isfinite(parsed))
      or (kind is int and not -(2**63) <= parsed < 2**63)
    ):
      what = "an integer" if kind is int else "a finite number"
      raise DetectionFileError(f"{path}:{lineno}: expected {name} to be {what}, got {value!r}")
    parsed_values.append(parsed)
  return np.array(parsed_values, dtype=dtype)


def _read_text(path: pathlib.Path) -> str:
  try:
    return path.read_text(encoding="utf-8")
  except FileNotFoundError:
    raise DetectionFileError(f"{path}: detection file not found") from None
  except IsADirectoryError:
    raise DetectionFileError(f"{path}: expected a detection file, got a folder") from None
  except UnicodeDecodeError as e:
    raise DetectionFileError(f"{path}: expected a text file, cannot decode it ({e})") from None
  except OSError as e:
    raise DetectionFileError(f"{path}: cannot read the detection file ({e.strerror})") from None


def _strip_video_suffix(video: str) -> str:
  for suffix in _VIDEO_SUFFIXES:
    if video.endswith(suffix):
      return video[: -len(suffix)]
  return video
