"""Tests of segtube_jax.evaluation.detection_writers: round trips through the readers."""

import json
import os

import numpy as np
import pytest

from segtube_jax.evaluation import detection_files, detection_writers, temporal_map
from segtube_jax.types import DetectedSegment

CLASSES = ["Diving", "HighJump", "PoleVault"]


def _seg(label, start, end, score, fps=25.0):
  return DetectedSegment(label, CLASSES.index(label), start, end, score, fps)


@pytest.fixture
def results():
  return {
    "video_test_0000004": [_seg("PoleVault", 10, 57, 0.91), _seg("Diving", 0, 3, 0.1234567891234)],
    "video_test_0000007": [_seg("HighJump", 301, 302, 0.5, fps=29.97)],
    "no_dets": [],
    "v3": [_seg("Diving", 7, 1000, -2.5, fps=30000 / 1001)],
  }


def _flat(results):
  return [(v, d) for v, dets in results.items() for d in dets]


def _assert_round_trip(read, results):
  flat = _flat(results)
  assert len(read) == len(flat)
  assert list(read.video) == [v for v, _ in flat]
  assert [CLASSES[i] for i in read.label] == [d.label for _, d in flat]
  # Exact: repr/JSON floats parse back to the same doubles.
  assert read.segment.tolist() == [[d.t0, d.t1] for _, d in flat]
  assert read.score.tolist() == [d.score for _, d in flat]


def test_detected_segment_times():
  d = _seg("Diving", 25, 75, 0.5)
  assert (d.t0, d.t1, d.num_frames) == (1.0, 3.0, 50)


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(start_frame=5, end_frame=5),
    dict(start_frame=-1),
    dict(fps=0.0),
    dict(score=float("nan")),
    dict(class_index=-1),
  ],
)
def test_detected_segment_rejects_bad_values(kwargs):
  base = dict(label="Diving", class_index=0, start_frame=0, end_frame=10, score=1.0, fps=25.0)
  base.update(kwargs)
  with pytest.raises(ValueError):
    DetectedSegment(**base)


def test_activitynet_round_trip(tmp_path, results):
  path = tmp_path / "sub" / "dets.json"
  detection_writers.write_activitynet_json(results, path)
  data = json.loads(path.read_text())
  assert data["version"] == "segtube-jax"
  assert data["external_data"] == {}
  assert data["results"]["no_dets"] == []
  assert data["results"]["video_test_0000004"][0] == {
    "label": "PoleVault",
    "score": 0.91,
    "segment": [0.4, 2.28],
  }
  _assert_round_trip(detection_files.read_activitynet_detections(path, CLASSES), results)
  _assert_round_trip(detection_files.read_detections(path, CLASSES), results)
  assert [p.name for p in path.parent.iterdir()] == ["dets.json"]  # no temp file left


def test_thumos14_round_trip(tmp_path, results):
  path = tmp_path / "dets.txt"
  detection_writers.write_thumos14_txt(results, path, CLASSES)
  lines = path.read_text().splitlines()
  assert lines[0] == "video_test_0000004 0.4 2.28 3 0.91"  # 1-based index into CLASSES
  assert len(lines) == 4
  read = detection_files.read_thumos14_detections(path, CLASSES)
  _assert_round_trip(read, results)
  _assert_round_trip(detection_files.read_detections(path, CLASSES), results)
  assert [p.name for p in tmp_path.iterdir()] == ["dets.txt"]


def test_as_detections_equals_file(tmp_path, results):
  path = tmp_path / "dets.txt"
  detection_writers.write_thumos14_txt(results, path, CLASSES)
  read = detection_files.read_thumos14_detections(path, CLASSES)
  mem = detection_writers.as_detections(results, CLASSES)
  for field in ("video", "label", "segment", "score"):
    np.testing.assert_array_equal(getattr(mem, field), getattr(read, field))


def test_written_files_score_identically(tmp_path, results):
  gt = temporal_map.GroundTruth(
    CLASSES, ["video_test_0000004", "v3"], [2, 0], [[0.4, 2.0], [0.3, 30.0]], [], []
  )
  detection_writers.write_thumos14_txt(results, tmp_path / "a.txt", CLASSES)
  detection_writers.write_activitynet_json(results, tmp_path / "a.json")
  ap_txt = temporal_map.activitynet_average_precision(
    gt, detection_files.read_detections(tmp_path / "a.txt", CLASSES), [0.5]
  )
  ap_json = temporal_map.activitynet_average_precision(
    gt, detection_files.read_detections(tmp_path / "a.json", CLASSES), [0.5]
  )
  np.testing.assert_array_equal(ap_txt, ap_json)
  assert ap_txt[0, 2] == 1.0 and np.isnan(ap_txt[0, 1])


def test_thumos14_rejects_mismatched_classes(tmp_path, results):
  path = tmp_path / "dets.txt"
  path.write_text("old\n")
  with pytest.raises(ValueError, match="class_index"):
    detection_writers.write_thumos14_txt(results, path, list(reversed(CLASSES)))
  with pytest.raises(ValueError, match="not one of"):
    detection_writers.write_thumos14_txt(results, path, CLASSES[:2])
  with pytest.raises(ValueError, match="whitespace"):
    detection_writers.write_thumos14_txt({"a b": [_seg("Diving", 0, 1, 1.0)]}, path, CLASSES)
  assert path.read_text() == "old\n"


def test_atomic_write_keeps_old_file_on_error(tmp_path, results, monkeypatch):
  path = tmp_path / "dets.txt"
  path.write_text("old\n")

  def fail(*args):
    raise OSError("disk full")

  monkeypatch.setattr(os, "replace", fail)
  with pytest.raises(OSError, match="disk full"):
    detection_writers.write_thumos14_txt(results, path, CLASSES)
  assert path.read_text() == "old\n"
  assert [p.name for p in tmp_path.iterdir()] == ["dets.txt"]
