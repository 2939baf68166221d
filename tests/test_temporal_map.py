"""Tests of temporal detection mAP (segtube_jax.evaluation.temporal_map) and evaluate.py."""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from segtube_jax.data import thumos14
from segtube_jax.errors import AnnotationError, ConfigError, DatasetError, DetectionFileError
from segtube_jax.evaluation import score_detections, temporal_map

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TIOUS = ("0.1", "0.2", "0.3", "0.4", "0.5")
# ActivityNet-style scoring of the SCNN files as quoted in ../shared/data/README.md ("about").
ACTIVITYNET_QUOTED = {"0.3": 0.412, "0.4": 0.336, "0.5": 0.217}


@pytest.fixture(scope="module")
def scnn_dir(shared_data):
  return shared_data / "thumos14" / "scnn_c3d_detections"


@pytest.fixture(scope="module")
def expected(scnn_dir):
  return json.loads((scnn_dir / "expected_map.json").read_text())


@pytest.fixture(scope="module")
def annotation_dir(shared_data):
  return shared_data / "thumos14" / "annotation_test"


@pytest.fixture(scope="module")
def thumos_gt(annotation_dir):
  return temporal_map.load_ground_truth(annotation_dir, "testing")


def _scnn_file(scnn_dir, expected, tiou):
  return scnn_dir / expected["det_file_for_tiou"][tiou]


def _assert_matches_expected(metrics, expected, tiou):
  i = metrics["tiou"].index(float(tiou))
  want = expected["AP_per_class"][tiou]
  assert set(metrics["AP_per_class"][tiou]) == set(want)
  for name, ap in want.items():
    assert metrics["AP_per_class"][tiou][name] == pytest.approx(ap, abs=1e-4), name
  assert metrics["mAP"][i] == pytest.approx(
    expected["mAP"][expected["tiou"].index(float(tiou))], abs=1e-4
  )


# --------------------------------------------------------------------------------------
# Reproduction of the official evaluator on the published SCNN detections.


@pytest.mark.parametrize("tiou", TIOUS)
def test_thumos14_reproduces_th14evaldet_on_scnn(scnn_dir, expected, annotation_dir, tiou):
  metrics = score_detections.score_detection_file(
    _scnn_file(scnn_dir, expected, tiou), annotation_dir, "thumos14", [float(tiou)]
  )
  _assert_matches_expected(metrics, expected, tiou)
  assert metrics["num_classes_averaged"] == 20


def test_expected_map_is_the_mean_over_all_20_classes(expected):
  for i, tiou in enumerate(TIOUS):
    aps = list(expected["AP_per_class"][tiou].values())
    assert len(aps) == 20
    assert np.mean(aps) == pytest.approx(expected["mAP"][i], abs=1e-12)


@pytest.mark.parametrize("tiou", TIOUS)
def test_evaluate_cli_reproduces_th14evaldet_on_scnn(
  scnn_dir, expected, annotation_dir, tiou, tmp_path
):
  out = tmp_path / "metrics.json"
  result = subprocess.run(
    [
      sys.executable,
      "evaluate.py",
      "--detections",
      str(_scnn_file(scnn_dir, expected, tiou)),
      "--ground_truth",
      str(annotation_dir),
      "--protocol",
      "thumos14",
      "--tiou",
      tiou,
      "--out",
      str(out),
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  metrics = json.loads(out.read_text())
  _assert_matches_expected(metrics, expected, tiou)
  mean_ap = expected["mAP"][expected["tiou"].index(float(tiou))]
  assert f"{100 * mean_ap:.2f}" in result.stdout.splitlines()[-2]  # the mAP row
  assert "BaseballPitch" in result.stdout
  assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_activitynet_protocol_on_scnn_is_close_to_quoted_values(scnn_dir, expected, thumos_gt):
  for tiou, quoted in ACTIVITYNET_QUOTED.items():
    metrics = score_detections.score_detection_file(
      _scnn_file(scnn_dir, expected, tiou), thumos_gt, "activitynet", [float(tiou)]
    )
    # "About": eval_detection.py orders tied scores arbitrarily (unstable sort), and the
    # SCNN files are full of ties; the tie order moves mAP by a few tenths of a point.
    assert metrics["mAP"][0] == pytest.approx(quoted, abs=0.005), tiou


def test_annotations_json_gives_the_same_ground_truth(scnn_dir, expected, annotation_dir, tmp_path):
  path = tmp_path / "annotations.json"
  thumos14.write_dataset_json(thumos14.load_thumos14_annotations(annotation_dir), path)
  metrics = score_detections.score_detection_file(
    _scnn_file(scnn_dir, expected, "0.5"), path, "thumos14", [0.5]
  )
  _assert_matches_expected(metrics, expected, "0.5")
  assert metrics["ground_truth"] == str(path)


def test_activitynet_json_detections_score_like_the_text_file(
  scnn_dir, expected, thumos_gt, tmp_path
):
  dets = temporal_map.read_thumos14_detections(
    _scnn_file(scnn_dir, expected, "0.3"), thumos_gt.classes
  )
  results = {}
  for video, label, segment, score in zip(dets.video, dets.label, dets.segment, dets.score):
    results.setdefault(str(video), []).append(
      {"label": thumos_gt.classes[label], "score": float(score), "segment": segment.tolist()}
    )
  path = tmp_path / "dets.json"
  path.write_text(json.dumps({"version": "x", "results": results}))
  # Regrouping by video changes the file order of tied scores, which the THUMOS14 protocol
  # does not depend on (it breaks ties by video name first).
  metrics = score_detections.score_detection_file(path, thumos_gt, "thumos14", [0.3])
  _assert_matches_expected(metrics, expected, "0.3")


# --------------------------------------------------------------------------------------
# Literal (loop-per-item) ports of the reference code, to check the vectorised versions.


def _reference_thumos14(gt, dets, thr):
  """TH14eventdetpr, statement by statement."""
  aps = []
  videos = sorted(set(gt.video) | set(gt.ambiguous_video) | set(dets.video))
  for c in range(len(gt.classes)):
    npos = int((gt.label == c).sum())
    confs, flags = [], []
    for v in videos:
      g = [gt.segment[i] for i in range(len(gt.video)) if gt.video[i] == v and gt.label[i] == c]
      amb = [
        gt.ambiguous_segment[i]
        for i in range(len(gt.ambiguous_video))
        if gt.ambiguous_video[i] == v
      ]
      d = [i for i in range(len(dets)) if dets.video[i] == v and dets.label[i] == c]
      d = sorted(d, key=lambda i: -dets.score[i])  # stable
      if not d:
        continue
      free = [True] * len(d)
      for gs in g:
        best, best_j = None, None
        for j, i in enumerate(d):
          if free[j]:
            ov = _hull_iou(gs, dets.segment[i])
            if best is None or ov > best:
              best, best_j = ov, j
        if best is not None and best > thr:
          free[best_j] = False
      for j, i in enumerate(d):
        in_amb = any(_hull_iou(a, dets.segment[i]) > 0 for a in amb)
        if not free[j] or not in_amb:
          confs.append(dets.score[i])
          flags.append(not free[j])
    order = sorted(range(len(confs)), key=lambda k: -confs[k])
    tp = fp = 0
    ap = 0.0
    for k in order:
      tp, fp = tp + flags[k], fp + (not flags[k])
      if flags[k]:
        ap += tp / (tp + fp)
    aps.append(ap / npos if npos else math.nan)
  return np.array(aps)


def _reference_activitynet(gt, dets, thr):
  """compute_average_precision_detection + interpolated_prec_rec, per prediction."""
  aps = []
  for c in range(len(gt.classes)):
    g = [i for i in range(len(gt.video)) if gt.label[i] == c]
    if not g:
      aps.append(math.nan)
      continue
    p = sorted((i for i in range(len(dets)) if dets.label[i] == c), key=lambda i: -dets.score[i])
    lock = {}
    tp, fp = [], []
    for i in p:
      cands = [k for k in g if gt.video[k] == dets.video[i]]
      ious = [_sum_iou(dets.segment[i], gt.segment[k]) for k in cands]
      # eval_detection's argsort()[::-1]: among equal IoU, the later instance first.
      order = sorted(range(len(cands)), key=lambda k: (-ious[k], -k))
      hit = False
      for k in order:
        if ious[k] < thr:
          break
        if cands[k] in lock:
          continue
        lock[cands[k]] = i
        hit = True
        break
      tp.append(hit)
      fp.append(not hit)
    tpc, fpc = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
    rec, prec = tpc / len(g), tpc / np.maximum(tpc + fpc, 1)
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for k in range(len(mprec) - 1)[::-1]:
      mprec[k] = max(mprec[k], mprec[k + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    aps.append(float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])) if p else 0.0)
  return np.array(aps)


def _hull_iou(a, b):
  inter = min(a[1], b[1]) - max(a[0], b[0])
  return inter / (max(a[1], b[1]) - min(a[0], b[0])) if inter > 0 else 0.0


def _sum_iou(d, g):
  inter = max(min(d[1], g[1]) - max(d[0], g[0]), 0.0)
  return inter / ((g[1] - g[0]) + (d[1] - d[0]) - inter) if inter > 0 else 0.0


def _random_case(seed):
  rng = np.random.default_rng(seed)
  classes = ["A", "B", "C", "D"]  # D never has ground truth
  n_gt, n_det, n_amb = 60, 300, 8
  videos = np.array([f"v{i}" for i in range(6)])
  start = rng.integers(0, 50, n_gt) / 2.0
  gt = temporal_map.GroundTruth(
    classes,
    rng.choice(videos, n_gt),
    rng.integers(0, 3, n_gt),
    np.stack([start, start + rng.integers(1, 12, n_gt) / 2.0], 1),
    rng.choice(videos, n_amb),
    np.stack([s := rng.integers(0, 50, n_amb) / 2.0, s + 2.0], 1),
  )
  start = rng.integers(0, 50, n_det) / 2.0
  dets = temporal_map.Detections(
    rng.choice(np.append(videos, "v_no_gt"), n_det),
    rng.integers(0, 4, n_det),
    np.stack([start, start + rng.integers(1, 12, n_det) / 2.0], 1),
    rng.integers(0, 10, n_det) / 10.0,
  )  # coarse scores: many ties
  return gt, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_protocols_match_literal_ports(seed):
  gt, dets = _random_case(seed)
  tious = [0.1, 0.3, 0.5, 0.7]
  th = temporal_map.thumos14_average_precision(gt, dets, tious)
  an = temporal_map.activitynet_average_precision(gt, dets, tious)
  for t, thr in enumerate(tious):
    np.testing.assert_allclose(th[t], _reference_thumos14(gt, dets, thr), atol=1e-12)
    np.testing.assert_allclose(an[t], _reference_activitynet(gt, dets, thr), atol=1e-12)
  assert np.isnan(th[:, 3]).all() and np.isnan(an[:, 3]).all()


# --------------------------------------------------------------------------------------
# Hand-made cases where the protocols differ.


def _gt(instances, ambiguous=(), classes=("A", "B")):
  return temporal_map.GroundTruth(
    classes,
    [v for v, _, _ in instances],
    [classes.index(c) for _, c, _ in instances],
    [s for _, _, s in instances],
    [v for v, _ in ambiguous],
    [s for _, s in ambiguous],
  )


def _dets(rows, classes=("A", "B")):
  return temporal_map.Detections(
    [r[0] for r in rows],
    [classes.index(r[1]) for r in rows],
    [r[2] for r in rows],
    [r[3] for r in rows],
  )


def _ap(gt, dets, tiou, c=0):
  return (
    temporal_map.thumos14_average_precision(gt, dets, [tiou])[0, c],
    temporal_map.activitynet_average_precision(gt, dets, [tiou])[0, c],
  )


def test_unmatched_detection_on_ambiguous_interval_is_ignored_only_by_thumos14():
  gt = _gt([("v", "A", [0.0, 10.0])], ambiguous=[("v", [20.0, 30.0])])
  dets = _dets([("v", "A", [0.0, 10.0], 0.5), ("v", "A", [29.0, 35.0], 0.9)])
  assert _ap(gt, dets, 0.5) == (1.0, 0.5)
  # Touching an Ambiguous interval is not overlapping it.
  dets = _dets([("v", "A", [0.0, 10.0], 0.5), ("v", "A", [30.0, 35.0], 0.9)])
  assert _ap(gt, dets, 0.5) == (0.5, 0.5)


def test_overlap_equal_to_threshold_matches_only_under_activitynet():
  gt = _gt([("v", "A", [0.0, 10.0])])
  dets = _dets([("v", "A", [0.0, 5.0], 0.9)])  # IoU exactly 0.5
  assert _ap(gt, dets, 0.5) == (0.0, 1.0)
  assert _ap(gt, dets, 0.4) == (1.0, 1.0)


def test_tied_scores_rank_by_video_name_under_thumos14_and_file_order_under_activitynet():
  gt = _gt([("video_b", "A", [0.0, 10.0])])
  dets = _dets([("video_b", "A", [0.0, 10.0], 0.5), ("video_a", "A", [0.0, 10.0], 0.5)])
  thumos, activitynet = _ap(gt, dets, 0.5)
  assert thumos == 0.5  # video_a's false positive ranks first
  assert activitynet == 1.0  # file order: the true positive ranks first


def test_tied_scores_in_one_video_keep_file_order():
  gt = _gt([("v", "A", [0.0, 10.0])])
  fp, tp = ("v", "A", [50.0, 60.0], 0.5), ("v", "A", [0.0, 10.0], 0.5)
  assert _ap(gt, _dets([fp, tp]), 0.5) == (0.5, 0.5)
  assert _ap(gt, _dets([tp, fp]), 0.5) == (1.0, 1.0)


def test_ground_truth_driven_versus_detection_driven_matching():
  gt = _gt([("v", "A", [0.0, 10.0]), ("v", "A", [10.0, 20.0])])
  dets = _dets([("v", "A", [2.0, 12.0], 0.9), ("v", "A", [0.0, 10.0], 0.8)])
  # THUMOS14: the first instance takes its best detection (IoU 1.0, score 0.8) and the
  # higher-scored one is a false positive; ActivityNet: the 0.9 detection takes it first.
  assert _ap(gt, dets, 0.5) == (0.25, 0.5)


def test_equal_overlap_with_two_instances_goes_to_the_later_one_under_activitynet():
  gt = _gt([("v", "A", [0.0, 4.0]), ("v", "A", [6.0, 10.0])])
  # The 0.9 detection overlaps both instances with IoU 0.25; eval_detection's reversed
  # argsort hands it the later one, which leaves the first for the 0.8 detection.
  dets = _dets([("v", "A", [2.0, 8.0], 0.9), ("v", "A", [0.0, 4.0], 0.8)])
  assert _ap(gt, dets, 0.2) == (1.0, 1.0)
  dets = _dets([("v", "A", [2.0, 8.0], 0.9), ("v", "A", [6.0, 10.0], 0.8)])
  assert _ap(gt, dets, 0.2) == (1.0, 0.5)


def test_class_without_ground_truth_is_left_out_of_the_mean():
  gt = _gt([("v", "A", [0.0, 10.0])])
  dets = _dets([("v", "A", [0.0, 10.0], 0.9), ("v", "B", [0.0, 10.0], 0.9)])
  metrics = score_detections.score_detection_file(dets, gt, "thumos14", [0.5])
  assert metrics["AP_per_class"]["0.5"] == {"A": 1.0, "B": None}
  assert metrics["mAP"] == [1.0]
  assert metrics["num_classes_averaged"] == 1
  assert "n/a" in score_detections.format_metrics_table(metrics)


def test_class_with_no_detections_scores_zero():
  gt = _gt([("v", "A", [0.0, 10.0]), ("v", "B", [0.0, 10.0])])
  dets = _dets([("v", "A", [0.0, 10.0], 0.9)])
  metrics = score_detections.score_detection_file(dets, gt, "activitynet", [0.5])
  assert metrics["AP_per_class"]["0.5"] == {"A": 1.0, "B": 0.0}
  assert metrics["mAP"] == [0.5]


def test_bad_protocol_and_thresholds_are_config_errors():
  gt = _gt([("v", "A", [0.0, 10.0])])
  dets = _dets([])
  with pytest.raises(ConfigError, match="unknown protocol 'coco'"):
    score_detections.score_detection_file(dets, gt, "coco", [0.5])
  with pytest.raises(ConfigError, match=r"tIoU thresholds .* \[0, 1\]"):
    score_detections.score_detection_file(dets, gt, "thumos14", [1.5])


# --------------------------------------------------------------------------------------
# Malformed inputs.

CLASSES = ("A", "B")


@pytest.mark.parametrize(
  "text, expected",
  [
    (
      "v 1 2 1 0.5\nv 1 2 1\n",
      r":2: expected 'video_name t_start t_end class_id score' \(5 fields\), got 4 fields",
    ),
    ("\n\nv 1 x 1 0.5\n", r":3: expected t_end to be a finite number, got 'x'"),
    ("v 1 2 1 0.5\nv 1 2 1 nan\n", r":2: expected score to be a finite number, got 'nan'"),
    ("v 1 2 1.5 0.5\n", r":1: expected class_id to be an integer, got '1.5'"),
    ("v 1 2 3 0.5\n", r":1: expected class_id in 1..2 \(detclasslist\), got 3"),
    ("v 1 2 1 0.5\nv 1 2 0 0.5\n", r":2: expected class_id in 1..2 \(detclasslist\), got 0"),
    ("v 1 2 1 0.5\nv 5 2 1 0.5\n", r":2: expected t_start <= t_end, got 5 > 2"),
  ],
)
def test_malformed_text_detections(tmp_path, text, expected):
  path = tmp_path / "dets.txt"
  path.write_text(text)
  with pytest.raises(DetectionFileError, match=expected) as info:
    temporal_map.read_detections(path, CLASSES)
  assert str(info.value).startswith(f"{path}:")


def test_text_detections_parse(tmp_path):
  path = tmp_path / "dets.txt"
  path.write_text("video_x.mp4 1.5 2.5 2 0.75\n\nvideo_y 0 1 1 -3\n")
  dets = temporal_map.read_detections(path, CLASSES)
  assert dets.video.tolist() == ["video_x", "video_y"]
  assert dets.label.tolist() == [1, 0]
  assert dets.segment.tolist() == [[1.5, 2.5], [0.0, 1.0]]
  assert dets.score.tolist() == [0.75, -3.0]
  assert len(temporal_map.read_detections(tmp_path / "dets.txt", CLASSES)) == 2
  (tmp_path / "empty.txt").write_text("\n")
  assert len(temporal_map.read_detections(tmp_path / "empty.txt", CLASSES)) == 0


@pytest.mark.parametrize(
  "content, expected",
  [
    ('{"results": {"v": [}', r":1: invalid JSON"),
    ('{"version": 1}', r": expected a JSON object with key 'results'"),
    ("[1, 2]", r": expected a JSON object with key 'results'"),
    ('{"results": {"v": {}}}', r": results\['v'\]: expected a list of detections, got dict"),
    ('{"results": {"v": [3]}}', r": results\['v'\]\[0\]: expected an object"),
    (
      '{"results": {"v": [{"label": "A", "segment": [0, 1]}]}}',
      r": results\['v'\]\[0\]: missing key 'score'",
    ),
    (
      '{"results": {"v": [{"label": "A", "score": 1, "segment": [0, 1]},'
      ' {"label": "Z", "score": 1, "segment": [0, 1]}]}}',
      r": results\['v'\]\[1\]\['label'\]: expected one of the ground-truth classes, got 'Z'",
    ),
    (
      '{"results": {"v": [{"label": "A", "score": "high", "segment": [0, 1]}]}}',
      r": results\['v'\]\[0\]\['score'\]: expected a finite number, got 'high'",
    ),
    (
      '{"results": {"v": [{"label": "A", "score": true, "segment": [0, 1]}]}}',
      r"\['score'\]: expected a finite number, got True",
    ),
    (
      '{"results": {"v": [{"label": "A", "score": 1, "segment": [3, 1]}]}}',
      r": results\['v'\]\[0\]\['segment'\]: expected \[t_start, t_end\] .*got \[3, 1\]",
    ),
    (
      '{"results": {"v": [{"label": "A", "score": 1, "segment": [0]}]}}',
      r"\['segment'\]: expected \[t_start, t_end\]",
    ),
  ],
)
def test_malformed_json_detections(tmp_path, content, expected):
  path = tmp_path / "dets.json"
  path.write_text(content)
  with pytest.raises(DetectionFileError, match=expected) as info:
    temporal_map.read_detections(path, CLASSES)
  assert str(info.value).startswith(f"{path}:")


def test_missing_detection_file(tmp_path):
  with pytest.raises(DetectionFileError, match="detection file not found"):
    temporal_map.read_detections(tmp_path / "nope.txt", CLASSES)


def _dataset(**video):
  entry = {"subset": "testing", "annotations": [{"label": "A", "segment": [0, 1]}]}
  entry.update(video)
  return {"version": "x", "classes": ["A", "B"], "database": {"v1": entry}}


@pytest.mark.parametrize(
  "dataset, error, expected",
  [
    ({"classes": ["A"]}, DatasetError, r"'database': expected an object"),
    ({"classes": [], "database": {}}, DatasetError, r"'classes': expected a non-empty list"),
    (_dataset(subset="test"), DatasetError, r"database\['v1'\]\['subset'\]: expected one of"),
    (_dataset(subset="training"), DatasetError, r"no video has subset 'testing'"),
    (
      _dataset(annotations=[{"label": "Z", "segment": [0, 1]}]),
      AnnotationError,
      r"database\['v1'\]\['annotations'\]\[0\]\['label'\]: expected one of 'classes', got 'Z'",
    ),
    (
      _dataset(annotations=[{"label": "A", "segment": [2, 1]}]),
      AnnotationError,
      r"database\['v1'\]\['annotations'\]\[0\]\['segment'\]: expected \[t_start, t_end\]",
    ),
    (
      _dataset(ambiguous=[[0, 1], [1]]),
      AnnotationError,
      r"database\['v1'\]\['ambiguous'\]\[1\]: expected \[t_start, t_end\]",
    ),
  ],
)
def test_malformed_annotations_json(tmp_path, dataset, error, expected):
  path = tmp_path / "annotations.json"
  path.write_text(json.dumps(dataset))
  with pytest.raises(error, match=expected) as info:
    temporal_map.load_ground_truth(path)
  assert str(info.value).startswith(f"{path}:")


def test_ground_truth_path_errors(tmp_path):
  with pytest.raises(DatasetError, match="ground truth not found"):
    temporal_map.load_ground_truth(tmp_path / "missing.json")
  (tmp_path / "bad.json").write_text("{")
  with pytest.raises(DatasetError, match="bad.json: expected a dataset JSON file"):
    temporal_map.load_ground_truth(tmp_path / "bad.json")


def test_ground_truth_keeps_subset_and_list_order(tmp_path):
  dataset = {
    "classes": ["A", "B"],
    "database": {
      "v2": {
        "subset": "testing",
        "annotations": [
          {"label": "B", "segment": [5, 6]},
          {"label": "A", "segment": [3, 4]},
          {"label": "A", "segment": [1, 2]},
        ],
        "ambiguous": [[7, 8]],
      },
      "v1": {"subset": "validation", "annotations": [{"label": "A", "segment": [0, 1]}]},
    },
  }
  gt = temporal_map.ground_truth_from_dataset(dataset, "testing")
  assert gt.video.tolist() == ["v2"] * 3
  assert gt.label.tolist() == [1, 0, 0]
  assert gt.segment.tolist() == [[5, 6], [3, 4], [1, 2]]
  assert gt.ambiguous_video.tolist() == ["v2"]
  assert gt.instances_per_class().tolist() == [2, 1]
  assert temporal_map.ground_truth_from_dataset(dataset, "validation").video.tolist() == ["v1"]


# --------------------------------------------------------------------------------------
# evaluate.py usage.


def test_evaluate_without_detections_is_a_usage_error():
  result = subprocess.run(
    [sys.executable, "evaluate.py"],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert result.returncode != 0
  assert "--detections" in result.stderr


def test_evaluate_reports_bad_input_in_one_line(tmp_path, annotation_dir):
  path = tmp_path / "dets.txt"
  path.write_text("video_test_0000004 1 2 1\n")
  result = subprocess.run(
    [
      sys.executable,
      "evaluate.py",
      "--detections",
      str(path),
      "--ground_truth",
      str(annotation_dir),
      "--out",
      str(tmp_path / "m.json"),
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert result.returncode != 0
  assert f"error: {path}:1: expected 'video_name t_start t_end class_id score'" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "m.json").exists()
