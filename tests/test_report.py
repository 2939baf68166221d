"""Tests of segtube_jax.evaluation.report: report.md, figures, PR curves."""

import os
import re

import numpy as np
from PIL import Image
import pytest

from segtube_jax.evaluation import (
  detection_writers,
  report,
  report_figures,
  score_detections,
  spatiotemporal,
  temporal_map,
)
from segtube_jax.types import DetectedSegment

CLASSES = ["Diving", "High|Jump", "PoleVault"]  # a pipe must not break the tables
FPS = 10.0


def _det(label, start, end, score):
  return DetectedSegment(label, CLASSES.index(label), start, end, score, FPS)


@pytest.fixture(scope="module")
def inputs():
  rng = np.random.default_rng(0)
  gt_frames = {
    "v1": [("Diving", 10, 40), ("PoleVault", 60, 90)],
    "v2": [("High|Jump", 5, 50)],
    "v3": [("Diving", 0, 30)],
  }
  results = {
    "v1": [
      _det("Diving", 12, 40, 0.9),
      _det("PoleVault", 0, 20, 0.8),
      _det("PoleVault", 58, 88, 0.3),
    ],
    "v2": [_det("High|Jump", 5, 45, 0.7), _det("Diving", 5, 45, 0.2)],
    "v3": [_det("Diving", 40, 60, 0.95)],
  }
  gt = temporal_map.GroundTruth(
    CLASSES,
    [v for v, insts in gt_frames.items() for _ in insts],
    [CLASSES.index(i[0]) for insts in gt_frames.values() for i in insts],
    [[i[1] / FPS, i[2] / FPS] for insts in gt_frames.values() for i in insts],
    [],
    [],
  )
  dets = detection_writers.as_detections(results, CLASSES)
  temporal = score_detections.score_detection_file(dets, gt, "activitynet", (0.3, 0.5))
  frame_iou = {v: {f: 0.8 for f in range(100)} for v in gt_frames}
  st = spatiotemporal.video_map(results, gt_frames, frame_iou, classes=CLASSES)
  seg = {
    "per_video": {},
    "mean": {"iou": 0.61, "J": 0.6, "F": 0.55, "videos": 3, "classes": 3},
    "per_class": {c: {"iou": 0.6, "J": 0.6, "F": 0.5, "videos": 1} for c in CLASSES},
  }
  alpha = rng.random((100, 3)) * 0.5
  alpha[10:40, 0] = 0.9
  frames = rng.integers(0, 255, (5, 40, 48, 3), dtype=np.uint8)
  masks = np.zeros((5, 40, 48), bool)
  masks[:, 10:30, 12:30] = True
  return dict(
    metrics={
      "temporal": temporal,
      "segmentation": seg,
      "spatiotemporal": st,
      "timings": {"temporal": 12.5, "spatial": 30.25},
      "run_name": "unit-test",
    },
    per_class_ap=temporal["AP_per_class"]["0.5"],
    pr_curves=report.pr_curves(gt, dets, 0.5),
    alpha_examples=[
      dict(
        video_id="v1",
        alpha=alpha,
        classes=CLASSES,
        gamma=0.6,
        gt_segments=gt_frames["v1"],
        detections=results["v1"],
      )
    ],
    overlay_examples=[
      dict(
        video_id="v1",
        frames=frames,
        masks=masks,
        gt_masks=np.roll(masks, 3, 2),
        frame_ids=[10, 15, 20, 25, 30],
        label="Diving",
      ),
      dict(
        video_id="v/2 odd",
        frames=frames[:1],
        masks=masks[:1],
        gt_masks=None,
        frame_ids=[7],
        label="High|Jump",
      ),
    ],
    iterations=[
      dict(
        iteration=0, num_segments=6, mask_change=None, seconds=10.0, map_at_05=0.5, mask_iou=0.4
      ),
      dict(
        iteration=1, num_segments=5, mask_change=0.9, seconds=9.0, map_at_05=None, mask_iou=0.45
      ),
    ],
  )


def _figures(md):
  return re.findall(r"\]\(figures/([^)]+)\)", md)


def _check_pngs(out, names):
  for name in names:
    path = out / "figures" / name
    assert path.is_file(), name
    assert path.stat().st_size < 300_000, name
    with Image.open(path) as im:
      assert im.format == "PNG"
      im.verify()


def test_full_report(tmp_path, inputs):
  path = report.write_report(tmp_path / "out", **inputs)
  assert path == tmp_path / "out" / "report.md"
  md = path.read_text()
  for name in CLASSES:
    assert name.replace("|", "\\|") in md, name
  names = _figures(md)
  assert len(names) == 6  # AP bars, PR, 1 alpha, 2 overlays, iterations
  assert "ap_per_class.png" in names and "iterations.png" in names
  _check_pngs(tmp_path / "out", names)
  temporal = inputs["metrics"]["temporal"]
  assert f"| mAP @ tIoU 0.5 (activitynet) | {100 * temporal['mAP'][1]:.2f} |" in md
  assert "| Mask J (DAVIS) | 60.00 |" in md
  assert "video-mAP @ ST-IoU 0.2" in md
  assert "| Time: spatial (s) | 30.2 |" in md or "| Time: spatial (s) | 30.3 |" in md
  assert "| run_name | unit-test |" in md
  assert "## Alternating optimization" in md
  # Every table row has as many cells as its header (no pipe leaked out of a class name).
  for block in re.findall(r"((?:^\|.*\|\n)+)", md, re.M):
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in block.splitlines()]
    assert len({len(r) for r in rows}) == 1, block
  leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]
  assert not leftovers


def test_figures_are_deterministic(tmp_path, inputs):
  report.write_report(tmp_path / "a", **inputs)
  report.write_report(tmp_path / "b", **inputs)
  files = sorted(p.name for p in (tmp_path / "a" / "figures").iterdir())
  assert files
  for name in files:
    assert (tmp_path / "a" / "figures" / name).read_bytes() == (
      tmp_path / "b" / "figures" / name
    ).read_bytes(), name
  assert (tmp_path / "a" / "report.md").read_text() == (tmp_path / "b" / "report.md").read_text()


def test_optional_inputs_missing(tmp_path, inputs):
  md = report.write_report(tmp_path / "min", metrics={}).read_text()
  assert "No scores given." in md and not _figures(md)
  md = report.write_report(
    tmp_path / "ap",
    metrics={},
    per_class_ap={"A": 0.5, "B": None, "C": float("nan")},
    pr_curves={"A": (np.array([1.0, 0.5]), np.array([0.5, 0.5])), "B": (np.zeros(0), np.zeros(0))},
  ).read_text()
  assert "| mAP @ tIoU 0.5 | 50.00 |" in md
  for name in "ABC":
    assert f"| {name} |" in md
  assert _figures(md) == ["ap_per_class.png", "pr_curves.png"]
  _check_pngs(tmp_path / "ap", _figures(md))
  assert "Alternating" not in md
  # Top-level score_detections dict is accepted as the temporal section.
  md = report.write_report(tmp_path / "top", metrics=inputs["metrics"]["temporal"]).read_text()
  assert "mAP @ tIoU 0.3 (activitynet)" in md and "PoleVault" in md


def test_bad_example_writes_nothing(tmp_path, inputs):
  bad = dict(inputs["overlay_examples"][0], masks=np.zeros((5, 3, 3), bool))
  with pytest.raises(ValueError, match="overlay example 'v1'"):
    report.write_report(tmp_path / "x", **dict(inputs, overlay_examples=[bad]))
  assert not (tmp_path / "x").exists()
  bad = dict(inputs["alpha_examples"][0], classes=CLASSES[:2])
  with pytest.raises(ValueError, match="alpha example 'v1'"):
    report.write_report(tmp_path / "x", **dict(inputs, alpha_examples=[bad]))
  assert not (tmp_path / "x").exists()


def test_failed_write_keeps_previous_report(tmp_path, inputs, monkeypatch):
  out = tmp_path / "out"
  out.mkdir()
  (out / "report.md").write_text("previous\n")
  real_replace = os.replace

  def replace(src, dst):
    if str(dst).endswith("report.md"):
      raise OSError("disk full")
    real_replace(src, dst)

  monkeypatch.setattr(os, "replace", replace)
  with pytest.raises(OSError, match="disk full"):
    report.write_report(out, metrics={}, per_class_ap={"A": 0.5})
  assert (out / "report.md").read_text() == "previous\n"
  assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_precision_recall_matches_activitynet_ap():
  rng = np.random.default_rng(1)
  videos = [f"v{i}" for i in range(5)]
  gt_v, gt_l, gt_s = [], [], []
  for v in videos:
    for s in rng.choice(np.arange(0, 100, 12), 3, replace=False):
      gt_v.append(v)
      gt_l.append(int(rng.integers(3)))
      gt_s.append([float(s), float(s + rng.integers(3, 11))])
  gt = temporal_map.GroundTruth(CLASSES, gt_v, gt_l, gt_s, [], [])
  n = 60
  starts = rng.integers(0, 100, n).astype(float)
  dets = temporal_map.Detections(
    rng.choice(videos, n),
    rng.integers(3, size=n),
    np.stack([starts, starts + rng.integers(2, 12, n)], 1),
    rng.random(n).round(1),
  )  # rounded: ties in score
  for tiou in (0.3, 0.5, 0.7):
    ap = temporal_map.activitynet_average_precision(gt, dets, [tiou])[0]
    for c in range(3):
      precision, recall = report.precision_recall(gt, dets, c, tiou)
      assert len(precision) == int((dets.label == c).sum())
      assert np.all(np.diff(recall) >= 0) and recall[-1] <= 1
      assert temporal_map.envelope_ap(precision, recall) == pytest.approx(ap[c]), (tiou, c)


def test_precision_recall_hand_case():
  gt = temporal_map.GroundTruth(["A"], ["v", "v"], [0, 0], [[0, 10], [20, 30]], [], [])
  dets = temporal_map.Detections(
    ["v", "v", "v"], [0, 0, 0], [[0, 10], [0, 10], [20, 29]], [0.9, 0.8, 0.7]
  )
  precision, recall = report.precision_recall(gt, dets, 0, 0.5)
  np.testing.assert_allclose(precision, [1, 0.5, 2 / 3])
  np.testing.assert_allclose(recall, [0.5, 0.5, 1])


def test_overlay_contours():
  frame = np.zeros((20, 20, 3), np.uint8)
  mask = np.zeros((20, 20), bool)
  mask[5:15, 5:15] = True
  out = report_figures.overlay_contours(
    frame, mask, gt_mask=np.roll(mask, 5, axis=1)
  )  # columns 10..19
  red = np.all(out == (255, 0, 0), axis=-1)
  green = np.all(out == (0, 255, 0), axis=-1)
  assert red[5, 5:15].all() and red[5:15, 5].all() and not red[10, 10]
  assert green[5, 15:20].all() and not green[10, 12]  # red is drawn on top of green
  assert green[10, 19]  # the ground truth touches the right border: its edge is drawn there
  assert not red[0].any() and frame.sum() == 0  # input untouched
