"""Figures of the evaluation report (PNG, matplotlib's Agg canvas).

Figures are drawn on ``matplotlib.figure.Figure`` objects with their own Agg canvas: no pyplot,
no display, no change of the global backend. Saving drops PNG metadata (software version), so
the same inputs give the same bytes; files are written under a temporary name and renamed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
import pathlib
import re
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from segtube_jax import io_utils

DPI = 110
_RC = {"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7}


def _figure(width: float, height: float) -> Figure:
  fig = Figure(figsize=(width, height), dpi=DPI)
  FigureCanvasAgg(fig)
  return fig


def _save(fig: Figure, path: pathlib.Path, rect: tuple[float, ...] = (0, 0, 1, 1)) -> None:
  fig.tight_layout(rect=rect)
  with io_utils.atomic_writer(path, "wb", what="report figure") as f:
    # No Software/date metadata: the same inputs give the same bytes.
    # bbox "tight" keeps legends placed outside the axes inside the image.
    fig.savefig(
      f, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.05
    )


def _color(i: int) -> tuple:
  # tab10 for the usual <= 10 classes; tab20 (repeating) beyond.
  return matplotlib.colormaps["tab10"](i) if i < 10 else matplotlib.colormaps["tab20"](i % 20)


def as_float(x: Any) -> float:
  """float(x), NaN for None (missing scores)."""
  return float("nan") if x is None else float(x)


def _plot_ap_bars(
  path: pathlib.Path, per_class_ap: Mapping[str, float | None], tiou: float
) -> None:
  names = list(per_class_ap)
  values = np.array([as_float(per_class_ap[n]) for n in names]) * 100
  fig = _figure(max(5.0, 0.45 * len(names) + 1.5), 3.6)
  ax = fig.add_subplot()
  x = np.arange(len(names))
  ax.bar(x, np.nan_to_num(values), color=[_color(i) for i in range(len(names))])
  for xi, v in zip(x, values):
    ax.text(
      xi,
      0 if np.isnan(v) else v,
      "n/a" if np.isnan(v) else f"{v:.1f}",
      ha="center",
      va="bottom",
      fontsize=6,
    )
  if np.isfinite(values).any():
    mean = np.nanmean(values)
    ax.axhline(mean, color="k", ls="--", lw=1, label=f"mAP = {mean:.1f}%")
    ax.legend(loc="upper right")
  ax.set_xticks(x, names, rotation=45, ha="right")
  ax.set_ylim(0, 105)
  ax.set_ylabel("AP (%)")
  ax.set_title(f"Per-class AP at tIoU {tiou:g}")
  _save(fig, path)


def _plot_pr_curves(
  path: pathlib.Path,
  curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
  per_class_ap: Mapping[str, float | None],
  tiou: float,
) -> None:
  fig = _figure(7.0, 4.2)
  ax = fig.add_subplot()
  for i, (name, (precision, recall)) in enumerate(curves.items()):
    precision, recall = np.asarray(precision, float), np.asarray(recall, float)
    ap = per_class_ap.get(name)
    label = name if ap is None or math.isnan(ap) else f"{name} (AP {100 * ap:.1f})"
    if precision.size:
      ax.plot(recall, precision, color=_color(i), lw=1.2, marker=".", ms=4, label=label)
    else:
      ax.plot([], [], color=_color(i), label=f"{name} (no detections)")
  ax.set_xlim(-0.02, 1.02)
  ax.set_ylim(-0.02, 1.04)
  ax.set_xlabel("recall")
  ax.set_ylabel("precision")
  ax.set_title(f"Precision-recall per class at tIoU {tiou:g}")
  ax.grid(alpha=0.3)
  ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 if len(curves) <= 16 else 2)
  _save(fig, path)


def check_alpha_example(ex: Mapping[str, Any]) -> np.ndarray:
  """Returns the example's alpha as float [T, K]; ValueError unless K matches its classes."""
  alpha = np.asarray(ex["alpha"], float)
  if alpha.ndim != 2 or alpha.shape[1] != len(ex["classes"]):
    raise ValueError(
      f"alpha example {ex.get('video_id')!r}: expected alpha [T, K] with K = "
      f"{len(ex['classes'])} classes, got shape {alpha.shape}"
    )
  return alpha


def _plot_alpha(path: pathlib.Path, ex: Mapping[str, Any], max_lines: int = 6) -> None:
  alpha, classes = check_alpha_example(ex), list(ex["classes"])
  gt_segments = [tuple(s) for s in ex.get("gt_segments", ())]
  det_segments = [(d.label, d.start_frame, d.end_frame) for d in ex.get("detections", ())]
  # Classes present in the video first, then the highest-scoring others.
  wanted = [s[0] for s in gt_segments + det_segments]
  shown = list(dict.fromkeys(classes.index(n) for n in wanted if n in classes))
  for k in np.argsort(-alpha.max(axis=0), kind="stable") if alpha.size else []:
    if len(shown) >= max_lines:
      break
    if int(k) not in shown:
      shown.append(int(k))
  fig = _figure(8.0, 3.8)
  ax, lanes = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
  t = np.arange(alpha.shape[0])
  for k in shown:
    ax.plot(t, alpha[:, k], color=_color(k), lw=1.1, label=classes[k])
  ax.axhline(ex["gamma"], color="k", ls="--", lw=1, label=f"γ = {ex['gamma']:g}")
  for j, (_, fs, fe) in enumerate(gt_segments):
    ax.axvspan(fs, fe, color="tab:green", alpha=0.15, lw=0, label=None if j else "ground truth")
  ax.set_ylim(0, max(1.05, float(alpha.max(initial=0)) + 0.05))
  ax.set_ylabel("α_t")
  ax.set_title(f"{ex['video_id']}: per-frame action score α_t")
  ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
  for lane, segments in ((1, gt_segments), (0, det_segments)):
    for label, fs, fe in segments:
      k = classes.index(label) if label in classes else 0
      lanes.broken_barh([(fs, fe - fs)], (lane - 0.35, 0.7), color=_color(k), alpha=0.8)
  lanes.set_yticks([0, 1], ["detected", "ground truth"])
  lanes.set_ylim(-0.6, 1.6)
  lanes.set_xlim(0, max(1, alpha.shape[0]))
  lanes.set_xlabel("frame")
  _save(fig, path)


def check_overlay_example(ex: Mapping[str, Any]) -> None:
  """ValueError unless frames, masks, gt_masks and frame_ids of the example agree."""
  frames, masks = np.asarray(ex["frames"]), np.asarray(ex["masks"])
  gt = ex.get("gt_masks")
  n = len(ex["frame_ids"])
  ok = (
    frames.dtype == np.uint8
    and frames.ndim == 4
    and frames.shape[3] == 3
    and masks.shape == frames.shape[:3]
    and len(frames) == n
    and (gt is None or np.asarray(gt).shape == masks.shape)
  )
  if not ok or not n:
    raise ValueError(
      f"overlay example {ex.get('video_id')!r}: expected frames uint8 [N,H,W,3], masks and "
      f"gt_masks [N,H,W], N = len(frame_ids) >= 1; got frames {frames.dtype} {frames.shape}, "
      f"masks {masks.shape}, gt_masks {None if gt is None else np.asarray(gt).shape}, "
      f"{n} frame ids"
    )


def _contour(mask: np.ndarray) -> np.ndarray:
  # Padding makes masks that touch the image border get a visible edge there too.
  edge = find_boundaries(np.pad(np.asarray(mask, bool), 1), mode="inner")[1:-1, 1:-1]
  return ndimage.binary_dilation(edge) if min(mask.shape) >= 160 else edge


def overlay_contours(
  frame: np.ndarray, mask: np.ndarray, gt_mask: np.ndarray | None = None
) -> np.ndarray:
  """RGB uint8 frame with the ground truth's contour in green, then the prediction's in red."""
  out = np.array(frame, np.uint8, copy=True)
  if gt_mask is not None:
    out[_contour(gt_mask)] = (0, 255, 0)
  out[_contour(mask)] = (255, 0, 0)
  return out


def _plot_overlay(path: pathlib.Path, ex: Mapping[str, Any], max_frames: int) -> None:
  frames, masks = np.asarray(ex["frames"]), np.asarray(ex["masks"], bool)
  gt = ex.get("gt_masks")
  pick = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
  pick = np.unique(pick)
  h, w = frames.shape[1:3]
  fig = _figure(1.9 * len(pick), 1.9 * h / w + 0.75)
  axes = np.atleast_1d(fig.subplots(1, len(pick)))
  for ax, i in zip(axes, pick):
    gt_i = None if gt is None else np.asarray(gt[i], bool)
    ax.imshow(overlay_contours(frames[i], masks[i], gt_i), interpolation="nearest")
    ax.set_title(f"frame {ex['frame_ids'][i]}")
    ax.axis("off")
  handles = [Patch(color="red", label="prediction")]
  if gt is not None:
    handles.append(Patch(color="lime", label="ground truth"))
  fig.suptitle(f"{ex['video_id']} ({ex['label']})")
  fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
  _save(fig, path, rect=(0, 0.08, 1, 1))


def _plot_iterations(path: pathlib.Path, iterations: Sequence[Mapping[str, Any]]) -> None:
  it = [r["iteration"] for r in iterations]
  fig = _figure(8.0, 3.2)
  ax, ax2 = fig.subplots(1, 2)
  for key, name in (
    ("map_at_05", "mAP@0.5"),
    ("mask_iou", "mask IoU"),
    ("mask_change", "mask change (IoU with previous)"),
  ):
    pts = [(i, 100 * r[key]) for i, r in zip(it, iterations) if r.get(key) is not None]
    if pts:
      ax.plot(*zip(*pts), marker="o", label=name)
  ax.set_ylim(0, 105)
  ax.set_xlabel("iteration")
  ax.set_ylabel("%")
  ax.set_title("Quality per iteration")
  if ax.get_legend_handles_labels()[0]:
    ax.legend(loc="lower right")
  ax2.bar(it, [r.get("num_segments") or 0 for r in iterations], color="tab:gray")
  ax2.set_xlabel("iteration")
  ax2.set_ylabel("detected segments")
  ax2.set_title("Segments and time per iteration")
  secs = [(i, r["seconds"]) for i, r in zip(it, iterations) if r.get("seconds") is not None]
  if secs:
    twin = ax2.twinx()
    twin.plot(*zip(*secs), color="tab:red", marker="s")
    twin.set_ylim(0, 1.1 * max(s for _, s in secs) + 1e-9)
    twin.set_ylabel("seconds", color="tab:red")
  for a in (ax, ax2):
    a.set_xticks(it)
  _save(fig, path)


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:60]


def draw_figures(
  fig_dir: pathlib.Path,
  per_class_ap: Mapping[str, float | None],
  curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
  alpha_examples: Sequence[Mapping[str, Any]],
  overlay_examples: Sequence[Mapping[str, Any]],
  iterations: Sequence[Mapping[str, Any]],
  tiou: float,
  max_overlay_frames: int,
) -> list[tuple[str, str]]:
  """Writes the report's figures into ``fig_dir`` (which must exist).

  Arguments are those of :func:`segtube_jax.evaluation.report.write_report`; a figure whose
  input is empty is skipped.

  Returns:
    (file name, one-line caption) of each figure written, in report order.
  """
  figures = []
  with matplotlib.rc_context(_RC):
    if per_class_ap:
      _plot_ap_bars(fig_dir / "ap_per_class.png", per_class_ap, tiou)
      figures.append(
        ("ap_per_class.png", f"Per-class AP at tIoU {tiou:g} (cf. paper Fig. 3); dashed line: mAP.")
      )
    if curves:
      _plot_pr_curves(fig_dir / "pr_curves.png", curves, per_class_ap, tiou)
      figures.append(("pr_curves.png", f"Precision-recall curves per class at tIoU {tiou:g}."))
    for i, ex in enumerate(alpha_examples):
      name = f"alpha_{i:02d}_{_slug(ex['video_id'])}.png"
      _plot_alpha(fig_dir / name, ex)
      figures.append(
        (
          name,
          f"Per-frame action score α_t of `{ex['video_id']}` with γ = "
          f"{ex['gamma']:g}; shaded: ground truth; bottom: ground-truth and detected "
          "segments.",
        )
      )
    for i, ex in enumerate(overlay_examples):
      name = f"overlay_{i:02d}_{_slug(ex['video_id'])}.png"
      _plot_overlay(fig_dir / name, ex, max_overlay_frames)
      gt_text = ", green: ground truth" if ex.get("gt_masks") is not None else ""
      figures.append(
        (
          name,
          f"Masks on `{ex['video_id']}` ({ex['label']}); red: prediction"
          f"{gt_text} (cf. paper Fig. 4).",
        )
      )
    if iterations:
      _plot_iterations(fig_dir / "iterations.png", iterations)
      figures.append(
        (
          "iterations.png",
          "Quality, detected segments and time per iteration of the alternating optimization.",
        )
      )
  return figures
