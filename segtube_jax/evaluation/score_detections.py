"""Scores a detection file against ground truth: metrics dict, table and metrics.json.

The metrics dict follows the layout of ``thumos14/scnn_c3d_detections/expected_map.json``::

  {"protocol": "thumos14", "detections": ..., "ground_truth": ..., "subset": "testing",
   "tiou": [0.1, ...], "classes": [...], "mAP": [m_0.1, ...],
   "AP_per_class": {"0.1": {"ClassName": ap, ...}, ...}, "num_classes_averaged": 20}

APs are fractions in [0, 1]; a class without ground truth has AP ``None`` and is left out
of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import pathlib
import sys
from typing import Any, TextIO

import numpy as np

from segtube_jax import io_utils
from segtube_jax.errors import ConfigError, OutputError
from segtube_jax.evaluation import temporal_map

PathLike = str | os.PathLike


def tiou_key(tiou: float) -> str:
  """Key of a threshold in ``AP_per_class`` (``0.1`` -> ``"0.1"``)."""
  return f"{tiou:g}"


def score_detection_file(
  detections: PathLike | temporal_map.Detections,
  ground_truth: PathLike | temporal_map.GroundTruth,
  protocol: str = "thumos14",
  tious: Sequence[float] = temporal_map.DEFAULT_TIOUS,
  subset: str = "testing",
) -> dict[str, Any]:
  """Scores detections against ground truth under one protocol and several thresholds.

  Args:
    detections: a detection file (THUMOS14 text or ActivityNet JSON) or loaded
      :class:`~segtube_jax.evaluation.temporal_map.Detections`.
    ground_truth: a THUMOS14 annotation folder, an annotations.json, or a loaded
      :class:`~segtube_jax.evaluation.temporal_map.GroundTruth`.
    protocol: ``"thumos14"`` (official TH14evalDet rules) or ``"activitynet"``.
    tious: overlap thresholds.
    subset: subset of the ground truth to score against, when it is loaded from a path.

  Returns:
    The metrics dict described in the module docstring.

  Raises:
    ConfigError: unknown protocol or bad thresholds.
    DetectionFileError, DatasetError, AnnotationError: unreadable inputs.
  """
  if protocol not in temporal_map.PROTOCOLS:
    raise ConfigError(
      f"unknown protocol {protocol!r}; expected one of {list(temporal_map.PROTOCOLS)}"
    )
  if not isinstance(ground_truth, temporal_map.GroundTruth):
    ground_truth = temporal_map.load_ground_truth(ground_truth, subset)
  if not isinstance(detections, temporal_map.Detections):
    detections = temporal_map.read_detections(detections, ground_truth.classes)
  tious = [float(t) for t in tious]
  ap = temporal_map.average_precision(ground_truth, detections, protocol, tious)
  mean_ap = temporal_map.mean_average_precision(ap)
  return {
    "protocol": protocol,
    "detections": detections.source,
    "ground_truth": ground_truth.source,
    "subset": subset,
    "tiou": tious,
    "classes": list(ground_truth.classes),
    "mAP": [_json_float(m) for m in mean_ap],
    "AP_per_class": {
      tiou_key(t): {name: _json_float(ap[i, c]) for c, name in enumerate(ground_truth.classes)}
      for i, t in enumerate(tious)
    },
    "num_classes_averaged": int((~np.isnan(ap).all(axis=0)).sum()),
  }


def format_metrics_table(metrics: dict[str, Any]) -> str:
  """A fixed-width table: one row per class, one column per threshold, AP in percent."""
  keys = [tiou_key(t) for t in metrics["tiou"]]
  width = max([len("mAP")] + [len(c) for c in metrics["classes"]])
  header = f"{'AP (%)':<{width}}" + "".join(f"{'tIoU ' + k:>11}" for k in keys)
  rule = "-" * len(header)
  lines = [f"protocol: {metrics['protocol']}   detections: {metrics['detections']}", header, rule]
  for name in metrics["classes"]:
    values = [metrics["AP_per_class"][k][name] for k in keys]
    lines.append(f"{name:<{width}}" + "".join(_percent(v) for v in values))
  lines.append(rule)
  lines.append(f"{'mAP':<{width}}" + "".join(_percent(v) for v in metrics["mAP"]))
  return "\n".join(lines)


def write_metrics(metrics: dict[str, Any], path: PathLike) -> None:
  """Writes the metrics as JSON atomically (temp file in the same folder + os.replace).

  Raises:
    OutputError: the file cannot be written; a file already at ``path`` is left untouched.
  """
  io_utils.write_json_atomic(path, metrics, what="metrics file")


def run_scoring(
  detections: PathLike,
  ground_truth: PathLike,
  protocol: str = "thumos14",
  tious: Sequence[float] = temporal_map.DEFAULT_TIOUS,
  subset: str = "testing",
  out: PathLike | None = None,
  stream: TextIO | None = None,
) -> dict[str, Any]:
  """Scores a file, prints the table to ``stream`` (stdout) and writes ``out`` if given.

  This is the whole scoring mode of ``evaluate.py``.

  Raises:
    OutputError: ``out`` is a folder or cannot be written (its folder is checked first).
  """
  if out:
    out_path = pathlib.Path(out)
    if out_path.is_dir():
      raise OutputError(
        f"--out {out} is a folder; expected a file name such as {out_path / 'metrics.json'}"
      )
    io_utils.ensure_writable_dir(out_path.parent, "folder of --out")
  metrics = score_detection_file(detections, ground_truth, protocol, tious, subset)
  stream = stream or sys.stdout
  print(format_metrics_table(metrics), file=stream)
  if out:
    write_metrics(metrics, out)
    print(f"wrote {out}", file=stream)
  return metrics


def _json_float(value: float) -> float | None:
  return None if np.isnan(value) else float(value)


def _percent(value: float | None) -> str:
  return f"{'n/a':>11}" if value is None else f"{100.0 * value:>11.2f}"
