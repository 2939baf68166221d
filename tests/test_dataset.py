"""Tests of the dataset format: loading, validation and the validator CLI."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from segtube_jax.data import dataset, video
from segtube_jax.errors import DatasetError
from tests.conftest import PROJECT_ROOT


def make_dataset(root, num_frames=40, size=(32, 32), with_masks=True):
  """A two-video dataset: one mp4 with masks, one frame folder."""
  (root / "videos").mkdir(parents=True)
  rng = np.random.default_rng(0)
  video.write_video(
    root / "videos" / "a.mp4", rng.integers(0, 255, (num_frames,) + size + (3,), dtype=np.uint8)
  )
  frames = root / "frames" / "b"
  frames.mkdir(parents=True)
  for i in range(20):
    Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(frames / f"{i:06d}.png")
  if with_masks:
    masks = root / "masks" / "a"
    masks.mkdir(parents=True)
    for i in range(8, 16):
      Image.fromarray(np.full(size, 255, np.uint8)).save(masks / f"{i:06d}.png")
  ann = {
    "version": "test",
    "classes": ["Hop", "Spin"],
    "database": {
      "a": {
        "subset": "training",
        "fps": 25.0,
        "num_frames": num_frames,
        "duration": num_frames / 25,
        "annotations": [{"label": "Hop", "segment": [8 / 25, 16 / 25]}],
      },
      "b": {
        "subset": "testing",
        "fps": None,
        "num_frames": None,
        "duration": None,
        "annotations": [{"label": "Spin", "segment": [0.0, 0.4]}],
        "ambiguous": [[0.5, 0.6]],
      },
    },
  }
  dataset.write_annotations(root / "annotations.json", ann)
  return ann


def _edit(root, fn):
  ann = json.loads((root / "annotations.json").read_text())
  fn(ann)
  (root / "annotations.json").write_text(json.dumps(ann))


def test_load_valid_dataset(tmp_path):
  make_dataset(tmp_path)
  ds = dataset.load_dataset(tmp_path)
  assert ds.classes == ["Hop", "Spin"] and ds.class_index("Spin") == 2
  a, b = ds.videos["a"], ds.videos["b"]
  assert a.annotations[0].frame_span(a.fps) == (8, 16)
  assert (b.fps, b.num_frames) == (25.0, 20)  # Filled from the frame folder.
  assert b.ambiguous == ((0.5, 0.6),)
  assert [v.video_id for v in ds.subset("testing")] == ["b"]
  assert ds.open_frames("a").read(0, 2).shape == (2, 32, 32, 3)
  masks = ds.masks("a")
  assert masks.indices == list(range(8, 16)) and ds.masks("b") is None
  assert dataset.validate_dataset(tmp_path) == []


def test_frame_span_conventions():
  inst = dataset.Instance("Hop", 1.0, 2.0)
  assert inst.frame_span(25.0) == (25, 50)
  assert dataset.Instance("Hop", 1.01, 1.99).frame_span(25.0) == (25, 50)


@pytest.mark.parametrize(
  "edit, expected",
  [
    (
      lambda a: a["database"]["a"]["annotations"][0].update(label="Jump"),
      r"video 'a': annotations\[0\].label 'Jump' is not one of",
    ),
    (
      lambda a: a["database"]["a"]["annotations"][0].update(segment=[0.5, 0.2]),
      r"video 'a': annotations\[0\].segment \[0.5, 0.2\] must satisfy",
    ),
    (
      lambda a: a["database"]["a"]["annotations"][0].update(segment=[0.5, 9.0]),
      r"video 'a': annotations\[0\].segment \[0.5, 9.0\] ends after",
    ),
    (
      lambda a: a["database"]["a"]["annotations"][0].update(segment="0-1"),
      r"segment must be \[t_start, t_end\]",
    ),
    (lambda a: a["database"]["a"].update(subset="train"), r"video 'a': 'subset' must be one of"),
    (lambda a: a["database"]["a"].update(fps=-1), r"video 'a': 'fps' must be a positive number"),
    (
      lambda a: a["database"]["a"].update(num_frames=41),
      r"video 'a': 'num_frames' is 41 but .*a.mp4 has 40 frames",
    ),
    (
      lambda a: a["database"].update(c={"subset": "testing", "annotations": []}),
      r"video 'c': no file videos/c",
    ),
    (lambda a: a.update(classes=[]), r"'classes' must be a non-empty list"),
  ],
)
def test_annotation_problems_name_video_and_field(tmp_path, edit, expected):
  make_dataset(tmp_path)
  _edit(tmp_path, edit)
  with pytest.raises(DatasetError, match=expected):
    dataset.load_dataset(tmp_path)
  assert any(__import__("re").search(expected, p) for p in dataset.validate_dataset(tmp_path))


def test_bad_json_reports_line(tmp_path):
  make_dataset(tmp_path)
  (tmp_path / "annotations.json").write_text('{\n "classes": ["A"],\n "database": {,}\n}')
  with pytest.raises(DatasetError, match=r"invalid JSON at line 3"):
    dataset.load_dataset(tmp_path)


def test_missing_folder_and_file(tmp_path):
  with pytest.raises(DatasetError, match="dataset folder not found"):
    dataset.load_dataset(tmp_path / "nope")
  with pytest.raises(DatasetError, match="annotations file not found"):
    dataset.load_dataset(tmp_path)


def test_unreadable_video_and_mask_size(tmp_path):
  make_dataset(tmp_path)
  (tmp_path / "videos" / "a.mp4").write_bytes(b"garbage")
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "masks" / "a" / "000009.png")
  problems = dataset.validate_dataset(tmp_path)
  assert any("video 'a'" in p and "not a readable video" in p for p in problems)


def test_mask_size_problem(tmp_path):
  make_dataset(tmp_path)
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "masks" / "a" / "000009.png")
  problems = dataset.validate_dataset(tmp_path)
  assert problems == ["video 'a': mask 000009.png is 10x10 but the frames are 32x32"]


def test_validator_cli(tmp_path):
  make_dataset(tmp_path)
  cmd = [sys.executable, "-m", "segtube_jax.data.validate", str(tmp_path)]
  ok = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)
  assert ok.returncode == 0 and "valid dataset" in ok.stdout
  _edit(tmp_path, lambda a: a["database"]["a"]["annotations"][0].update(label="Jump"))
  (tmp_path / "videos" / "a.mp4").unlink()
  bad = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)
  assert bad.returncode == 1
  assert "annotations[0].label 'Jump'" in bad.stdout and "video 'b'" not in bad.stdout
  assert "video 'a': no file videos/a" in bad.stdout
  assert "2 problem(s)" in bad.stderr
