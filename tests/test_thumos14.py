"""Tests of the THUMOS14 annotation reader (segtube_jax.data.thumos14)."""

import collections
import json
import pathlib
import subprocess
import sys
import types

import pytest

import segtube_jax.data
from segtube_jax.data import thumos14
from segtube_jax.errors import AnnotationError, ConfigError, DatasetError

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def test_dir(shared_data):
  return shared_data / "thumos14" / "annotation_test"


@pytest.fixture(scope="module")
def test_dataset(test_dir):
  return thumos14.load_thumos14_annotations(test_dir, "testing")


def _write_folder(root, files):
  """Writes {name: text} into root and returns root."""
  root.mkdir(parents=True, exist_ok=True)
  for name, text in files.items():
    (root / name).write_text(text)
  return root


def _small_folder(root, **overrides):
  files = {
    "detclasslist.txt": "1 Jump\n2 Run\n",
    "Jump_test.txt": "video_b 1.0 2.0\nvideo_a 3.0 4.5\nvideo_b 0.5 0.9\n",
    "Run_test.txt": "video_a 10 20\n",
    "Ambiguous_test.txt": "video_c  0.0 1.4\n",
  }
  files.update(overrides)
  return _write_folder(root, {k: v for k, v in files.items() if v is not None})


# --------------------------------------------------------------------------------------
# The real THUMOS14 test annotations.


def test_classes_follow_detclasslist(test_dataset, test_dir):
  assert test_dataset["version"] == "THUMOS14"
  assert len(test_dataset["classes"]) == 20
  assert test_dataset["classes"] == thumos14.read_class_list(test_dir / "detclasslist.txt")
  assert test_dataset["classes"][0] == "BaseballPitch"
  assert test_dataset["classes"][19] == "VolleyballSpiking"


def test_counts_of_real_test_annotations(test_dataset):
  database = test_dataset["database"]
  with_instances = [v for v, info in database.items() if info["annotations"]]
  assert len(with_instances) == 212
  assert sum(len(info["annotations"]) for info in database.values()) == 3358
  labels = {a["label"] for info in database.values() for a in info["annotations"]}
  assert labels == set(test_dataset["classes"])
  with_ambiguous = [v for v, info in database.items() if info["ambiguous"]]
  assert len(with_ambiguous) == 37
  assert sum(len(info["ambiguous"]) for info in database.values()) == 99
  assert len(database) == 213  # the 212 plus video_test_0001292 (Ambiguous only)
  assert list(database) == sorted(database)


def test_video_with_only_ambiguous_intervals(test_dataset):
  info = test_dataset["database"]["video_test_0001292"]
  assert info["annotations"] == []
  assert info["ambiguous"]
  assert info["subset"] == "testing"


def test_cliffdiving_instances_are_also_diving(test_dataset):
  cliff, diving = set(), set()
  for video, info in test_dataset["database"].items():
    for ann in info["annotations"]:
      key = (video, tuple(ann["segment"]))
      {"CliffDiving": cliff, "Diving": diving}.get(ann["label"], set()).add(key)
  assert cliff
  assert cliff <= diving


def test_entries_have_null_video_metadata_and_seconds(test_dataset):
  info = test_dataset["database"]["video_test_0000324"]
  assert info["fps"] is None and info["num_frames"] is None and info["duration"] is None
  assert {"label": "BaseballPitch", "segment": [49.2, 53.5]} in info["annotations"]


def test_per_class_instances_keep_file_order(test_dataset, test_dir):
  for name in test_dataset["classes"]:
    from_file = collections.defaultdict(list)
    for video, t0, t1 in thumos14.read_interval_file(test_dir / f"{name}_test.txt"):
      from_file[video].append([t0, t1])
    from_dataset = collections.defaultdict(list)
    for video, info in test_dataset["database"].items():
      for ann in info["annotations"]:
        if ann["label"] == name:
          from_dataset[video].append(ann["segment"])
    assert from_dataset == from_file, name


def test_validation_folder_needs_a_class_list(shared_data, test_dir):
  val_dir = shared_data / "thumos14" / "annotation_val"
  with pytest.raises(AnnotationError, match="detclasslist.txt.*class_list"):
    thumos14.load_thumos14_annotations(val_dir, "validation")
  dataset = thumos14.load_thumos14_annotations(
    val_dir, "validation", class_list=test_dir / "detclasslist.txt"
  )
  assert dataset["classes"] == thumos14.read_class_list(test_dir / "detclasslist.txt")
  assert {info["subset"] for info in dataset["database"].values()} == {"validation"}
  assert sum(len(info["annotations"]) for info in dataset["database"].values()) > 0


def test_cli_end_to_end(test_dir, test_dataset, tmp_path):
  out = tmp_path / "nested" / "annotations.json"
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "segtube_jax.data.thumos14",
      "--annotations",
      str(test_dir),
      "--subset",
      "testing",
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
  assert "213 videos" in result.stdout and "3358 instances" in result.stdout
  assert json.loads(out.read_text()) == test_dataset
  assert [p.name for p in out.parent.iterdir()] == ["annotations.json"]  # no temp file left


def test_cli_reports_bad_input_without_traceback(tmp_path):
  folder = _small_folder(tmp_path / "ann", **{"Run_test.txt": "video_a 10\n"})
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "segtube_jax.data.thumos14",
      "--annotations",
      str(folder),
      "--out",
      str(tmp_path / "a.json"),
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert result.returncode != 0
  assert "Run_test.txt:1: expected 'video_name t_start t_end'" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "a.json").exists()


# --------------------------------------------------------------------------------------
# Hand-made folders.


def test_small_folder_layout(tmp_path):
  dataset = thumos14.load_thumos14_annotations(_small_folder(tmp_path))
  assert dataset["classes"] == ["Jump", "Run"]
  assert list(dataset["database"]) == ["video_a", "video_b", "video_c"]
  assert dataset["database"]["video_a"]["annotations"] == [
    {"label": "Jump", "segment": [3.0, 4.5]},
    {"label": "Run", "segment": [10.0, 20.0]},
  ]
  # File order, not time order.
  assert [a["segment"] for a in dataset["database"]["video_b"]["annotations"]] == [
    [1.0, 2.0],
    [0.5, 0.9],
  ]
  assert dataset["database"]["video_c"] == {
    "subset": "testing",
    "fps": None,
    "num_frames": None,
    "duration": None,
    "annotations": [],
    "ambiguous": [[0.0, 1.4]],
  }


def test_class_list_ids_order_classes(tmp_path):
  folder = _small_folder(tmp_path, **{"detclasslist.txt": "2 Run\n\n1 Jump\n"})
  assert thumos14.load_thumos14_annotations(folder)["classes"] == ["Jump", "Run"]


@pytest.mark.parametrize(
  "file_name, text, expected",
  [
    (
      "Jump_test.txt",
      "video_a 1.0 2.0\nvideo_a 3.0\n",
      r"Jump_test.txt:2: expected 'video_name t_start t_end' \(3 fields\), got 2 fields",
    ),
    (
      "Jump_test.txt",
      "video_a 1.0 2.0 extra\n",
      r"Jump_test.txt:1: expected 'video_name t_start t_end' \(3 fields\), got 4 fields",
    ),
    (
      "Run_test.txt",
      "\nvideo_a 1.0 abc\n",
      r"Run_test.txt:2: expected numeric t_start and t_end in seconds, got '1.0' 'abc'",
    ),
    ("Run_test.txt", "video_a 5.0 5.0\n", r"Run_test.txt:1: expected t_start < t_end, got 5 >= 5"),
    (
      "Ambiguous_test.txt",
      "video_a 9 2\n",
      r"Ambiguous_test.txt:1: expected t_start < t_end, got 9 >= 2",
    ),
    ("Jump_test.txt", "video_a nan 2\n", r"Jump_test.txt:1: expected finite times"),
    (
      "detclasslist.txt",
      "1 Jump\nRun 2\n",
      r"detclasslist.txt:2: expected an integer class_id, got 'Run'",
    ),
    (
      "detclasslist.txt",
      "1 Jump\n2\n",
      r"detclasslist.txt:2: expected 'class_id ClassName' \(2 fields\), got 1 fields",
    ),
    ("detclasslist.txt", "1 Jump\n3 Run\n", r"detclasslist.txt: expected class ids 1..2"),
    ("detclasslist.txt", "1 Jump\n1 Run\n", r"detclasslist.txt:2: class_id 1 is listed twice"),
    (
      "Swim_test.txt",
      "video_a 1 2\n",
      r"Swim_test.txt: class 'Swim' is not listed in .*detclasslist.txt",
    ),
    ("Run_test.txt", None, r"Run_test.txt: annotation file for class 'Run' not found"),
    ("Ambiguous_test.txt", None, r"Ambiguous_test.txt: annotation file for class 'Ambiguous'"),
  ],
)
def test_malformed_files_name_file_line_and_expectation(tmp_path, file_name, text, expected):
  folder = _small_folder(tmp_path, **{file_name: text})
  if text is None:
    (folder / file_name).unlink(missing_ok=True)
  with pytest.raises(AnnotationError, match=expected) as info:
    thumos14.load_thumos14_annotations(folder)
  assert str(folder / file_name) in str(info.value)


def test_unknown_subset_and_missing_folder(tmp_path):
  with pytest.raises(ConfigError, match="unknown THUMOS14 subset 'train'"):
    thumos14.load_thumos14_annotations(_small_folder(tmp_path), "train")
  with pytest.raises(AnnotationError, match="expected a THUMOS14 annotation folder"):
    thumos14.load_thumos14_annotations(tmp_path / "missing")


# --------------------------------------------------------------------------------------
# Video metadata (--videos), with a stand-in for segtube_jax.data.video.


@pytest.fixture
def fake_video_module(monkeypatch):
  opened = []

  class Reader:
    def __init__(self, path):
      self.path = path
      self.fps = 25.0
      self.num_frames = 100 if "video_a" in str(path) else 50
      self.closed = False
      opened.append(self)

    def close(self):
      self.closed = True

  module = types.ModuleType("segtube_jax.data.video")
  module.open_frames = Reader
  monkeypatch.setitem(sys.modules, "segtube_jax.data.video", module)
  monkeypatch.setattr(segtube_jax.data, "video", module, raising=False)
  return opened


def test_videos_fill_fps_frames_and_duration(tmp_path, fake_video_module):
  folder = _small_folder(tmp_path / "ann")
  videos = _write_folder(
    tmp_path / "videos", {"video_a.mp4": "", "video_b.mp4": "", "video_c.avi": ""}
  )
  dataset = thumos14.load_thumos14_annotations(folder, video_dir=videos)
  assert dataset["database"]["video_a"] | {"annotations": None, "ambiguous": None} == {
    "subset": "testing",
    "fps": 25.0,
    "num_frames": 100,
    "duration": 4.0,
    "annotations": None,
    "ambiguous": None,
  }
  assert dataset["database"]["video_c"]["duration"] == 2.0
  assert all(reader.closed for reader in fake_video_module)
  assert {pathlib.Path(r.path).name for r in fake_video_module} == {
    "video_a.mp4",
    "video_b.mp4",
    "video_c.avi",
  }


def test_missing_video_file_is_a_dataset_error(tmp_path, fake_video_module):
  folder = _small_folder(tmp_path / "ann")
  videos = _write_folder(tmp_path / "videos", {"video_a.mp4": ""})
  with pytest.raises(DatasetError, match=r"videos: no video file for 'video_b'"):
    thumos14.load_thumos14_annotations(folder, video_dir=videos)


def test_cli_reads_video_metadata_from_real_video(shared_data, tmp_path):
  clip = shared_data / "ucf101" / "v_ApplyEyeMakeup_g01_c01.avi"
  if not clip.is_file():
    pytest.skip(f"{clip} not found")
  folder = _small_folder(
    tmp_path / "ann",
    **{
      "Jump_test.txt": f"{clip.stem} 1.0 2.0\n",
      "Run_test.txt": f"{clip.stem} 3 4\n",
      "Ambiguous_test.txt": "",
    },
  )
  out = tmp_path / "annotations.json"
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "segtube_jax.data.thumos14",
      "--annotations",
      str(folder),
      "--out",
      str(out),
      "--videos",
      str(clip.parent),
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  info = json.loads(out.read_text())["database"][clip.stem]
  assert info["fps"] == pytest.approx(25.0)
  assert info["num_frames"] == 164
  assert info["duration"] == pytest.approx(164 / 25.0)
