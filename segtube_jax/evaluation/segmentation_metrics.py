"""Mask quality of predicted masks against ground truth (the paper's Table 3).

Masks are folders of numbered PNGs, ``<dir>/<video_id>/<frame>.png`` (0 background, > 0
action), as the dataset's ``masks/`` folder and the segmentation stage write them. File names
are parsed as frame numbers, so ``000012.png`` (dataset, 6 digits) and ``00012.png`` (the
segmentation stage on a video file, 5 digits) are the same frame.

Only frames with a ground-truth mask are evaluated; a ground-truth frame without a predicted
mask counts as an empty prediction (IoU 0, unless the ground truth is empty too). Predicted
masks on frames without ground truth are not scored here (the spatio-temporal metric of
:mod:`segtube_jax.evaluation.spatiotemporal` judges the temporal extent).

Scores per video, then per class (mean over its videos), then overall (mean over classes, as
the "Average" row of Table 3):

* ``iou``: mean per-frame IoU over all ground-truth frames of the video.
* ``J``: the same per-frame IoU averaged as DAVIS 2016 does, leaving out the first and last
  ground-truth frame of the video (when it has more than two).
* ``F``: the DAVIS boundary F-measure, averaged like ``J``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import dataclasses
import math
import os
import pathlib

import numpy as np

from segtube_jax.data import video as video_lib
from segtube_jax.errors import DatasetError, SegmentationError, VideoError
from segtube_jax.evaluation import masks as masks_lib

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class FrameScores:
  """Per-frame scores of one video over its ground-truth frames.

  Attributes:
    frames: int [N] frame indices with a ground-truth mask, ascending.
    iou: float [N] region similarity (IoU) of each frame.
    f: float [N] boundary F of each frame (NaN when boundaries were not computed).
    missing: number of those frames without a predicted mask (scored as empty).
  """

  frames: np.ndarray
  iou: np.ndarray
  f: np.ndarray
  missing: int

  def davis_index(self, skip_first_last: bool = True) -> np.ndarray:
    """Positions averaged for J and F: all but the first and last when there are > 2."""
    idx = np.arange(len(self.frames))
    return idx[1:-1] if skip_first_last and idx.size > 2 else idx


def _mask_reader(folder: pathlib.Path, error: type[Exception]) -> video_lib.MaskFolderReader:
  try:
    return video_lib.MaskFolderReader(folder)
  except VideoError as e:
    raise error(f"{folder}: cannot list masks ({e})") from None


def _mask_path(reader: video_lib.MaskFolderReader, frame: int) -> pathlib.Path:
  return reader.file(frame)


def _read_mask(
  reader: video_lib.MaskFolderReader, frame: int, error: type[Exception]
) -> np.ndarray:
  try:
    return reader.read_one(frame)
  except VideoError as e:
    # The reader's message names the file; keep it but raise the caller's error family.
    raise error(str(e)) from None


def video_frame_scores(
  pred_dir: PathLike,
  gt_dir: PathLike,
  video_id: str,
  *,
  boundary: bool = True,
  bound_th: float = 0.008,
) -> FrameScores:
  """Per-frame IoU (and boundary F) of one video's predicted masks on its ground-truth frames.

  Args:
    pred_dir: folder of predicted mask folders, ``pred_dir/<video_id>/<frame>.png``. A missing
      video folder means no prediction at all (every frame scores as empty).
    gt_dir: folder of ground-truth mask folders (the dataset's ``masks/``).
    video_id: the video.
    boundary: also compute the boundary F-measure (the slow part); else ``f`` is NaN.
    bound_th: boundary tolerance (see :func:`segtube_jax.evaluation.masks.boundary_measure`).

  Returns:
    The FrameScores.

  Raises:
    DatasetError: the ground-truth folder is missing, or a ground-truth mask is unreadable.
    SegmentationError: a predicted mask is unreadable or its size differs from the ground
      truth's (the message names both files).
  """
  gt_folder = pathlib.Path(gt_dir) / video_id
  if not gt_folder.is_dir():
    raise DatasetError(f"{gt_folder}: ground-truth mask folder of video {video_id!r} not found")
  gt_reader = _mask_reader(gt_folder, DatasetError)
  pred_folder = pathlib.Path(pred_dir) / video_id
  pred_reader = _mask_reader(pred_folder, SegmentationError) if pred_folder.is_dir() else None
  frames = np.asarray(gt_reader.indices, np.int64)
  iou = np.zeros(len(frames))
  f = np.full(len(frames), np.nan)
  missing = 0
  for i, frame in enumerate(frames.tolist()):
    gt = _read_mask(gt_reader, frame, DatasetError)
    if pred_reader is not None and pred_reader.has(frame):
      pred = _read_mask(pred_reader, frame, SegmentationError)
      if pred.shape != gt.shape:
        raise SegmentationError(
          f"{_mask_path(pred_reader, frame)}: predicted mask is {pred.shape[1]}x{pred.shape[0]}"
          f" but the ground truth {_mask_path(gt_reader, frame)} is {gt.shape[1]}x{gt.shape[0]}"
        )
    else:
      pred = np.zeros_like(gt)
      missing += 1
    iou[i] = float(masks_lib.region_similarity(pred, gt))
    if boundary:
      f[i] = masks_lib.boundary_measure(pred, gt, bound_th)[0]
  return FrameScores(frames=frames, iou=iou, f=f, missing=missing)


def frame_iou_maps(
  pred_dir: PathLike, gt_dir: PathLike, video_ids: Iterable[str]
) -> dict[str, dict[int, float]]:
  """video id -> {frame: IoU} over its ground-truth frames: the ``frame_iou`` input of
  :func:`segtube_jax.evaluation.spatiotemporal.video_map` (no boundary F, so it is cheap)."""
  out = {}
  for vid in video_ids:
    scores = video_frame_scores(pred_dir, gt_dir, vid, boundary=False)
    out[vid] = dict(zip(scores.frames.tolist(), scores.iou.tolist()))
  return out


def _mean(values: Iterable[float]) -> float | None:
  values = [v for v in values if v is not None and not math.isnan(v)]
  return float(np.mean(values)) if values else None


def evaluate_mask_folders(
  pred_dir: PathLike,
  gt_dir: PathLike,
  video_ids: Iterable[str],
  video_class: Mapping[str, str],
  *,
  skip_first_last: bool = True,
  bound_th: float = 0.008,
) -> dict:
  """Mask IoU, J and F of predicted mask folders, per video, per class and overall.

  Args:
    pred_dir: folder of predicted mask folders ``<video_id>/<frame>.png``.
    gt_dir: folder of ground-truth mask folders (the dataset's ``masks/``).
    video_ids: videos to evaluate; each needs a ground-truth folder.
    video_class: video id -> its class name (for the per-class means).
    skip_first_last: DAVIS's rule for J and F (``iou`` always uses every frame).
    bound_th: boundary tolerance of F.

  Returns:
    ``{"per_video": {vid: {"iou", "J", "F", "frames", "missing"}}, "per_class": {cls:
    {"iou", "J", "F", "videos"}}, "mean": {"iou", "J", "F", "videos", "classes"}}``; scores
    are fractions in [0, 1]; ``frames`` counts ground-truth frames, ``missing`` those without
    a predicted mask. A video with no ground-truth frame has ``None`` scores and is left out
    of the means; so is a class with no scored video. Classes are sorted by name.

  Raises:
    SegmentationError: a video has no class in ``video_class``, or see
      :func:`video_frame_scores`.
    DatasetError: see :func:`video_frame_scores`.
  """
  video_ids = list(dict.fromkeys(video_ids))
  missing_class = [v for v in video_ids if v not in video_class]
  if missing_class:
    raise SegmentationError(f"evaluate_mask_folders: no class given for videos {missing_class[:5]}")
  per_video = {}
  for vid in video_ids:
    scores = video_frame_scores(pred_dir, gt_dir, vid, bound_th=bound_th)
    idx = scores.davis_index(skip_first_last)
    per_video[vid] = {
      "iou": _mean(scores.iou.tolist()),
      "J": _mean(scores.iou[idx].tolist()),
      "F": _mean(scores.f[idx].tolist()),
      "frames": int(len(scores.frames)),
      "missing": int(scores.missing),
    }
  by_class: dict[str, list[str]] = {}
  for vid in video_ids:
    if per_video[vid]["frames"]:
      by_class.setdefault(video_class[vid], []).append(vid)
  per_class = {
    cls: {
      **{k: _mean(per_video[v][k] for v in vids) for k in ("iou", "J", "F")},
      "videos": len(vids),
    }
    for cls, vids in sorted(by_class.items())
  }
  mean = {k: _mean(c[k] for c in per_class.values()) for k in ("iou", "J", "F")}
  mean["videos"] = sum(c["videos"] for c in per_class.values())
  mean["classes"] = len(per_class)
  return {"per_video": per_video, "per_class": per_class, "mean": mean}
