"""Tests of ``python -m segtube_jax.detect``: one video through the detector of a training workdir."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import video as video_lib
from segtube_jax.training import trainer
from tests import detector_testing
from tests.conftest import PROJECT_ROOT

DETECTION_KEYS = {"video", "fps", "num_frames", "checkpoint_step", "detections", "iterations"}


@pytest.fixture(scope="module")
def workdir(tiny_synthetic, tmp_path_factory):
  """The detector that flags every window (as its first class), in a workdir with experiment.json."""
  return detector_testing.biased_workdir(tiny_synthetic, tmp_path_factory)


def _detect(video, workdir, out):
  return subprocess.run([sys.executable, "-m", "segtube_jax.detect", "--video", str(video), "--workdir", str(workdir),
                         "--out", str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def _red(frame):
  x = frame.astype(int)
  return (x[..., 0] > 180) & (x[..., 1] < 90) & (x[..., 2] < 90)


def _check_outputs(out, video, workdir):
  """The files of one detect run on a video that the detector localizes whole; returns detections.json."""
  source = video_lib.open_frames(video).read(0, None)
  result = json.loads((out / "detections.json").read_text())
  assert set(result) == DETECTION_KEYS
  assert result["video"] == str(video) and result["num_frames"] == len(source) and result["checkpoint_step"] == 2
  _, classes = trainer.load_experiment(workdir)
  (det,) = result["detections"]
  assert det["label"] == classes[0] and det["frames"] == [0, len(source)]
  assert det["segment"] == pytest.approx([0.0, len(source) / result["fps"]]) and 0.6 < det["score"] <= 1.0
  (chunk,) = result["iterations"]  # One chunk: the video is shorter than --chunk_frames.
  assert chunk["frames"] == [0, len(source)]
  assert 1 <= len(chunk["iterations"]) <= 2 and chunk["iterations"][0]["iteration"] == 0
  pngs = sorted((out / "masks").iterdir())
  assert [p.name for p in pngs] == [f"{t:06d}.png" for t in range(len(source))]
  overlay = video_lib.open_frames(out / "overlay.mp4")
  frames = overlay.read(0, None)
  assert overlay.num_frames == len(frames) == len(source)
  assert overlay.fps == pytest.approx(result["fps"], abs=0.01)
  scale = max(1, round(240 / source.shape[1]))  # Small videos are enlarged.
  assert frames.shape[1:] == (source.shape[1] * scale, source.shape[2] * scale, 3)
  t = len(source) // 2
  if np.asarray(Image.open(pngs[t])).any():
    assert _red(frames[t]).sum() > _red(np.repeat(np.repeat(source[t], scale, 0), scale, 1)).sum()  # Contours.
  return result


def test_detect_tiny_synthetic_video(workdir, tiny_synthetic, tmp_path):
  video_id = dataset_lib.load_dataset(tiny_synthetic).subset("testing")[0].video_id
  video = tiny_synthetic / "videos" / f"{video_id}.mp4"
  done = _detect(video, workdir, tmp_path / "out")
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"1 detection(s) in {video} (150 frames)" in done.stdout
  result = _check_outputs(tmp_path / "out", video, workdir)
  assert result["fps"] == 25.0


@pytest.mark.slow
def test_detect_real_ucf101_video(workdir, shared_data, tmp_path):
  video = shared_data / "ucf101" / "v_ApplyEyeMakeup_g01_c01.avi"
  if not video.is_file():
    pytest.skip(f"{video} not found")
  done = _detect(video, workdir, tmp_path / "out")
  assert done.returncode == 0, done.stderr[-3000:]
  _check_outputs(tmp_path / "out", video, workdir)


def test_missing_video_exits_2_naming_it(workdir, tmp_path):
  missing = tmp_path / "no_such_video.mp4"
  done = _detect(missing, workdir, tmp_path / "out")
  assert done.returncode == 2
  assert f"error: {missing}: no such video file or frame folder" in done.stderr
  assert not (tmp_path / "out").exists()


def test_workdir_without_experiment_file_is_a_clear_error(workdir, tiny_synthetic, tmp_path):
  bare = tmp_path / "bare"
  shutil.copytree(workdir / "checkpoints", bare / "checkpoints")
  done = _detect(next((tiny_synthetic / "videos").iterdir()), bare, tmp_path / "out")
  assert done.returncode == 2
  assert f"error: {bare / 'experiment.json'}: not found; is {bare} a training workdir" in done.stderr
  assert "Traceback" not in done.stderr


def test_long_video_is_streamed_in_chunks_and_segments_join_across_them(workdir, tiny_synthetic, tmp_path):
  from segtube_jax import detect  # pylint: disable=import-outside-toplevel
  video_id = dataset_lib.load_dataset(tiny_synthetic).subset("testing")[0].video_id
  video = tiny_synthetic / "videos" / f"{video_id}.mp4"
  result = detect.detect_video(str(video), str(workdir), str(tmp_path / "out"), chunk_frames=64)
  assert [c["frames"] for c in result["iterations"]] == [[0, 64], [64, 128], [128, 150]]
  # The biased model flags every window: one detection over the whole video, joined across chunks.
  assert [d["frames"] for d in result["detections"]] == [[0, 150]]
  assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == [f"{t:06d}.png" for t in range(150)]
  assert video_lib.open_frames(tmp_path / "out" / "overlay.mp4").num_frames == 150


def test_join_segments_merges_touching_same_class_segments_only():
  from segtube_jax.detection.streaming import join_segments  # pylint: disable=import-outside-toplevel
  from segtube_jax.evaluation.detection_writers import DetectedSegment  # pylint: disable=import-outside-toplevel
  seg = lambda c, a, b, s: DetectedSegment("AB"[c], c, a, b, s, 25.0)
  joined = join_segments([seg(0, 0, 64, 0.5), seg(0, 64, 100, 0.8), seg(1, 64, 90, 0.9), seg(0, 120, 130, 0.1)])
  assert [(s.class_index, s.start_frame, s.end_frame) for s in joined] == [(0, 0, 100), (1, 64, 90), (0, 120, 130)]
  assert joined[0].score == pytest.approx((0.5 * 64 + 0.8 * 36) / 100)
