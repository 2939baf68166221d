"""Tests of the grain pipeline over built frame-chunk datasets."""

import grain
import numpy as np
import pytest
import tiny_datasets

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import pipeline, tfds_builder
from segtube_jax.errors import DatasetError

FRAME_SIZE = (24, 20)
CHUNK = 16


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("pipeline")
  root = tiny_datasets.standard_tiny_dataset(tmp / "tiny")
  tfds_builder.build_tfds(root, tmp / "data", "tiny", frame_size=FRAME_SIZE, chunk_len=CHUNK)
  return root, tmp / "data"


def _keys(ds):
  return [(r["video_id"], r["start"]) for r in ds]


def test_chunks_in_order_with_decoded_fields(built):
  _, data_dir = built
  ds = pipeline.chunk_dataset(data_dir, "tiny", "training")
  assert isinstance(ds, grain.MapDataset) and len(ds) == 6
  assert _keys(ds) == [
    ("vid_a", 0),
    ("vid_a", 16),
    ("vid_a", 32),
    ("vid_b", 0),
    ("vid_b", 16),
    ("vid_b", 32),
  ]
  r = ds[5]
  assert r["frames"].dtype == np.uint8 and r["frames"].shape == (CHUNK, 24, 20, 3)
  assert r["masks"].dtype == bool and r["masks"].shape == (CHUNK, 24, 20)
  assert r["labels"].dtype == np.int32 and r["labels"].shape == (CHUNK,)
  assert r["num_valid"] == 8 and r["fps"] == 25.0 and r["num_frames"] == 40


def test_shuffle_is_deterministic_per_seed_and_epoch(built):
  _, data_dir = built
  make = lambda seed: pipeline.chunk_dataset(
    data_dir, "tiny", "training", seed=seed, shuffle=True, num_epochs=2, decode=False
  )
  first, again, other = [[(r["video_id"], int(r["start"])) for r in make(s)] for s in (3, 3, 4)]
  assert first == again and first != other
  ordered = sorted(_keys(pipeline.chunk_dataset(data_dir, "tiny", "training")))
  ordered = [(v.encode(), s) for v, s in ordered]
  assert sorted(first[:6]) == sorted(first[6:]) == ordered  # Each epoch is a permutation...
  assert first[:6] != first[6:]  # ... in its own order.


def test_iterator_state_restores_the_position(built):
  _, data_dir = built
  ds = pipeline.chunk_dataset(data_dir, "tiny", "training", seed=7, shuffle=True, num_epochs=None)
  it = pipeline.chunk_iterator(ds)
  for _ in range(8):  # Into the second epoch.
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(5)]
  restored = pipeline.chunk_iterator(ds, state=state)
  for want, got in zip(expected, (next(restored) for _ in range(5))):
    assert (want["video_id"], want["start"]) == (got["video_id"], got["start"])
    np.testing.assert_array_equal(want["frames"], got["frames"])
  plain = iter(ds.to_iter_dataset())  # grain's own iterator takes the same state.
  plain.set_state(state)
  assert (next(plain)["video_id"], next(plain)["start"]) == (
    expected[0]["video_id"],
    expected[1]["start"],
  )


def test_shards_partition_the_split(built):
  _, data_dir = built
  shards = [
    _keys(
      pipeline.chunk_dataset(
        data_dir, "tiny", "training", shard_index=i, shard_count=2, decode=False
      )
    )
    for i in range(2)
  ]
  assert len(shards[0]) == len(shards[1]) == 3
  assert sorted(shards[0] + shards[1]) == sorted(
    _keys(pipeline.chunk_dataset(data_dir, "tiny", "training", decode=False))
  )


def test_read_video_clip_touches_only_needed_chunks(built, monkeypatch):
  root, data_dir = built
  ds = dataset_lib.load_dataset(root)
  source = pipeline.open_chunk_source(data_dir, "tiny", "testing")
  touched = []
  get = source._source.__getitem__  # pylint: disable=protected-access
  monkeypatch.setattr(
    source,
    "_source",
    type(
      "Counting",
      (),
      {"__getitem__": lambda self, i: touched.append(i) or get(i), "__len__": lambda self: 5},
    )(),
  )
  reader, masks = ds.open_frames("vid_c"), ds.masks("vid_c")
  for start, stop, chunks in [
    (30, 36, [1, 2]),
    (0, 70, [0, 1, 2, 3, 4]),
    (64, 70, [4]),
    (5, 6, [0]),
  ]:
    touched.clear()
    clip = pipeline.read_video_clip(source, "vid_c", start, stop)
    assert touched == chunks
    np.testing.assert_array_equal(clip["frames"], reader.read(start, stop, FRAME_SIZE))
    m, present = masks.read(start, stop, (32, 32))
    np.testing.assert_array_equal(clip["mask_present"], present)
    np.testing.assert_array_equal(clip["masks"], tfds_builder.resize_masks(m, FRAME_SIZE))
    fs, fe = ds.videos["vid_c"].annotations[0].frame_span(25.0)
    np.testing.assert_array_equal(clip["labels"], [int(fs <= f < fe) for f in range(start, stop)])
  np.testing.assert_array_equal(
    pipeline.read_video_frames(source, "vid_c", 10, 20), reader.read(10, 20, FRAME_SIZE)
  )


def test_grain_dataloader_with_index_sampler(built):
  _, data_dir = built
  source = pipeline.open_chunk_source(data_dir, "tiny", "training")
  sampler = grain.samplers.IndexSampler(num_records=len(source), shuffle=True, num_epochs=1, seed=0)
  loader = grain.DataLoader(
    data_source=source, sampler=sampler, operations=[pipeline.DecodeChunk()], worker_count=0
  )
  got = sorted((r["video_id"], r["start"]) for r in loader)
  assert got == sorted(_keys(pipeline.chunk_dataset(data_dir, "tiny", "training")))


def test_clear_errors(built, tmp_path):
  _, data_dir = built
  with pytest.raises(DatasetError, match=r"no built dataset 'other'.*tfds_builder"):
    pipeline.chunk_dataset(data_dir, "other", "training")
  with pytest.raises(DatasetError, match="no built dataset"):
    pipeline.open_chunk_source(tmp_path / "missing", "tiny", "training")
  with pytest.raises(
    DatasetError, match=r"no split 'validation'; the built splits are \['testing', 'training'\]"
  ):
    pipeline.chunk_dataset(data_dir, "tiny", "validation")
  source = pipeline.open_chunk_source(data_dir, "tiny", "training")
  with pytest.raises(DatasetError, match="no video 'vid_c' in split 'training'"):
    pipeline.read_video_frames(source, "vid_c", 0, 4)
  with pytest.raises(DatasetError, match=r"frame range \[40, 49\) is outside"):
    pipeline.read_video_frames(source, "vid_a", 40, 49)
  with pytest.raises(DatasetError, match="shard_index"):
    pipeline.chunk_dataset(data_dir, "tiny", "training", shard_index=2, shard_count=2)
  with pytest.raises(DatasetError, match="num_epochs"):
    pipeline.chunk_dataset(data_dir, "tiny", "training", num_epochs=0)
