"""Tests of ``python -m segtube_jax.detect_videos``: one video through the detector of a training workdir."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import video as video_lib
from segtube_jax.training import trainer
from tests import detector_testing
from tests.conftest import PROJECT_ROOT, cached_env

DETECTION_KEYS = {
  "video",
  "fps",
  "num_frames",
  "checkpoint_step",
  "gamma",
  "detections",
  "iterations",
}


@pytest.fixture(scope="module")
def workdir(tiny_synthetic, tmp_path_factory):
  """The detector that flags every window (as its first class), in a workdir with experiment.json."""
  return detector_testing.biased_workdir(tiny_synthetic, tmp_path_factory)


def _detect(video, workdir, out, *extra):
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "segtube_jax.detect_videos",
      "--video",
      str(video),
      "--workdir",
      str(workdir),
      "--out",
      str(out),
      *extra,
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=cached_env(),
  )


def _red(frame):
  x = frame.astype(int)
  return (x[..., 0] > 180) & (x[..., 1] < 90) & (x[..., 2] < 90)


def _check_outputs(out, video, workdir):
  """The files of one detect run on a video that the detector localizes whole; returns detections.json."""
  source = video_lib.open_frames(video).read(0, None)
  result = json.loads((out / "detections.json").read_text())
  assert set(result) == DETECTION_KEYS
  assert (
    result["video"] == str(video)
    and result["num_frames"] == len(source)
    and result["checkpoint_step"] == 2
  )
  _, classes = trainer.load_experiment(workdir)
  (det,) = result["detections"]
  assert det["label"] == classes[0] and det["frames"] == [0, len(source)]
  assert (
    det["segment"] == pytest.approx([0.0, len(source) / result["fps"]])
    and 0.6 < det["score"] <= 1.0
  )
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
    assert (
      _red(frames[t]).sum() > _red(np.repeat(np.repeat(source[t], scale, 0), scale, 1)).sum()
    )  # Contours.
  return result


def test_detect_tiny_synthetic_video(workdir, tiny_synthetic, tmp_path):
  video_id = dataset_lib.load_dataset(tiny_synthetic).subset("testing")[0].video_id
  video = tiny_synthetic / "videos" / f"{video_id}.mp4"
  done = _detect(video, workdir, tmp_path / "out", "--gamma", "0.3")
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"1 detection(s) in {video} (150 frames)" in done.stdout
  result = _check_outputs(tmp_path / "out", video, workdir)
  assert result["fps"] == 25.0 and result["gamma"] == 0.3  # --gamma overrides the workdir's.
  bad = _detect(video, workdir, tmp_path / "bad", "--gamma", "1.5")
  assert bad.returncode == 2 and "config.detector.gamma must be in [0, 1), got 1.5" in bad.stderr
  assert not (tmp_path / "bad").exists()


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
  assert (
    f"error: {bare / 'experiment.json'}: not found; is {bare} a training workdir" in done.stderr
  )
  assert "Traceback" not in done.stderr


def test_long_video_is_streamed_in_chunks_and_segments_join_across_them(
  workdir, tiny_synthetic, tmp_path
):
  from segtube_jax import detect_videos  # pylint: disable=import-outside-toplevel

  video_id = dataset_lib.load_dataset(tiny_synthetic).subset("testing")[0].video_id
  video = tiny_synthetic / "videos" / f"{video_id}.mp4"
  result = detect_videos.detect_video(
    str(video), str(workdir), str(tmp_path / "out"), chunk_frames=64
  )
  assert [c["frames"] for c in result["iterations"]] == [[0, 64], [64, 128], [128, 150]]
  # The biased model flags every window: one detection over the whole video, joined across chunks.
  assert [d["frames"] for d in result["detections"]] == [[0, 150]]
  assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == [
    f"{t:06d}.png" for t in range(150)
  ]
  assert video_lib.open_frames(tmp_path / "out" / "overlay.mp4").num_frames == 150


def test_join_segments_merges_touching_same_class_segments_only():
  from segtube_jax.detection.streaming import join_segments  # pylint: disable=import-outside-toplevel
  from segtube_jax.types import DetectedSegment  # pylint: disable=import-outside-toplevel

  seg = lambda c, a, b, s: DetectedSegment("AB"[c], c, a, b, s, 25.0)
  joined = join_segments(
    [seg(0, 0, 64, 0.5), seg(0, 64, 100, 0.8), seg(1, 64, 90, 0.9), seg(0, 120, 130, 0.1)]
  )
  assert [(s.class_index, s.start_frame, s.end_frame) for s in joined] == [
    (0, 0, 100),
    (1, 64, 90),
    (0, 120, 130),
  ]
  assert joined[0].score == pytest.approx((0.5 * 64 + 0.8 * 36) / 100)


def _faststart_copy(src, dst):
  """``src`` remuxed with its index (moov) first, as streaming sites serve mp4: cut short, it still opens."""
  import av  # pylint: disable=import-outside-toplevel

  with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
    stream = out.add_stream_from_template(inp.streams.video[0])
    for packet in inp.demux(inp.streams.video[0]):
      if packet.dts is not None:
        packet.stream = stream
        out.mux(packet)


# Segmentation settings that keep the whole-video detector quick on hundreds of frames.
CHEAP_SEGMENTATION = {
  "segmentation.max_rounds": 1,
  "segmentation.refine.enabled": False,
  "segmentation.gmm.max_iter": 5,
  "detector.max_iterations": 1,
}


def cheap_copy(workdir, dest):
  """A copy of ``workdir`` whose experiment.json holds :data:`CHEAP_SEGMENTATION`."""
  detector_testing.copy_workdir(workdir, dest)
  data = json.loads((dest / "experiment.json").read_text())
  for key, value in CHEAP_SEGMENTATION.items():
    *path, last = key.split(".")
    node = data["config"]
    for part in path:
      node = node[part]
    node[last] = value
  (dest / "experiment.json").write_text(json.dumps(data))
  return dest


@pytest.fixture(scope="module")
def cheap_workdir(workdir, tmp_path_factory):
  return cheap_copy(workdir, tmp_path_factory.mktemp("cheap") / "w")


def _bad_videos(good, folder):
  """{kind: path}: an mp4 cut in half (index at its end: does not open), one cut at 3/4 with its index first
  (opens, 2/3 of its frames decode, then the data ends) and garbage bytes."""
  folder.mkdir(parents=True, exist_ok=True)
  data = good.read_bytes()
  (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
  _faststart_copy(good, folder / "full.mp4")
  full = (folder / "full.mp4").read_bytes()
  (folder / "cut_faststart.mp4").write_bytes(full[: len(full) * 3 // 4])
  (folder / "garbage.mp4").write_bytes(b"not a video" * 300)
  return {
    "cut": folder / "cut.mp4",
    "cut_faststart": folder / "cut_faststart.mp4",
    "garbage": folder / "garbage.mp4",
  }


def test_truncated_and_garbage_videos_among_good_ones_fail_by_name(
  cheap_workdir, tiny_synthetic, tmp_path
):
  good = sorted((tiny_synthetic / "videos").glob("*.mp4"))[:2]
  bad = _bad_videos(good[0], tmp_path / "bad")
  videos = [good[0], bad["cut"], bad["cut_faststart"], bad["garbage"], good[1]]
  out = tmp_path / "out"
  args = [a for v in videos for a in ("--video", str(v))]
  done = subprocess.run(
    [
      sys.executable,
      "-m",
      "segtube_jax.detect_videos",
      *args,
      "--workdir",
      str(cheap_workdir),
      "--out",
      str(out),
      "--chunk_frames",
      "64",
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=cached_env(),
  )
  assert done.returncode == 1, done.stderr[-3000:]
  summary = json.loads((out / "summary.json").read_text())
  assert summary["num_videos"] == 5 and summary["failed"] == 3 and summary["checkpoint_step"] == 2
  by_video = {e["video"]: e for e in summary["videos"]}
  assert [e["video"] for e in summary["videos"]] == [str(v) for v in videos]
  for video in good:
    entry = by_video[str(video)]
    assert entry["status"] == "ok" and "error" not in entry and entry["num_frames"] == 150
    result = json.loads((out / entry["out"] / "detections.json").read_text())
    assert result["video"] == str(video) and [d["frames"] for d in result["detections"]] == [
      [0, 150]
    ]
    assert len(list((out / entry["out"] / "masks").glob("*.png"))) == 150
    assert video_lib.open_frames(out / entry["out"] / "overlay.mp4").num_frames == 150
  for kind, video in bad.items():
    entry = by_video[str(video)]
    assert (
      entry["status"] == "failed"
      and entry["error"].startswith("VideoError: ")
      and str(video) in entry["error"]
    )
    assert f"error: video {video} failed: VideoError: {video}" in done.stderr
    assert f"{video}: FAILED: VideoError" in done.stdout
    assert not (out / entry["out"]).exists(), (
      kind
    )  # No partial masks of the chunks decoded before the failure.
  # The index-first file opens and its first chunk is detected (and its masks written, then removed)
  # before the decoder runs out of data.
  decoded = re.search(
    r"ends after frame (\d+) but 150 frames were declared",
    by_video[str(bad["cut_faststart"])]["error"],
  )
  assert decoded and int(decoded[1]) >= 64 + 32  # Chunk 0 and its context decode.
  assert "error: 3 of 5 video(s) failed: " in done.stderr and "Traceback" not in done.stderr


def test_glob_of_videos_uses_one_folder_per_video(workdir, tiny_synthetic, tmp_path):
  from segtube_jax import detect_videos  # pylint: disable=import-outside-toplevel

  pattern = str(tiny_synthetic / "videos" / "synth_0000[01].mp4")
  videos = detect_videos.expand_videos(
    [pattern, str(tiny_synthetic / "videos" / "synth_00000.mp4"), "/no/such/*.mp4"]
  )
  assert videos == [str(tiny_synthetic / "videos" / f"synth_0000{i}.mp4") for i in (0, 1)] + [
    "/no/such/*.mp4"
  ]
  assert detect_videos.output_names(["a/x.mp4", "b/x.mp4", "x.avi", "frames/x_1", "y.mp4"]) == [
    "x",
    "x_1",
    "x_2",
    "x_1_1",
    "y",
  ]
  summary = detect_videos.detect_videos(["/no/such/*.mp4"], str(workdir), str(tmp_path / "out"))
  (entry,) = summary["videos"]
  assert (
    summary["failed"] == 1
    and entry["error"] == "VideoError: /no/such/*.mp4: no such video file or frame folder"
  )
  assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary


def test_evaluate_reports_truncated_and_garbage_videos_and_scores_the_others(
  workdir, tiny_synthetic, tmp_path
):
  """evaluate.py --config's library call: the same three bad files among the dataset's videos."""
  from segtube_jax.evaluation import detector_eval  # pylint: disable=import-outside-toplevel
  from tests.conftest import tiny_training_config  # pylint: disable=import-outside-toplevel

  root = tmp_path / "data"
  shutil.copytree(tiny_synthetic, root)
  ids = [v.video_id for v in dataset_lib.load_dataset(root).subset("training")[:4]]
  good, cut, cut_faststart, garbage = ids
  bad = _bad_videos(root / "videos" / f"{good}.mp4", tmp_path / "bad")
  for video_id, kind in ((cut, "cut"), (cut_faststart, "cut_faststart"), (garbage, "garbage")):
    shutil.copy(bad[kind], root / "videos" / f"{video_id}.mp4")
  config = tiny_training_config(
    root,
    **detector_testing.fast_overrides(
      **{"evaluation.subset": "training", "evaluation.max_videos": 4, **CHEAP_SEGMENTATION}
    ),
  )
  eval_workdir = detector_testing.copy_workdir(workdir, tmp_path / "w")
  with pytest.raises(detector_eval.VideosFailed, match=r"3 of 4 video\(s\) failed") as failed:
    detector_eval.evaluate(config, eval_workdir)
  metrics = json.loads((eval_workdir / "eval" / "metrics.json").read_text())
  errors = metrics["errors"]
  assert sorted(errors) == sorted([cut, cut_faststart, garbage]) and list(
    metrics["iterations"]
  ) == [good]
  assert "not a readable video" in errors[cut] and "not a readable video" in errors[garbage]
  assert "ends after frame" in errors[cut_faststart]  # Opens, then the decoder runs out of data.
  for video_id in (cut, cut_faststart, garbage):
    assert f"{video_id}: {errors[video_id]}" in str(failed.value)
  assert sorted(p.name for p in (eval_workdir / "eval" / "masks").iterdir()) == [good]
