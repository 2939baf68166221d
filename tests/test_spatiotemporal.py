"""Tests of segtube_jax.evaluation.spatiotemporal on hand-computed cases."""

import numpy as np
import pytest

from segtube_jax.errors import ConfigError
from segtube_jax.evaluation import detection_writers, spatiotemporal, temporal_map
from segtube_jax.types import DetectedSegment

CLASSES = ["Jump", "Run"]


def _det(label, start, end, score=1.0, fps=25.0):
  return DetectedSegment(label, CLASSES.index(label), start, end, score, fps)


def _perfect(start, end):
  return {f: 1.0 for f in range(start, end)}


def test_temporal_iou():
  assert spatiotemporal.temporal_iou((0, 10), (0, 10)) == 1.0
  assert spatiotemporal.temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
  assert spatiotemporal.temporal_iou((0, 10), (10, 20)) == 0.0  # end exclusive: no shared frame


def test_st_iou_cases():
  masks = _perfect(0, 100)
  assert spatiotemporal.st_iou(_det("Jump", 10, 20), (10, 20), masks) == 1.0
  assert spatiotemporal.st_iou(_det("Jump", 0, 10), (0, 20), masks) == 0.5  # half temporal overlap
  assert spatiotemporal.st_iou(_det("Jump", 30, 40), (0, 20), masks) == 0.0
  half = {f: 0.5 for f in range(100)}
  assert spatiotemporal.st_iou(_det("Jump", 10, 20), (10, 20), half) == 0.5
  # Only the intersection [10, 20) counts; frames 10..14 perfect, 15..19 missing (IoU 0).
  partial = {f: (1.0 if f < 15 else 0.0) for f in range(0, 20)}
  assert spatiotemporal.st_iou(_det("Jump", 10, 30), (0, 20), partial) == pytest.approx(
    (10 / 30) * 0.5
  )
  # Frames without a ground-truth mask are skipped, not zeroed.
  sparse = {10: 1.0, 18: 0.5}
  assert spatiotemporal.st_iou(_det("Jump", 10, 20), (10, 20), sparse) == 0.75
  assert spatiotemporal.st_iou(_det("Jump", 11, 18), (11, 18), sparse) == 0.0  # nothing to verify
  # Long span with few masks takes the other code path; same answer.
  assert spatiotemporal.spatial_iou((0, 10_000), sparse) == 0.75


def test_perfect_detection_map_is_one():
  gt = {"v1": [("Jump", 10, 20)], "v2": [("Run", 0, 50)]}
  dets = {"v1": [_det("Jump", 10, 20, 0.9)], "v2": [_det("Run", 0, 50, 0.8)]}
  frame_iou = {"v1": _perfect(10, 20), "v2": _perfect(0, 50)}
  out = spatiotemporal.video_map(dets, gt, frame_iou)
  assert out["thresholds"] == [0.2, 0.5]
  assert out["classes"] == CLASSES
  assert out["mAP"] == [1.0, 1.0]
  assert out["AP_per_class"]["0.5"] == {"Jump": 1.0, "Run": 1.0}
  assert out["num_gt"] == {"Jump": 1, "Run": 1}


def test_half_overlap_is_matched_at_its_threshold_only():
  gt = {"v": [("Jump", 0, 20)]}
  dets = {"v": [_det("Jump", 0, 10)]}
  out = spatiotemporal.video_map(dets, gt, {"v": _perfect(0, 20)}, thresholds=(0.2, 0.5, 0.6))
  assert out["mAP"] == [1.0, 1.0, 0.0]  # ST-IoU is exactly 0.5; a match needs >= threshold


def test_bad_masks_lower_st_iou():
  gt = {"v": [("Jump", 0, 20)]}
  dets = {"v": [_det("Jump", 0, 20)]}
  frame_iou = {"v": {f: 0.3 for f in range(20)}}
  assert spatiotemporal.video_map(dets, gt, frame_iou)["mAP"] == [1.0, 0.0]


def test_wrong_class_scores_zero():
  gt = {"v": [("Jump", 0, 20)]}
  dets = {"v": [_det("Run", 0, 20)]}
  out = spatiotemporal.video_map(dets, gt, {"v": _perfect(0, 20)})
  assert out["AP_per_class"]["0.5"] == {"Jump": 0.0, "Run": None}  # Run has no ground truth
  assert out["mAP"] == [0.0, 0.0]
  assert out["num_detections"] == {"Jump": 0, "Run": 1}


def test_duplicates_are_false_positives():
  gt = {"v": [("Jump", 0, 20), ("Jump", 40, 60)]}
  dets = {"v": [_det("Jump", 0, 20, 0.9), _det("Jump", 0, 20, 0.8), _det("Jump", 40, 60, 0.7)]}
  out = spatiotemporal.video_map(dets, gt, {"v": _perfect(0, 60)}, thresholds=(0.5,))
  # tp = [1, 0, 1]: precision [1, 1/2, 2/3] at recall [1/2, 1/2, 1]; envelope -> 1/2 + 1/2 * 2/3.
  assert out["mAP"][0] == pytest.approx(0.5 + 0.5 * 2 / 3)
  tp = spatiotemporal.match_detections(
    [("v", d) for d in dets["v"]], gt, {"v": _perfect(0, 60)}, 0.5
  )
  assert tp.tolist() == [True, False, True]


def test_greedy_matching_takes_best_unmatched_instance():
  gt = {"v": [("Jump", 0, 10), ("Jump", 0, 12)]}
  dets = [("v", _det("Jump", 0, 12, 0.9)), ("v", _det("Jump", 0, 12, 0.8))]
  frame_iou = {"v": _perfect(0, 12)}
  # The first detection takes the exact instance (ST-IoU 1); the second gets 10/12.
  assert spatiotemporal.match_detections(dets, gt, frame_iou, 0.8).tolist() == [True, True]
  assert spatiotemporal.match_detections(dets, gt, frame_iou, 0.9).tolist() == [True, False]


def test_other_videos_and_labels_are_ignored():
  gt = {"v": [("Jump", 0, 20)], "empty": []}
  dets = {
    "v": [_det("Jump", 0, 20, 0.5)],
    "not_evaluated": [_det("Jump", 0, 20, 0.9)],
    "empty": [_det("Jump", 0, 5, 0.95)],
  }
  out = spatiotemporal.video_map(dets, gt, {"v": _perfect(0, 20)}, classes=["Jump"])
  assert out["num_detections_ignored"] == 1
  # The detection on "empty" (evaluated, no instance) is a false positive ranked first.
  assert out["mAP"] == [pytest.approx(0.5), pytest.approx(0.5)]


def test_errors():
  gt = {"v": [("Jump", 0, 20)]}
  with pytest.raises(ConfigError, match="mask IoU.*'v'"):
    spatiotemporal.video_map({}, gt, {})
  with pytest.raises(ConfigError, match="thresholds"):
    spatiotemporal.video_map({}, gt, {"v": {}}, thresholds=(0.0,))
  out = spatiotemporal.video_map({}, {}, {})
  assert out["classes"] == [] and out["mAP"] == [None, None]


def test_perfect_masks_reduce_to_activitynet_map():
  rng = np.random.default_rng(0)
  gt, dets, frame_iou = {}, {}, {}
  for v in range(6):
    vid = f"v{v}"
    starts = np.sort(rng.choice(np.arange(0, 400, 40), 3, replace=False))
    gt[vid] = [(CLASSES[rng.integers(2)], int(s), int(s + rng.integers(10, 35))) for s in starts]
    frame_iou[vid] = _perfect(0, 500)
    dets[vid] = []
    for _ in range(8):
      s = int(rng.integers(0, 400))
      label = CLASSES[rng.integers(2)]
      dets[vid].append(_det(label, s, s + int(rng.integers(5, 40)), float(rng.random()), fps=1.0))
  thresholds = (0.2, 0.3, 0.5, 0.7)
  out = spatiotemporal.video_map(dets, gt, frame_iou, thresholds, classes=CLASSES)
  videos = [v for v, insts in gt.items() for _ in insts]
  gt_arrays = temporal_map.GroundTruth(
    CLASSES,
    videos,
    [CLASSES.index(i[0]) for insts in gt.values() for i in insts],
    [[i[1], i[2]] for insts in gt.values() for i in insts],
    [],
    [],
  )
  ap = temporal_map.activitynet_average_precision(
    gt_arrays, detection_writers.as_detections(dets, CLASSES), thresholds
  )
  for t, thr in enumerate(thresholds):
    for c, name in enumerate(CLASSES):
      assert out["AP_per_class"][f"{thr:g}"][name] == pytest.approx(ap[t, c]), (thr, name)
  assert 0 < out["mAP"][0] < 1
