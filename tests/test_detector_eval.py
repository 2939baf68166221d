"""Tests of segtube_jax.evaluation.detector_eval: the detector end to end on the tiny dataset."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.errors import CheckpointError, ConfigError
from segtube_jax.evaluation import detection_files, detector_eval
from tests import detector_testing
from tests.conftest import PROJECT_ROOT, cached_env, tiny_training_config

METRIC_KEYS = {
  "protocol",
  "temporal",
  "temporal_by_protocol",
  "segmentation",
  "spatiotemporal",
  "iterations",
  "loop",
  "errors",
  "checkpoint_step",
  "num_videos",
  "timings",
}


@pytest.fixture(scope="module")
def evaluated(tiny_synthetic, tmp_path_factory):
  """(config, workdir, returned metrics) of one evaluation with the whole-video detector."""
  workdir = detector_testing.copy_workdir(
    detector_testing.biased_workdir(tiny_synthetic, tmp_path_factory),
    tmp_path_factory.mktemp("eval") / "w",
  )
  stale = workdir / "eval" / "masks" / "old_video"
  stale.mkdir(parents=True)
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(stale / "000000.png")
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides())
  return config, workdir, detector_eval.evaluate(config, workdir)


def test_writes_every_output(evaluated, tiny_synthetic):
  config, workdir, metrics = evaluated
  out = workdir / "eval"
  for name in ("detections.json", "detections.txt", "metrics.json", "report.md"):
    assert (out / name).is_file(), name
  video_id = dataset_lib.load_dataset(tiny_synthetic).subset("testing")[0].video_id
  assert sorted(p.name for p in (out / "masks").iterdir()) == [
    video_id
  ]  # The stale folder is gone.
  # The detector flags every window: one detection over the whole video, masks on all its frames.
  pngs = sorted((out / "masks" / video_id).iterdir())
  assert [p.name for p in pngs] == [f"{t:06d}.png" for t in range(150)]
  mask = np.asarray(Image.open(pngs[60]))
  assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255} and mask.any()
  figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", (out / "report.md").read_text())
  assert len(figures) >= 3 and all((out / f).is_file() for f in figures)
  assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))


def test_detections_are_activitynet_json_and_read_back(evaluated, tiny_synthetic):
  _, workdir, _ = evaluated
  ds = dataset_lib.load_dataset(tiny_synthetic)
  video_id = ds.subset("testing")[0].video_id
  data = json.loads((workdir / "eval" / "detections.json").read_text())
  assert set(data) == {"version", "results", "external_data"} and list(data["results"]) == [
    video_id
  ]
  (det,) = data["results"][video_id]
  assert set(det) == {"label", "score", "segment"} and det["label"] == ds.classes[0]
  assert det["segment"] == [0.0, 150 / 25.0] and 0.6 < det["score"] <= 1.0
  for name in ("detections.json", "detections.txt"):
    read = detection_files.read_detections(workdir / "eval" / name, ds.classes)
    assert list(read.video) == [video_id] and list(read.label) == [0]
    np.testing.assert_allclose(read.segment, [[0.0, 6.0]])
    assert read.score[0] == pytest.approx(det["score"])


def test_metrics(evaluated, tiny_synthetic):
  config, _, metrics = evaluated
  ds = dataset_lib.load_dataset(tiny_synthetic)
  info = ds.subset("testing")[0]
  assert set(metrics) == METRIC_KEYS
  assert metrics["checkpoint_step"] == 2 and metrics["num_videos"] == 1 and metrics["errors"] == {}
  temporal = metrics["temporal"]
  assert temporal["tiou"] == list(config.evaluation.tious) and len(temporal["mAP"]) == len(
    temporal["tiou"]
  )
  assert set(metrics["temporal_by_protocol"]) == {"thumos14", "activitynet"}
  # One detection [0, 150) against the single ground-truth instance: AP 1 where their tIoU clears the threshold.
  fs, fe = info.annotations[0].frame_span(info.fps)
  tiou = (fe - fs) / 150
  assert temporal["mAP"] == [1.0 if tiou >= t else 0.0 for t in config.evaluation.tious]
  seg = metrics["segmentation"]
  assert list(seg["per_video"]) == [info.video_id] and 0.0 < seg["mean"]["iou"] <= 1.0
  assert (
    seg["per_video"][info.video_id]["frames"] == fe - fs
  )  # Ground-truth masks exist on the action frames.
  st = metrics["spatiotemporal"]
  assert st["thresholds"] == list(config.evaluation.st_ious) and len(st["mAP"]) == len(
    st["thresholds"]
  )
  assert all(0.0 <= m <= 1.0 for m in st["mAP"])
  log = metrics["iterations"][info.video_id]
  assert 1 <= len(log) <= 2 and log[0]["segments"][0][1:3] == [0, 150]
  assert metrics["loop"] == {
    "mean_iterations": float(len(log)),
    "max_iterations": len(log),
    "converged_videos": int(log[-1]["converged"]),
    "videos": 1,
  }
  lines = detector_eval.summary_lines(metrics, "W")
  assert "checkpoint step 2, 1 videos" in lines and "report: W/eval/report.md" in lines
  assert "mAP: tIoU 0.1: " in lines and "masks: IoU" in lines and "FAILED" not in lines


def test_unreadable_video_fails_by_name_after_the_others_are_written(
  evaluated, tiny_synthetic, tmp_path
):
  root = tmp_path / "data"
  shutil.copytree(tiny_synthetic, root)
  good, bad = [v.video_id for v in dataset_lib.load_dataset(root).subset("testing")[:2]]
  (root / "videos" / f"{bad}.mp4").write_bytes(b"not a video" * 50)
  _, shared, _ = evaluated
  workdir = detector_testing.copy_workdir(shared, tmp_path / "w")
  config = tiny_training_config(
    root, **detector_testing.fast_overrides(**{"evaluation.max_videos": 2})
  )
  with pytest.raises(
    detector_eval.VideosFailed, match=rf"1 of 2 video\(s\) failed .*{bad}: .*videos/{bad}\.mp4"
  ):
    detector_eval.evaluate(config, workdir)
  out = workdir / "eval"
  metrics = json.loads((out / "metrics.json").read_text())
  assert list(metrics["errors"]) == [bad] and bad in metrics["errors"][bad]
  assert metrics["num_videos"] == 2 and list(metrics["iterations"]) == [good]
  assert list(json.loads((out / "detections.json").read_text())["results"]) == [good]
  assert sorted(p.name for p in (out / "masks").iterdir()) == [good]
  assert (out / "report.md").is_file()
  assert f"FAILED videos: ['{bad}']" in detector_eval.summary_lines(metrics, workdir)
  # Every video unreadable: nothing to score, still the same error naming them.
  (root / "videos" / f"{good}.mp4").write_bytes(b"")
  all_failed = rf"all 2 video\(s\) failed, nothing was scored: {good}: .*; {bad}: "
  with pytest.raises(detector_eval.VideosFailed, match=all_failed):
    detector_eval.evaluate(config, workdir)


def test_no_checkpoint_is_a_clear_error(tiny_synthetic, tmp_path):
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides())
  (tmp_path / "empty").mkdir()
  for workdir in (tmp_path / "empty", tmp_path / "missing"):
    where = re.escape(str(workdir))
    with pytest.raises(
      CheckpointError,
      match=rf"{where}: no usable checkpoint to evaluate .*train first: "
      rf"python train.py --config \.\.\. --workdir {where}",
    ):
      detector_eval.evaluate(config, workdir)
  assert not (tmp_path / "empty" / "eval").exists()


@pytest.mark.parametrize(
  "key, value, match",
  [
    (
      "evaluation.protocol",
      "coco",
      r"evaluation.protocol must be one of \('thumos14', 'activitynet'\)",
    ),
    ("evaluation.workers", 0, "config.evaluation.workers must be a positive integer, got 0"),
    ("detector.class_assignment", "clip", "class_assignment must be one of"),
  ],
)
def test_bad_config_is_a_clear_error(evaluated, tiny_synthetic, tmp_path, key, value, match):
  _, workdir, _ = evaluated
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides(**{key: value}))
  with pytest.raises(ConfigError, match=match):
    detector_eval.evaluate(config, workdir)


def _evaluate_cli(*args):
  return subprocess.run(
    [sys.executable, "evaluate.py", *args],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=cached_env(),
  )


@pytest.mark.slow
def test_evaluate_cli_detector_mode(tiny_synthetic, tmp_path_factory, tmp_path):
  workdir = detector_testing.copy_workdir(
    detector_testing.trained_workdir(tiny_synthetic, tmp_path_factory), tmp_path / "w"
  )
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides())
  done = _evaluate_cli(
    "--config",
    "configs/synthetic.py",
    "--workdir",
    str(workdir),
    *detector_testing.cli_overrides(config),
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"report: {workdir / 'eval' / 'report.md'}" in done.stdout
  assert "detector evaluation of" in done.stdout and "checkpoint step 1, 1 videos" in done.stdout
  metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
  assert metrics["checkpoint_step"] == 1 and metrics["errors"] == {}
  assert (workdir / "eval" / "report.md").is_file() and (
    workdir / "eval" / "detections.json"
  ).is_file()


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ["--detections", "d.json", "--config", "configs/synthetic.py", "--workdir", "w"],
      "pass either --config/--workdir (detector mode) or --detections (scoring mode)",
    ),
    (["--config", "configs/synthetic.py"], "--workdir is required with --config"),
  ],
)
def test_evaluate_cli_bad_usage(args, message):
  done = _evaluate_cli(*args)
  assert done.returncode != 0 and message in done.stderr
