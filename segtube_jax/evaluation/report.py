"""Evaluation report: ``report.md`` with headline tables, per-class tables and PNG figures.

Figures (``figures/``, drawn by :mod:`.report_figures`; no display, deterministic bytes):
per-class AP bars (the paper's Fig. 3), precision-recall curves, per-frame action scores
alpha_t with the gamma threshold, ground-truth and detected segments, mask overlays on a
strip of frames (red: prediction, green: ground truth; the paper's Fig. 4) and quality per
iteration of the alternating loop.

``metrics`` may hold any of (each optional):

* ``"temporal"``: the dict of :func:`.score_detections.score_detection_file` (``tiou``,
  ``mAP``, ``AP_per_class``, ``protocol``); also accepted at the top level.
* ``"segmentation"``: the dict of :func:`.segmentation_metrics.evaluate_mask_folders`.
* ``"spatiotemporal"``: the dict of :func:`.spatiotemporal.video_map`.
* ``"timings"``: ``{stage: seconds}``.
* other top-level numbers or strings, listed under "Run".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
import os
import pathlib
from typing import Any

import numpy as np

from segtube_jax import io_utils
from segtube_jax.evaluation import report_figures, temporal_map

PathLike = str | os.PathLike
_SECTIONS = ("temporal", "segmentation", "spatiotemporal", "timings")


# Precision-recall curves: temporal_map scores AP but exposes no curves, so these redo its
# ActivityNet matching.


def precision_recall(
  ground_truth: temporal_map.GroundTruth,
  detections: temporal_map.Detections,
  class_index: int,
  tiou: float,
) -> tuple[np.ndarray, np.ndarray]:
  """Precision and recall after each ranked detection of one class, ActivityNet rules.

  Matching is that of :func:`temporal_map.activitynet_average_precision` (descending score,
  stable; best unmatched instance of the video with tIoU >= ``tiou``, the later one on ties),
  so the interpolated area under this curve is its AP.

  Returns:
    (precision, recall), float [N] each for the N detections of the class; recall is 0
    when the class has no ground truth.
  """
  idx = np.flatnonzero(detections.label == class_index)
  order = idx[np.argsort(-detections.score[idx], kind="stable")]
  gt_idx = np.flatnonzero(ground_truth.label == class_index)
  by_video: dict[str, np.ndarray] = {}
  for video in np.unique(ground_truth.video[gt_idx]):
    by_video[video] = gt_idx[ground_truth.video[gt_idx] == video]
  locked = {video: np.zeros(len(g), bool) for video, g in by_video.items()}
  tp = np.zeros(len(order), bool)
  for rank, d in enumerate(order):
    g = by_video.get(detections.video[d])
    if g is None:
      continue
    iou = temporal_map.iou_matrix(detections.segment[d : d + 1], ground_truth.segment[g], "sum")[0]
    iou = np.where(locked[detections.video[d]], -1.0, iou)
    j = len(g) - 1 - int(iou[::-1].argmax())  # last maximum, as ActivityNet's reversed argsort
    if iou[j] >= tiou:
      locked[detections.video[d]][j] = True
      tp[rank] = True
  hits = np.cumsum(tp)
  precision = hits / np.arange(1, len(tp) + 1)
  recall = hits / len(gt_idx) if len(gt_idx) else np.zeros(len(tp))
  return precision, recall


def pr_curves(
  ground_truth: temporal_map.GroundTruth, detections: temporal_map.Detections, tiou: float = 0.5
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """class name -> (precision, recall) for every class with ground truth."""
  npos = ground_truth.instances_per_class()
  return {
    name: precision_recall(ground_truth, detections, c, tiou)
    for c, name in enumerate(ground_truth.classes)
    if npos[c]
  }


def _pct(x: Any) -> str:
  return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):.2f}"


def _cell(text: Any) -> str:
  return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
  return [
    "| " + " | ".join(map(_cell, header)) + " |",
    "|" + "---|" * len(header),
    *["| " + " | ".join(map(_cell, r)) + " |" for r in rows],
    "",
  ]


def _headline(
  metrics: Mapping[str, Any],
  temporal: Mapping[str, Any],
  per_class_ap: Mapping[str, float | None],
  tiou: float,
) -> list[tuple[str, str]]:
  rows = []
  protocol = f" ({temporal['protocol']})" if temporal.get("protocol") else ""
  for t, m in zip(temporal.get("tiou", ()), temporal.get("mAP", ())):
    rows.append((f"mAP @ tIoU {t:g}{protocol}", _pct(m)))
  if not temporal and per_class_ap:
    values = [v for v in map(report_figures.as_float, per_class_ap.values()) if not math.isnan(v)]
    rows.append((f"mAP @ tIoU {tiou:g}", _pct(float(np.mean(values)) if values else None)))
  seg_mean = (metrics.get("segmentation") or {}).get("mean", {})
  for key, name in (("iou", "Mask IoU"), ("J", "Mask J (DAVIS)"), ("F", "Mask F (DAVIS)")):
    if key in seg_mean:
      rows.append((name, _pct(seg_mean[key])))
  st = metrics.get("spatiotemporal") or {}
  for t, m in zip(st.get("thresholds", ()), st.get("mAP", ())):
    rows.append((f"video-mAP @ ST-IoU {t:g}", _pct(m)))
  for stage, seconds in (metrics.get("timings") or {}).items():
    rows.append((f"Time: {stage} (s)", f"{float(seconds):.1f}"))
  return rows


def _per_class_tables(
  metrics: Mapping[str, Any],
  temporal: Mapping[str, Any],
  per_class_ap: Mapping[str, float | None],
  curves: Mapping[str, Any],
  tiou: float,
) -> list[str]:
  lines = []
  ap_table = temporal.get("AP_per_class", {})
  keys = list(ap_table)
  extra = [f"{tiou:g}"] if per_class_ap and f"{tiou:g}" not in keys else []
  classes = list(dict.fromkeys([*temporal.get("classes", ()), *per_class_ap, *curves]))
  if classes:
    rows = [
      [c] + [_pct(ap_table[k].get(c)) for k in keys] + [_pct(per_class_ap.get(c))] * len(extra)
      for c in classes
    ]
    header = ["Class"] + [f"tIoU {k}" for k in keys + extra]
    lines += ["### Temporal AP (%)", ""] + _table(header, rows)
  seg = metrics.get("segmentation") or {}
  if seg.get("per_class"):
    rows = [
      [c, _pct(v.get("iou")), _pct(v.get("J")), _pct(v.get("F")), v.get("videos", "")]
      for c, v in seg["per_class"].items()
    ]
    lines += ["### Mask quality (%)", ""] + _table(("Class", "IoU", "J", "F", "Videos"), rows)
  st = metrics.get("spatiotemporal") or {}
  if st.get("classes"):
    keys = list(st.get("AP_per_class", {}))
    rows = [
      [c] + [_pct(st["AP_per_class"][k].get(c)) for k in keys] + [st.get("num_gt", {}).get(c, "")]
      for c in st["classes"]
    ]
    lines += ["### video-mAP: AP per ST-IoU (%)", ""] + _table(
      ["Class"] + [f"ST-IoU {k}" for k in keys] + ["Instances"], rows
    )
  return lines


def write_report(
  out_dir: PathLike,
  *,
  metrics: Mapping[str, Any],
  per_class_ap: Mapping[str, float | None] | None = None,
  # pylint: disable-next=redefined-outer-name
  pr_curves: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
  alpha_examples: Sequence[Mapping[str, Any]] = (),
  overlay_examples: Sequence[Mapping[str, Any]] = (),
  iterations: Sequence[Mapping[str, Any]] = (),
  tiou: float = 0.5,
  max_overlay_frames: int = 8,
  title: str = "Segment-tube evaluation report",
) -> pathlib.Path:
  """Writes ``out_dir/report.md`` and its figures under ``out_dir/figures/``.

  Args:
    out_dir: output folder (created).
    metrics: see the module docstring.
    per_class_ap: class -> AP (fraction or None) at tIoU ``tiou``, for the bar chart.
    pr_curves: class -> (precision, recall) at tIoU ``tiou`` (see :func:`pr_curves`).
    alpha_examples: dicts with ``video_id``, ``alpha`` [T, K], ``classes`` (K names),
      ``gamma``, ``gt_segments`` [(label, f_s, f_e)], ``detections`` [DetectedSegment].
    overlay_examples: dicts with ``video_id``, ``frames`` uint8 [N,H,W,3], ``masks`` bool
      [N,H,W], ``gt_masks`` bool [N,H,W] or None, ``frame_ids`` (N ints), ``label``.
    iterations: dicts with ``iteration``, ``num_segments``, ``mask_change``, ``seconds``,
      ``map_at_05``, ``mask_iou`` (fractions or None) of the alternating loop.
    tiou: the tIoU of ``per_class_ap`` and ``pr_curves``, for captions.
    max_overlay_frames: frames per overlay strip (evenly spaced).
    title: the report's heading.

  Returns:
    The path of report.md. It is written last and atomically: on an error no partial
    report.md exists (a previous one is kept); figures written before the error remain.

  Raises:
    ValueError: an example has inconsistent shapes (raised before anything is written).
    OutputError: ``out_dir`` or a file in it cannot be written (permissions, full disk).
  """
  for ex in alpha_examples:
    report_figures.check_alpha_example(ex)
  for ex in overlay_examples:
    report_figures.check_overlay_example(ex)
  out = pathlib.Path(out_dir)
  io_utils.ensure_writable_dir(out / "figures", "report folder")
  per_class_ap, curves = dict(per_class_ap or {}), dict(pr_curves or {})
  temporal = metrics.get("temporal") or (metrics if {"tiou", "mAP"} <= set(metrics) else {})
  figures = report_figures.draw_figures(
    out / "figures",
    per_class_ap,
    curves,
    alpha_examples,
    overlay_examples,
    iterations,
    tiou,
    max_overlay_frames,
  )

  rows = _headline(metrics, temporal, per_class_ap, tiou)
  lines = [f"# {title}", "", "## Headline", "", "Scores in %; means over classes.", ""]
  lines += _table(("Metric", "Value"), rows) if rows else ["No scores given.", ""]
  run = [
    (k, v)
    for k, v in metrics.items()
    if k not in _SECTIONS and isinstance(v, (str, int, float)) and not isinstance(v, bool)
  ]
  if run:
    lines += ["### Run", ""] + _table(("Key", "Value"), run)
  lines += _figure_section(figures)
  lines += ["## Per-class results", ""]
  lines += _per_class_tables(metrics, temporal, per_class_ap, curves, tiou)
  lines += _iteration_section(iterations)
  path = out / "report.md"
  io_utils.write_text_atomic(path, "\n".join(lines).rstrip() + "\n", what="report")
  return path


def _figure_section(figures: Sequence[tuple[str, str]]) -> list[str]:
  """The report's "Figures" section (empty when there are no figures)."""
  lines = []
  if figures:
    lines += ["## Figures", ""]
    for i, (name, caption) in enumerate(figures, 1):
      lines += [f"![{_cell(caption)}](figures/{name})", "", f"*Fig. {i}: {caption}*", ""]
  return lines


def _iteration_section(iterations: Sequence[Mapping[str, Any]]) -> list[str]:
  """The report's "Alternating optimization" table (empty when there are no iterations)."""
  if not iterations:
    return []
  rows = [
    [
      r["iteration"],
      r.get("num_segments", ""),
      _pct(r.get("mask_change")),
      "n/a" if r.get("seconds") is None else f"{r['seconds']:.1f}",
      _pct(r.get("map_at_05")),
      _pct(r.get("mask_iou")),
    ]
    for r in iterations
  ]
  header = ("Iteration", "Segments", "Mask change (%)", "Seconds", "mAP@0.5 (%)", "Mask IoU (%)")
  return ["## Alternating optimization", ""] + _table(header, rows)
