"""The training batch stream with worker processes (config.data_workers): same batches, exact
resume with any worker count, and one error naming the video when a worker fails or dies."""

import os
import pathlib
import signal
import time

import numpy as np
import pytest

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.errors import DatasetError
from segtube_jax.training import batch_stream, input_pipeline
from tests.conftest import tiny_training_config


def _stream(root, workdir, workers: int, **overrides):
  config = tiny_training_config(root, data_workers=workers, data_threads=1, **overrides)
  data_dir, name = input_pipeline.ensure_built(config, workdir)
  stream, _ = input_pipeline.train_dataset(config, data_dir, name, 2)
  return stream


def _take(stream, n: int) -> list[dict[str, np.ndarray]]:
  return [{k: np.array(v) for k, v in next(stream).items()} for _ in range(n)]


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_data_workers_batches_do_not_depend_on_the_worker_count(tiny_synthetic, tmp_path):
  streams = {w: _stream(tiny_synthetic, tmp_path, w) for w in (0, 1, 2)}
  try:
    batches = {w: _take(s, 4) for w, s in streams.items()}
  finally:
    for s in streams.values():
      s.close()
  _assert_same(batches[0], batches[1])
  _assert_same(batches[0], batches[2])
  assert streams[2].get_state() == {"next_index": 4}


def test_data_workers_resume_restores_the_same_batches(tiny_synthetic, tmp_path):
  first = _stream(tiny_synthetic, tmp_path, 2)
  try:
    _take(first, 2)
    state = first.get_state()
    expected = _take(first, 3)
  finally:
    first.close()
  assert state == {"next_index": 2}
  for workers in (1, 0):  # Another worker count, then threads only: the same batches.
    resumed = _stream(tiny_synthetic, tmp_path, workers)
    resumed.set_state(state)
    try:
      _assert_same(_take(resumed, 3), expected)
    finally:
      resumed.close()
  with pytest.raises(DatasetError, match="checkpointed data position"):
    resumed.set_state({"next_index": -1})


def test_data_workers_failing_worker_names_the_video(tiny_synthetic, tmp_path):
  # Corrupt mask files for every video: the worker's first sequence cannot be loaded.
  ds = dataset_lib.load_dataset(tiny_synthetic)
  masks = tmp_path / "masks"
  for info in ds.videos.values():
    folder = masks / info.video_id
    folder.mkdir(parents=True)
    for f in range(info.num_frames):
      (folder / f"{f:06d}.png").write_bytes(b"not a png")
  stream = _stream(
    tiny_synthetic,
    tmp_path,
    2,
    **{"clips.mask_source": "folder", "clips.mask_dir": str(masks)},
  )
  t0 = time.monotonic()
  with pytest.raises(DatasetError, match=r"video '(synth_\d+)'") as info:
    next(stream)
  assert time.monotonic() - t0 < 120  # An error, not a hang.
  named = next(v for v in ds.videos if f"video {v!r}" in str(info.value))
  assert named in ds.videos


def test_data_workers_killed_worker_names_the_video(tiny_synthetic, tmp_path):
  stream = _stream(tiny_synthetic, tmp_path, 2)
  try:
    _take(stream, 2)  # Batches 0 and 1: one from each worker.
    folder = pathlib.Path(os.environ[batch_stream.PROGRESS_ENV])
    deadline = time.monotonic() + 60
    while True:
      notes = {int(p.name): p.read_text() for p in folder.iterdir() if p.name.isdigit()}
      if len(notes) == 2 or time.monotonic() > deadline:
        break
      time.sleep(0.05)
    assert len(notes) == 2 and set(notes.values()) <= set(
      dataset_lib.load_dataset(tiny_synthetic).videos
    )
    victim = min(notes)
    os.kill(victim, signal.SIGKILL)  # As the kernel's OOM killer would.
    time.sleep(0.5)
    last = (folder / str(victim)).read_text()  # Its final note: it may have loaded more since.
    t0 = time.monotonic()
    with pytest.raises(
      DatasetError,
      match=rf"worker process {victim} died at training batch \d+; the last video it was loading",
    ) as e:
      for _ in range(50):
        next(stream)
    assert time.monotonic() - t0 < 120
    assert repr(last) in str(e.value) and "data_workers" in str(e.value)
    assert batch_stream.PROGRESS_ENV not in os.environ and not folder.exists()  # Cleaned up.
  finally:
    stream.close()


def test_resolve_workers():
  assert batch_stream.resolve_workers(0) == 0 and batch_stream.resolve_workers(3) == 3
  assert 1 <= batch_stream.resolve_workers(-1) <= 32


def test_clips_decode_only_the_frames_they_sample(tiny_synthetic, tmp_path, monkeypatch):
  from segtube_jax import clips as clips_lib  # pylint: disable=import-outside-toplevel
  from segtube_jax.data import pipeline as chunk_pipeline  # pylint: disable=import-outside-toplevel

  config = tiny_training_config(tiny_synthetic, data_workers=0)
  data_dir, name = input_pipeline.ensure_built(config, tmp_path)
  source = chunk_pipeline.open_chunk_source(data_dir, name, "training")
  sequences = input_pipeline.build_sequences(source, config.clips, balance_seed=None)
  seq = next(s for s in sequences if (s.ends - s.starts)[s.valid].min() == 32)  # 32-frame windows.
  load = input_pipeline.LoadClips(source, config.clips, tuple(config.model.clip_shape), train=False)
  decoded = []
  original = chunk_pipeline._decode_image  # pylint: disable=protected-access
  monkeypatch.setattr(chunk_pipeline, "_decode_image", lambda b: decoded.append(1) or original(b))
  out = load(seq)
  lo, hi = int(seq.starts[seq.valid].min()), int(seq.ends[seq.valid].max())
  assert len(decoded) <= (hi - lo + 1) // 2 + 1  # Every other frame, not the whole span.
  # The reference: every frame of the span decoded and processed, then the clips gathered.
  frames = chunk_pipeline.read_video_clip(source, seq.video_id, lo, hi)["frames"]
  _, ch, cw = config.model.clip_shape
  crops = clips_lib.saliency_aware_crops(
    frames, None, "none", 0.0, tuple(config.clips.resize), (ch, cw)
  )
  expected = clips_lib.gather_clips(crops, seq.starts, seq.ends, 16, lo, seq.valid)
  np.testing.assert_array_equal(out["clips"], expected)
