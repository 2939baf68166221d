"""The B_o saliency cache (segtube_jax.training.saliency_cache) and the saliency-aware clips it feeds."""

import json
import subprocess
import sys

from conftest import PROJECT_ROOT, tiny_training_config
import cv2
import numpy as np
import pytest

from segtube_jax import clips as clips_lib
from segtube_jax import spatial
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import pipeline as chunk_pipeline
from segtube_jax.errors import DatasetError
from segtube_jax.spatial import testing as spatial_testing
from segtube_jax.training import input_pipeline, saliency_cache, train_and_evaluate


@pytest.fixture(scope="module")
def built(tiny_synthetic, tmp_path_factory):
  """A saliency config over the tiny dataset, packed and cached in a folder of this module."""
  config = tiny_training_config(
    tiny_synthetic,
    **{
      "clips.mask_source": "saliency",
      "clips.saliency_workers": 2,
      "dataset.tfds_dir": str(tmp_path_factory.mktemp("saliency_tfds")),
    },
  )
  data_dir, name = input_pipeline.ensure_built(config, tmp_path_factory.mktemp("w"))
  return config, data_dir, name


def test_saliency_cache_holds_b_o_of_every_frame_of_every_video(built, tiny_synthetic):
  config, data_dir, name = built
  folder = saliency_cache.cache_dir(config, data_dir, name)
  cache = saliency_cache.SaliencyCache(folder)
  ds = dataset_lib.load_dataset(tiny_synthetic)
  assert sorted(p.stem for p in folder.glob("*.npy")) == sorted(ds.videos)  # Every subset.
  assert cache.size == (32, 32)
  for split in ("training", "testing"):
    vid = ds.subset(split)[0].video_id
    frames = ds.open_frames(vid).read(0, None)
    # Computed independently: B_o at the video's own size (here the packed size too).
    expected = spatial.initial_masks(frames, None, config.segmentation)
    np.testing.assert_array_equal(cache.read(vid, 0, len(frames)), expected)
    np.testing.assert_array_equal(cache.read(vid, 10, 42), expected[10:42])
    assert expected.any()


def test_saliency_cache_b_o_at_the_video_size_then_reduced(built):
  # The demo packs 64x64 videos at 36x36, too small for SLIC: B_o is made at 64x64 and reduced.
  config = built[0]
  frames, _ = spatial_testing.moving_actor_clip(8, (64, 64), seed=3)
  full = spatial.initial_masks(frames, None, config.segmentation)
  small = saliency_cache.video_b_o_array(frames, (36, 36), config.segmentation)
  assert small.shape == (8, 36, 36) and small.any()
  reduced = (
    np.stack(
      [cv2.resize(m.astype(np.float32), (36, 36), interpolation=cv2.INTER_AREA) for m in full]
    )
    > 0.5
  )
  np.testing.assert_array_equal(small, reduced)


def test_saliency_cache_is_reused_and_resumes(built):
  config, data_dir, name = built
  folder = saliency_cache.cache_dir(config, data_dir, name)
  files = sorted(folder.glob("*.npy"))
  stamps = {p: p.stat().st_mtime_ns for p in files}
  files[0].unlink()  # As if the pass had stopped before this video.
  (folder / "junk.tmp.npy").write_bytes(b"half-written")
  saliency_cache.build(config, data_dir, name, workers=1, progress=False)
  assert files[0].is_file()
  assert all(p.stat().st_mtime_ns == stamps[p] for p in files[1:])  # The rest were not redone.


def test_saliency_cache_key_follows_the_segmentation_config(built):
  config, data_dir, name = built
  other = config.copy_and_resolve_references()
  other.segmentation.saliency.min_threshold = 0.3
  assert saliency_cache.cache_dir(other, data_dir, name) != saliency_cache.cache_dir(
    config, data_dir, name
  )
  other = config.copy_and_resolve_references()
  other.train.num_steps = 7  # Training settings do not change B_o.
  assert saliency_cache.cache_dir(other, data_dir, name) == saliency_cache.cache_dir(
    config, data_dir, name
  )


def test_saliency_cache_attenuates_every_frame_whatever_the_labels(built):
  # The clip of a window is attenuated by B_o whether the window is an action or background, so
  # the attenuation cannot tell the network which frames are actions.
  config, data_dir, name = built
  source = chunk_pipeline.open_chunk_source(data_dir, name, "training")
  cache = saliency_cache.SaliencyCache(saliency_cache.cache_dir(config, data_dir, name))
  load = input_pipeline.LoadClips(
    source, config.clips, tuple(config.model.clip_shape), train=False, saliency=cache
  )
  raw_cfg = config.clips.copy_and_resolve_references()
  raw_cfg.mask_source = "none"
  raw = input_pipeline.LoadClips(source, raw_cfg, tuple(config.model.clip_shape), train=False)
  sequences = input_pipeline.build_sequences(source, config.clips, balance_seed=None)
  kinds = {}
  for seq in sequences:
    for i in np.flatnonzero(seq.valid):
      kinds.setdefault(int(seq.proposal_labels[i] > 0), (seq, i))
  assert set(kinds) == {0, 1}  # An action window and a background window.
  for seq, i in kinds.values():
    lo, hi = int(seq.starts[seq.valid].min()), int(seq.ends[seq.valid].max())
    frames = chunk_pipeline.read_video_frames(source, seq.video_id, lo, hi)
    expected = clips_lib.saliency_aware(
      frames,
      cache.read(seq.video_id, lo, hi),
      config.clips.saliency_mode,
      config.clips.background_weight,
    )
    assert not np.array_equal(expected, frames)
    assert not np.array_equal(load(seq)["clips"][i], raw(seq)["clips"][i])


def test_saliency_cache_dataset_masks_must_cover_every_frame(tiny_synthetic, tmp_path):
  # The synthetic dataset has masks on action frames only: 'dataset' attenuation would leak labels.
  config = tiny_training_config(tiny_synthetic, **{"clips.mask_source": "dataset"})
  first = sorted(dataset_lib.load_dataset(tiny_synthetic).videos)[0]
  with pytest.raises(DatasetError, match=f"every frame.*{first}"):
    input_pipeline.ensure_built(config, tmp_path / "w")


def test_saliency_cache_cli_and_train_start_it(built, tiny_synthetic, tmp_path):
  config, data_dir, name = built
  # Another segmentation setting: a cache of its own, missing until train.py starts it.
  overrides = {
    "clips.mask_source": "saliency",
    "dataset.tfds_dir": str(data_dir),
    "clips.saliency_workers": 1,
    "segmentation.saliency.border": 0.05,
  }
  config = tiny_training_config(tiny_synthetic, **overrides)
  folder = saliency_cache.cache_dir(config, data_dir, name)
  assert not folder.exists()
  train_and_evaluate(config, tmp_path / "w")  # Computes B_o, then trains one step.
  meta = json.loads((folder / saliency_cache.CACHE_FILE).read_text())
  assert meta["frame_size"] == [32, 32] and len(list(folder.glob("*.npy"))) == 9
  # The command finds the cache complete and computes nothing.
  stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*.npy")}
  args = [f"--config.{k}={v}" for k, v in overrides.items()] + [
    f"--config.dataset.root={tiny_synthetic}",
    "--config.dataset.frame_size=(32,32)",
  ]
  done = subprocess.run(
    [
      sys.executable,
      "-m",
      "segtube_jax.training.saliency_cache",
      "--config",
      str(PROJECT_ROOT / "configs" / "synthetic.py"),
      "--workdir",
      str(tmp_path / "w"),
      *args,
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert str(folder) in done.stdout
  assert {p: p.stat().st_mtime_ns for p in folder.glob("*.npy")} == stamps
