"""Writers of temporal detections: ActivityNet JSON and THUMOS14 text.

The files are the ones :mod:`segtube_jax.evaluation.detection_files` reads, so a written file
scores with ``evaluate.py`` or the official tools:

* ActivityNet: ``{"version": "segtube-jax", "results": {video_id: [{"label", "score",
  "segment": [t0, t1]}]}, "external_data": {}}``, times in seconds.
* THUMOS14: one line ``video t0 t1 class_id score`` per detection, where ``class_id`` k is
  ``classes[k - 1]`` (1-based position in the class list, as ``detclasslist.txt`` and
  :func:`~segtube_jax.evaluation.detection_files.read_thumos14_detections` number classes;
  not the official THUMOS ids such as 7 = BaseballPitch).

Floats are written with ``repr`` (shortest round-trip form), so reading a file back gives the
exact values. Files are written under a temporary name in the target folder, fsynced, then
renamed (:mod:`segtube_jax.io_utils`), so an interrupted write never leaves a partial file under
the final name; a write that fails raises :class:`~segtube_jax.errors.OutputError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import os

import numpy as np

from segtube_jax import io_utils
from segtube_jax.evaluation import detection_files
from segtube_jax.types import DetectedSegment

PathLike = str | os.PathLike
ACTIVITYNET_VERSION = "segtube-jax"


Results = Mapping[str, Sequence[DetectedSegment]]


def write_text_atomic(path: PathLike, text: str) -> None:
  """Writes text atomically: :func:`segtube_jax.io_utils.write_text_atomic` (kept for callers).

  Raises:
    OutputError: the file cannot be written; a file already at ``path`` is left untouched.
  """
  io_utils.write_text_atomic(path, text, what="detection file")


def activitynet_results(results: Results) -> dict:
  """The ActivityNet JSON structure of ``results`` (videos and detections in input order)."""
  out = {}
  for video, dets in results.items():
    out[str(video)] = [
      {"label": d.label, "score": float(d.score), "segment": [float(d.t0), float(d.t1)]}
      for d in dets
    ]
  return {"version": ACTIVITYNET_VERSION, "results": out, "external_data": {}}


def write_activitynet_json(results: Results, path: PathLike) -> None:
  """Writes detections as an ActivityNet JSON file, atomically.

  Args:
    results: video id -> its detections. A video with no detections is written with an
      empty list.
    path: the JSON file; its folder is created.
  """
  io_utils.write_json_atomic(path, activitynet_results(results), what="detection file")


def thumos14_lines(results: Results, classes: Sequence[str]) -> list[str]:
  """The lines of a THUMOS14 detection file (no newlines), in input order.

  Raises:
    ValueError: a label is not in ``classes``, disagrees with its ``class_index``, or a video
      id contains whitespace (the format is whitespace-separated).
  """
  class_id = {name: k for k, name in enumerate(classes, 1)}
  lines = []
  for video, dets in results.items():
    video = str(video)
    if not video or any(c.isspace() for c in video):
      raise ValueError(
        f"THUMOS14 detections: video id {video!r} must be non-empty without whitespace"
      )
    for d in dets:
      if d.label not in class_id:
        raise ValueError(
          f"THUMOS14 detections: video {video!r}: label {d.label!r} is not one "
          f"of the {len(classes)} classes"
        )
      if class_id[d.label] != d.class_index + 1:
        raise ValueError(
          f"THUMOS14 detections: video {video!r}: label {d.label!r} is class {class_id[d.label]}"
          f" (1-based) of the given classes, but class_index is {d.class_index} (0-based); "
          "were the detections made with another class list?"
        )
      lines.append(
        f"{video} {float(d.t0)!r} {float(d.t1)!r} {class_id[d.label]} {float(d.score)!r}"
      )
  return lines


def write_thumos14_txt(results: Results, path: PathLike, classes: Sequence[str]) -> None:
  """Writes detections as a THUMOS14 text file, atomically.

  Args:
    results: video id -> its detections.
    path: the text file; its folder is created.
    classes: the class list whose 1-based positions are the written ``class_id``s (the
      dataset's classes; for THUMOS14, the order of ``detclasslist.txt``).

  Raises:
    ValueError: see :func:`thumos14_lines`; nothing is written then.
  """
  lines = thumos14_lines(results, classes)
  write_text_atomic(path, "".join(line + "\n" for line in lines))


def as_detections(
  results: Results, classes: Sequence[str], source: str = "<results>"
) -> detection_files.Detections:
  """The in-memory :class:`~segtube_jax.evaluation.detection_files.Detections` of ``results``,
  equal to what reading a written file gives (for scoring without a file).

  Raises:
    ValueError: a label is not in ``classes``.
  """
  index = {name: i for i, name in enumerate(classes)}
  videos, labels, segments, scores = [], [], [], []
  for video, dets in results.items():
    for d in dets:
      if d.label not in index:
        raise ValueError(f"{source}: video {video!r}: label {d.label!r} is not one of the classes")
      videos.append(str(video))
      labels.append(index[d.label])
      segments.append([d.t0, d.t1])
      scores.append(d.score)
  return detection_files.Detections(
    videos, np.asarray(labels, np.int64), segments, scores, source=source
  )
