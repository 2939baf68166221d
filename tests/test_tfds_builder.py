"""Tests of the TFDS frame-chunk builder: round trip against the dataset folder, errors, CLI."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
import tiny_datasets

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import pipeline, tfds_builder
from segtube_jax.errors import ConfigError, DatasetError

FRAME_SIZE = (24, 20)  # Not square, so a swapped height/width shows.
CHUNK = 16


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("tfds")
  root = tiny_datasets.standard_tiny_dataset(tmp / "tiny")
  builder = tfds_builder.build_tfds(
    root, tmp / "data", "tiny", frame_size=FRAME_SIZE, chunk_len=CHUNK
  )
  return root, tmp / "data", builder


def _records(builder, split):
  source = builder.as_data_source(split)
  return [source[i] for i in range(len(source))]


def _expected_labels(ds, info):
  labels, ambiguous = np.zeros(info.num_frames, np.int32), np.zeros(info.num_frames, bool)
  for inst in info.annotations:
    fs, fe = inst.frame_span(info.fps)
    labels[fs:fe] = ds.classes.index(inst.label) + 1
  for t0, t1 in info.ambiguous:
    fs, fe = dataset_lib.Instance("x", t0, t1).frame_span(info.fps)
    ambiguous[fs:fe] = True
  return labels, ambiguous


def test_splits_follow_subsets_and_chunk_counts(built):
  _, _, builder = built
  assert set(builder.info.splits) == {"training", "testing"}
  assert builder.info.splits["training"].num_examples == 3 + 3  # 48 and 40 frames.
  assert builder.info.splits["testing"].num_examples == 5  # 70 frames.
  meta = builder.info.metadata
  assert meta["classes"] == ["Jump", "Run"] and meta["frame_size"] == list(FRAME_SIZE)
  assert meta["splits"]["training"]["videos"]["vid_b"]["first_record"] == 3


def test_round_trip_equals_the_folder(built):
  root, _, builder = built
  ds = dataset_lib.load_dataset(root)
  for split in ("training", "testing"):
    records = _records(builder, split)
    for info in ds.subset(split):
      mine = [r for r in records if r["video_id"].decode() == info.video_id]
      assert [int(r["start"]) for r in mine] == list(range(0, info.num_frames, CHUNK))
      chunks = [pipeline.decode_chunk(r) for r in mine]
      n = info.num_frames
      cat = lambda key: np.concatenate([c[key][: c["num_valid"]] for c in chunks])  # pylint: disable=cell-var-from-loop
      reader = ds.open_frames(info.video_id)
      np.testing.assert_array_equal(cat("frames"), reader.read(0, n, FRAME_SIZE))
      labels, ambiguous = _expected_labels(ds, info)
      np.testing.assert_array_equal(cat("labels"), labels)
      np.testing.assert_array_equal(cat("ambiguous"), ambiguous)
      mask_reader = ds.masks(info.video_id)
      if mask_reader is None:
        assert not cat("mask_present").any() and not cat("masks").any()
      else:
        masks, present = mask_reader.read(0, n, (reader.height, reader.width))
        np.testing.assert_array_equal(cat("mask_present"), present)
        np.testing.assert_array_equal(cat("masks"), tfds_builder.resize_masks(masks, FRAME_SIZE))
        assert cat("masks")[present].any()
      assert all(c["fps"] == 25.0 and c["num_frames"] == n for c in chunks)


def test_last_chunk_is_padded(built):
  _, _, builder = built
  last = _records(builder, "testing")[-1]
  assert int(last["num_valid"]) == 70 - 64 and len(last["frames"]) == CHUNK
  assert all(b == b"" for b in last["frames"][6:]) and not last["labels"][6:].any()
  decoded = pipeline.decode_chunk(last)
  assert decoded["frames"].shape == (CHUNK,) + FRAME_SIZE + (3,) and not decoded["frames"][6:].any()


def test_tfds_data_source_reads_it_without_tensorflow(built):
  _, data_dir, _ = built
  source = tfds.data_source("segtube_chunks/tiny", data_dir=str(data_dir), split="training")
  assert len(source) == 6 and source[3]["video_id"] == b"vid_b"
  assert "tensorflow" not in sys.modules


def test_rebuild_reuses_and_rejects_other_settings(built, tmp_path):
  root, data_dir, builder = built
  again = tfds_builder.build_tfds(root, data_dir, "tiny", frame_size=FRAME_SIZE, chunk_len=CHUNK)
  assert again.info.splits["training"].num_examples == 6
  with pytest.raises(DatasetError, match="already built with"):
    tfds_builder.build_tfds(root, data_dir, "tiny", frame_size=(16, 16), chunk_len=CHUNK)
  # Overwriting rebuilds (in a private data_dir: the module's build stays as it is).
  tfds_builder.build_tfds(root, tmp_path, "tiny", frame_size=FRAME_SIZE, chunk_len=CHUNK)
  rebuilt = tfds_builder.build_tfds(
    root, tmp_path, "tiny", frame_size=(16, 16), chunk_len=CHUNK, overwrite=True
  )
  assert rebuilt.info.metadata["frame_size"] == [16, 16]
  assert pipeline.decode_chunk(rebuilt.as_data_source("training")[0])["frames"].shape[1:3] == (
    16,
    16,
  )


def test_jpeg_native_size_and_null_metadata(tmp_path):
  root = tiny_datasets.write_tiny_dataset(
    tmp_path / "src",
    {
      "clip": {
        "n": 20,
        "subset": "validation",
        "null_meta": True,
        "annotations": [["Swim", 0.1, 0.3]],
      },
    },
    ["Swim"],
  )
  builder = tfds_builder.build_tfds(
    root, tmp_path / "data", frame_size=None, chunk_len=8, encoding="jpeg"
  )
  assert (
    builder.builder_config.name == "src_native_jpeg"
  )  # Its own name: never mixed with PNG chunks.
  chunks = [pipeline.decode_chunk(r) for r in _records(builder, "validation")]
  frames = np.concatenate([c["frames"][: c["num_valid"]] for c in chunks])
  reference = dataset_lib.load_dataset(root).open_frames("clip").read()
  assert frames.shape == reference.shape == (20, 32, 32, 3)
  assert np.abs(frames.astype(int) - reference).mean() < 8  # JPEG is lossy.
  assert chunks[0]["labels"][2:8].all() and not chunks[0]["labels"][:2].any()


def test_invalid_folder_fails_before_writing(tmp_path):
  root = tiny_datasets.write_tiny_dataset(
    tmp_path / "src", {"v": {"n": 10, "subset": "training"}}, ["A"]
  )
  data = json.loads((root / "annotations.json").read_text())
  data["database"]["v"]["subset"] = "train"
  data["database"]["v"]["annotations"] = [{"label": "B", "segment": [0, 0.1]}]
  (root / "annotations.json").write_text(json.dumps(data))
  with pytest.raises(DatasetError, match=r"(?s)'subset'.*'B' is not one of"):
    tfds_builder.build_tfds(root, tmp_path / "data")
  with pytest.raises(DatasetError, match="dataset folder not found"):
    tfds_builder.build_tfds(tmp_path / "nowhere", tmp_path / "data")
  assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"chunk_len": 0}, "chunk_len"),
    ({"frame_size": (0, 8)}, "frame_size"),
    ({"encoding": "gif"}, "encoding"),
    ({"name": "a/b"}, "dataset name"),
  ],
)
def test_impossible_settings(tmp_path, kwargs, match):
  with pytest.raises(ConfigError, match=match):
    tfds_builder.build_tfds(tmp_path, tmp_path / "data", **kwargs)


def test_default_name_and_frame_size_flag():
  assert tfds_builder.default_name("/x/My Data-set", (128, 171)) == "My_Data-set_128x171"
  # JPEG chunks get their own name, so a PNG build is never reused for a JPEG config or back.
  assert (
    tfds_builder.default_name("/x/My Data-set", (128, 171), "jpeg") == "My_Data-set_128x171_jpeg"
  )
  assert tfds_builder._parse_frame_size("64,48") == (64, 48)  # pylint: disable=protected-access
  assert tfds_builder._parse_frame_size("native") is None  # pylint: disable=protected-access
  with pytest.raises(ConfigError, match="HEIGHT,WIDTH"):
    tfds_builder._parse_frame_size("64")  # pylint: disable=protected-access


def test_command_line(built, tmp_path):
  root, _, _ = built
  cmd = [
    sys.executable,
    "-m",
    "segtube_jax.data.tfds_builder",
    f"--source={root}",
    f"--data_dir={tmp_path}",
    "--frame_size=16,16",
    "--chunk_len=32",
  ]
  run = subprocess.run(
    cmd,
    capture_output=True,
    text=True,
    timeout=120,
    cwd=pathlib.Path(__file__).resolve().parents[1],
  )
  assert run.returncode == 0, run.stderr[-2000:]
  assert "training: 4 chunks" in run.stdout and "testing: 3 chunks" in run.stdout
  assert (tmp_path / "segtube_chunks" / "tiny_16x16" / "1.0.0" / "metadata.json").is_file()
  bad = subprocess.run(
    cmd[:3] + [f"--source={tmp_path / 'nowhere'}", f"--data_dir={tmp_path}"],
    capture_output=True,
    text=True,
    timeout=120,
    cwd=pathlib.Path(__file__).resolve().parents[1],
  )
  assert bad.returncode == 1 and "dataset folder not found" in bad.stdout


def test_builder_with_manual_dir(built, tmp_path):
  root, _, _ = built
  config = tfds_builder.ChunkConfig(name="manual", frame_size=(8, 8), chunk_len=64)
  builder = tfds_builder.SegtubeChunks(config=config, data_dir=str(tmp_path), num_workers=1)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  assert builder.info.splits["training"].num_examples == 2
  record = pipeline.decode_chunk(builder.as_data_source("testing")[1])
  assert record["num_valid"] == 6 and record["frames"].shape == (64, 8, 8, 3)
  assert tfds_builder.SegtubeChunks(data_dir=str(tmp_path)).builder_config.frame_size == (128, 171)
