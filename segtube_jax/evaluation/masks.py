"""Mask quality measures of DAVIS 2016: region similarity J and boundary F-measure.

Definitions follow the DAVIS 2016 evaluation code (Perazzi et al., CVPR 2016):

* J is the IoU of predicted and ground-truth masks; two empty masks score 1.
* F is the F-measure of boundary precision and recall. Boundaries are one-pixel maps from
  ``seg2bmap``; a boundary pixel is matched when the other boundary comes within
  ``ceil(0.008 * image diagonal)`` pixels (a disk dilation in DAVIS; here the equivalent test on
  the Euclidean distance transform, which is an order of magnitude faster).
* Per-video scores are means over frames, DAVIS leaving out the first frame (given to
  semi-supervised methods) and the last; per-class scores average videos of a class and the
  overall score averages classes, as in Table 3 of the Segment-tube paper.
"""

from collections.abc import Mapping, Sequence
import dataclasses

import numpy as np
from scipy import ndimage

from segtube_jax.errors import SegmentationError


def _check_pair(
  pred: np.ndarray, gt: np.ndarray, ndim: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
  pred, gt = np.asarray(pred), np.asarray(gt)
  if pred.shape != gt.shape or pred.ndim != ndim:
    raise SegmentationError(
      f"{what}: expected prediction and ground truth of one {ndim}-D shape, got "
      f"{pred.shape} and {gt.shape}"
    )
  return pred.astype(bool), gt.astype(bool)


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """J per frame: |pred & gt| / |pred | gt|, 1 where both are empty.

  Args:
    pred: bool [T,H,W] (or [H,W]) predicted masks.
    gt: bool masks of the same shape.

  Returns:
    float [T] (or a 0-d array for one frame).
  """
  pred, gt = np.asarray(pred), np.asarray(gt)
  if pred.ndim == 2:
    return region_similarity(pred[None], gt[None])[0]
  pred, gt = _check_pair(pred, gt, 3, "region similarity")
  inter = np.sum(pred & gt, axis=(1, 2))
  union = np.sum(pred | gt, axis=(1, 2))
  return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def seg2bmap(mask: np.ndarray) -> np.ndarray:
  """One-pixel boundary map of a bool mask [H,W], as DAVIS's ``seg2bmap``.

  A pixel is boundary when it differs from its east, south or south-east neighbour; the last
  row and column compare only along themselves; the bottom-right pixel is never boundary.
  """
  seg = np.asarray(mask, bool)
  e = np.zeros_like(seg)
  s = np.zeros_like(seg)
  se = np.zeros_like(seg)
  e[:, :-1] = seg[:, 1:]
  s[:-1, :] = seg[1:, :]
  se[:-1, :-1] = seg[1:, 1:]
  b = (seg ^ e) | (seg ^ s) | (seg ^ se)
  b[-1, :] = seg[-1, :] ^ e[-1, :]
  b[:, -1] = seg[:, -1] ^ s[:, -1]
  b[-1, -1] = False
  return b


def boundary_tolerance(shape: Sequence[int], bound_th: float = 0.008) -> float:
  """Match radius in pixels: ``bound_th`` if >= 1, else ceil(bound_th * image diagonal)."""
  return float(bound_th) if bound_th >= 1 else float(np.ceil(bound_th * np.hypot(*shape[:2])))


def _matched(boundary: np.ndarray, other: np.ndarray, radius: float) -> int:
  """Pixels of ``boundary`` within a disk of ``radius`` of some pixel of ``other``."""
  if not other.any():
    return 0
  # distance <= r to the nearest pixel of `other` <=> inside `other` dilated by disk(r).
  dist = ndimage.distance_transform_edt(~other)
  return int(np.count_nonzero(dist[boundary] <= radius))


def boundary_measure(
  pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008
) -> tuple[float, float, float]:
  """Boundary (F, precision, recall) of one frame, as DAVIS's ``db_eval_boundary``.

  Args:
    pred: bool [H,W] predicted mask.
    gt: bool [H,W] ground-truth mask.
    bound_th: Tolerance, a fraction of the image diagonal if < 1, else pixels.

  Returns:
    (F, precision, recall). An empty predicted boundary has precision 1, an empty ground-truth
    boundary recall 1 (so two empty masks score F = 1).
  """
  pred, gt = _check_pair(pred, gt, 2, "boundary measure")
  radius = boundary_tolerance(pred.shape, bound_th)
  fg_b, gt_b = seg2bmap(pred), seg2bmap(gt)
  n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
  if n_fg == 0 and n_gt == 0:
    precision, recall = 1.0, 1.0
  elif n_fg == 0:
    precision, recall = 1.0, 0.0
  elif n_gt == 0:
    precision, recall = 0.0, 1.0
  else:
    precision = _matched(fg_b, gt_b, radius) / n_fg
    recall = _matched(gt_b, fg_b, radius) / n_gt
  f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
  return f, precision, recall


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> np.ndarray:
  """Boundary F-measure per frame of bool [T,H,W] masks -> float [T]."""
  pred, gt = _check_pair(pred, gt, 3, "boundary F")
  return np.array([boundary_measure(p, g, bound_th)[0] for p, g in zip(pred, gt)])


@dataclasses.dataclass(frozen=True)
class VideoScores:
  """Per-frame and mean J and F of one video.

  Attributes:
    j: float [T'] region similarity of the evaluated frames.
    f: float [T'] boundary F of the evaluated frames.
    frames: int [T'] indices of the evaluated frames.
  """

  j: np.ndarray
  f: np.ndarray
  frames: np.ndarray

  @property
  def j_mean(self) -> float:
    return float(np.mean(self.j)) if self.j.size else float("nan")

  @property
  def f_mean(self) -> float:
    return float(np.mean(self.f)) if self.f.size else float("nan")


def evaluate_video(
  pred: np.ndarray, gt: np.ndarray, skip_first_last: bool = True, bound_th: float = 0.008
) -> VideoScores:
  """J and F of every frame of one video and their means.

  Args:
    pred: bool [T,H,W] predicted masks.
    gt: bool [T,H,W] ground-truth masks.
    skip_first_last: Leave out the first and last frame, as DAVIS does (videos of fewer than
      three frames are then evaluated whole).
    bound_th: Boundary tolerance (see :func:`boundary_measure`).

  Returns:
    The VideoScores.
  """
  pred, gt = _check_pair(pred, gt, 3, "evaluate_video")
  idx = np.arange(pred.shape[0])
  if skip_first_last and idx.size > 2:
    idx = idx[1:-1]
  return VideoScores(
    j=region_similarity(pred[idx], gt[idx]), f=boundary_f(pred[idx], gt[idx], bound_th), frames=idx
  )


def class_means(scores: Mapping[str, float], classes: Mapping[str, str]) -> dict[str, float]:
  """Per-class means of per-video scores, and their mean under "Average" (paper Table 3).

  Args:
    scores: video id -> score (e.g. its mean J).
    classes: video id -> class name; every scored video needs one.

  Returns:
    class name -> mean score over its videos (classes sorted by name), then "Average", the
    unweighted mean over classes.
  """
  missing = sorted(set(scores) - set(classes))
  if missing:
    raise SegmentationError(f"class_means: expected a class for every video, missing {missing[:5]}")
  by_class: dict[str, list[float]] = {}
  for video, score in scores.items():
    by_class.setdefault(classes[video], []).append(float(score))
  out = {c: float(np.mean(v)) for c, v in sorted(by_class.items())}
  out["Average"] = float(np.mean(list(out.values()))) if out else float("nan")
  return out
