"""Tests of merging dataset folders into the paper's mixed (trimmed + untrimmed) dataset."""

import json

import numpy as np
import pytest
import tiny_datasets

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import mixed, pipeline, tfds_builder
from segtube_jax.errors import DatasetError


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("mixed")
  untrimmed = tiny_datasets.write_tiny_dataset(
    tmp / "untrimmed",
    {
      "long_1": {
        "n": 50,
        "subset": "training",
        "masks": [2, 3],
        "annotations": [["Jump", 0.2, 1.0], ["Swim", 1.2, 1.6]],
        "ambiguous": [[1.7, 1.9]],
      },
      "long_2": {"n": 45, "subset": "testing", "annotations": [["Swim", 0.0, 0.4]]},
    },
    ["Jump", "Swim"],
    seed=1,
  )
  trimmed = tiny_datasets.write_tiny_dataset(
    tmp / "trimmed",
    {
      "v_HighJump_g01_c01": {"n": 30, "subset": "training", "folder": True, "null_meta": True},
      "v_HighJump_g02_c01": {"n": 25, "subset": "validation"},
      "v_Rowing_g01_c01": {"n": 20, "subset": "training"},
    },
    ["HighJump", "Rowing"],
    seed=2,
  )
  return tmp, untrimmed, trimmed


def _merge(sources, out, **kwargs):
  _, untrimmed, trimmed = sources
  return mixed.merge_datasets(
    [
      untrimmed,
      mixed.MixSource(
        trimmed,
        trimmed_label=mixed.ucf101_label,
        rename={"HighJump": "Jump"},
        subsets={"validation": "training"},
      ),
    ],
    out,
    **kwargs,
  )


def test_ucf101_label():
  assert mixed.ucf101_label("v_ApplyEyeMakeup_g08_c01") == "ApplyEyeMakeup"
  assert mixed.ucf101_label("video_test_0000004") is None


def test_as_trimmed_spans_every_frame(sources):
  _, _, trimmed = sources
  info = dataset_lib.load_dataset(trimmed).videos["v_HighJump_g01_c01"]
  (inst,) = mixed.as_trimmed(info, "HighJump").annotations
  assert (inst.label, inst.frame_span(info.fps)) == ("HighJump", (0, 30))
  annotated = dataset_lib.VideoInfo(
    "x", "training", 25.0, 10, 0.4, (dataset_lib.Instance("A", 0.1, 0.2),)
  )
  assert mixed.as_trimmed(annotated, "B") is annotated
  with pytest.raises(DatasetError, match="duration unknown"):
    mixed.as_trimmed(dataset_lib.VideoInfo("y", "training", None, None, None, ()), "B")


def test_merge_by_class_name_with_links(sources):
  tmp, untrimmed, trimmed = sources
  ds = _merge(sources, tmp / "mix_links", class_names=["Jump", "Swim"])
  assert ds.classes == ["Jump", "Swim"]
  # Rowing has no class in the mix, so its only (trimmed) video is dropped.
  assert sorted(ds.videos) == ["long_1", "long_2", "v_HighJump_g01_c01", "v_HighJump_g02_c01"]
  jump = ds.videos["v_HighJump_g02_c01"]
  assert jump.subset == "training" and len(jump.annotations) == 1
  assert jump.annotations[0].label == "Jump" and jump.annotations[0].frame_span(jump.fps) == (0, 25)
  assert ds.videos["long_1"].ambiguous == ((1.7, 1.9),)
  assert (tmp / "mix_links" / "videos" / "long_1.mp4").is_symlink()
  assert (tmp / "mix_links" / "frames" / "v_HighJump_g01_c01").is_symlink()
  assert (tmp / "mix_links" / "masks" / "long_1").resolve() == (
    untrimmed / "masks" / "long_1"
  ).resolve()
  np.testing.assert_array_equal(
    ds.open_frames("v_HighJump_g01_c01").read(),
    dataset_lib.load_dataset(trimmed).open_frames("v_HighJump_g01_c01").read(),
  )
  assert dataset_lib.validate_dataset(tmp / "mix_links") == []


def test_merge_all_classes_with_copies_then_pack(sources):
  tmp, _, _ = sources
  out = tmp / "mix_copies"
  ds = _merge(sources, out, link=False)
  assert ds.classes == ["Jump", "Swim", "Rowing"]
  assert len(ds.videos) == 5 and not (out / "videos" / "long_2.mp4").is_symlink()
  assert (out / "masks" / "long_1" / "000002.png").is_file()
  data = json.loads((out / "annotations.json").read_text())
  assert data["database"]["v_Rowing_g01_c01"]["annotations"] == [
    {"label": "Rowing", "segment": [0.0, 0.8]}
  ]
  # The mix packs like any dataset: the trimmed video is labelled on every frame.
  tfds_builder.build_tfds(out, tmp / "tfds", "mix", frame_size=(16, 16), chunk_len=16)
  source = pipeline.open_chunk_source(tmp / "tfds", "mix", "training")
  labels = pipeline.read_video_clip(source, "v_Rowing_g01_c01", 0, 20)["labels"]
  np.testing.assert_array_equal(labels, np.full(20, 3))


def test_keep_empty_and_video_selection(sources):
  tmp, untrimmed, _ = sources
  ds = mixed.merge_datasets(
    [mixed.MixSource(untrimmed, video_ids={"long_2"})],
    tmp / "mix_sel",
    class_names=["Jump"],
    keep_empty=True,
  )
  assert list(ds.videos) == ["long_2"] and ds.videos["long_2"].annotations == ()


def test_errors(sources, tmp_path):
  tmp, untrimmed, trimmed = sources
  with pytest.raises(DatasetError, match=r"class_names \['Dive'\] are classes of none"):
    mixed.merge_datasets([untrimmed], tmp_path / "a", class_names=["Jump", "Dive"])
  with pytest.raises(DatasetError, match="'long_1' is in both"):
    mixed.merge_datasets([untrimmed, untrimmed], tmp_path / "b")
  ds = mixed.merge_datasets(
    [untrimmed, mixed.MixSource(untrimmed, prefix="again_")], tmp_path / "c"
  )
  assert "again_long_1" in ds.videos
  with pytest.raises(DatasetError, match="already holds"):
    mixed.merge_datasets([untrimmed], tmp_path / "c")
  assert len(mixed.merge_datasets([untrimmed], tmp_path / "c", overwrite=True).videos) == 2
  with pytest.raises(DatasetError, match="subset mapping"):
    mixed.merge_datasets([mixed.MixSource(untrimmed, subsets={"testing": "test"})], tmp_path / "d")
  with pytest.raises(DatasetError, match="dataset folder not found"):
    mixed.merge_datasets([tmp_path / "nowhere"], tmp_path / "e")
