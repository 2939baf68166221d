"""The initial segmentation B_o of every video, computed once and cached beside the packed dataset.

Sec. 2.1 builds the saliency-aware clips "on the initial segmentation B_o of video V (by using
saliency)", and the networks are trained on them. B_o (``segtube_jax.spatial.initial_masks``:
flow, SLIC and saliency, no graph cut) is computed for every frame of every video of every
subset, at the video's own resolution, and stored at the packed frame size, so no frame's
attenuation depends on the labels. Training, validation
and iteration 0 of the alternating loop all read the same masks.

On THUMOS14-sized data this is a preprocessing pass of hours, like the optical-flow extraction of
other localizers. It runs over a pool of processes and over hosts (process p of P takes every
P-th video), writes each video atomically and skips videos already done, so a stopped pass
resumes where it stopped. ``train.py`` starts it when the cache is missing; it can also be run
alone::

  python -m segtube_jax.training.saliency_cache --config configs/synthetic.py --workdir DIR \\
      [--workers N] [--config.clips.mask_source=saliency]

Layout: ``<tfds data_dir>/saliency/<dataset name>-<key>/<video_id>.npy``, one uint8 array
``[T, ceil(h * w / 8)]`` of bit-packed masks per video (read by memory map: a clip reads only its
own frames), plus ``cache.json`` with the frame size and the segmentation config. ``key`` hashes
the segmentation config and the frame size: changing either starts a new cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import pathlib
import sys
from typing import Any

from absl import app, flags, logging
import cv2
import jax
import ml_collections
import numpy as np
import tqdm

from segtube_jax import io_utils
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import pipeline as chunk_pipeline
from segtube_jax.errors import DatasetError, SegtubeError

CACHE_FILE = "cache.json"
_VERSION = 2  # Bumped when the stored format or the B_o definition changes.


def cache_key(config: ml_collections.ConfigDict) -> str:
  """Hash of what B_o depends on: the segmentation config and the stored frame size."""
  data = {
    "version": _VERSION,
    "segmentation": config.segmentation.to_dict(),
    "frame_size": list(config.dataset.frame_size) if config.dataset.frame_size else None,
  }
  return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir(
  config: ml_collections.ConfigDict, data_dir: str | os.PathLike, name: str
) -> pathlib.Path:
  """Where the B_o masks of the packed dataset ``data_dir``/``name`` live (beside its chunks)."""
  return pathlib.Path(data_dir) / "saliency" / f"{name}-{cache_key(config)}"


def _videos(data_dir: str | os.PathLike, name: str) -> list[tuple[str, str, int]]:
  """(split, video_id, num_frames) of every video of the packed dataset, sorted by video id."""
  out = []
  for split in ("training", "validation", "testing"):
    try:
      source = chunk_pipeline.open_chunk_source(data_dir, name, split)
    except DatasetError as e:
      if "no split" in str(e):
        continue
      raise
    out.extend((split, vid, entry.num_frames) for vid, entry in source.videos.items())
  return sorted(out, key=lambda v: v[1])


def _video_path(folder: pathlib.Path, video_id: str) -> pathlib.Path:
  return folder / f"{video_id}.npy"


def video_b_o(
  frames: Any, size: tuple[int, int] | None, segmentation: ml_collections.ConfigDict
) -> Iterator[tuple[int, np.ndarray]]:
  """B_o of a whole video, chunk by chunk: yields (first frame, bool masks [t, h, w]).

  B_o is computed at the video's own resolution (the spatial stage's work size, at most
  ``work_height`` rows), then reduced to ``size`` = the packed frame size (None: kept). The
  training frames are often much smaller (the demo's 36x36), too small for SLIC superpixels.

  Args:
    frames: uint8 [T,H,W,3] or a frame reader (``segtube_jax.data.video.open_frames``).
    size: (rows, cols) of the masks, or None.
    segmentation: the segmentation config.
  """
  from segtube_jax.spatial import frames as spatial_frames  # pylint: disable=g-import-not-at-top

  for first, masks in spatial_frames.iter_span_masks(
    frames, None, None, segmentation, initial_only=True
  ):
    if size is not None and masks.shape[1:] != tuple(size):
      masks = (
        np.stack(
          [
            cv2.resize(m.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)
            for m in masks
          ]
        )
        > 0.5
      )
    yield first, masks


def video_b_o_array(
  frames: Any, size: tuple[int, int] | None, segmentation: ml_collections.ConfigDict
) -> np.ndarray:
  """:func:`video_b_o` of a whole video as one bool array [T, h, w]."""
  return np.concatenate([m for _, m in video_b_o(frames, size, segmentation)])


def compute_video(
  root: str,
  video_id: str,
  num_frames: int,
  size: tuple[int, int] | None,
  segmentation: dict[str, Any],
  out_path: str,
) -> int:
  """B_o of one video of the dataset folder ``root``, written bit-packed to ``out_path``.

  The file is written atomically; the frames are read ``max_span_frames`` at a time, so memory
  stays bounded however long the video is. Returns the number of frames.
  """
  config = ml_collections.ConfigDict(segmentation)
  reader = dataset_lib.load_dataset(root, check_media=False).open_frames(video_id)
  if reader.num_frames != num_frames:
    raise DatasetError(
      f"{root}: video {video_id!r} has {reader.num_frames} frames but the packed dataset "
      f"{num_frames}; repack the dataset"
    )
  packed = None
  for first, masks in video_b_o(reader, size, config):
    bits = np.packbits(masks.reshape(len(masks), -1), axis=1)
    if packed is None:
      packed = np.zeros((num_frames, bits.shape[1]), np.uint8)
    packed[first : first + len(bits)] = bits
  tmp = pathlib.Path(out_path).with_suffix(".tmp.npy")
  np.save(tmp, packed)
  os.replace(tmp, out_path)  # A killed pass leaves a .tmp.npy, never a partial .npy.
  return num_frames


def build(
  config: ml_collections.ConfigDict,
  data_dir: str | os.PathLike,
  name: str,
  workers: int | None = None,
  progress: bool = True,
) -> pathlib.Path:
  """Computes B_o for every video not yet cached; this process takes its share of the videos.

  Args:
    config: the experiment config (``dataset``, ``segmentation``).
    data_dir, name: the packed dataset (``input_pipeline.tfds_location``).
    workers: processes; None for one per CPU core. 1 computes in this process.
    progress: show a progress bar over frames.

  Returns:
    The cache folder.
  """
  folder = cache_dir(config, data_dir, name)
  folder.mkdir(parents=True, exist_ok=True)
  size = tuple(config.dataset.frame_size) if config.dataset.frame_size else None
  if jax.process_index() == 0:
    io_utils.write_json_atomic(
      folder / CACHE_FILE,
      {
        "version": _VERSION,
        "frame_size": size,
        "dataset": name,
        "segmentation": config.segmentation.to_dict(),
      },
    )
  videos = _videos(data_dir, name)[jax.process_index() :: jax.process_count()]
  todo = [v for v in videos if not _video_path(folder, v[1]).is_file()]
  if todo:
    logging.info(
      "B_o saliency cache: %d of %d videos to compute into %s", len(todo), len(videos), folder
    )
    jobs = [
      (
        config.dataset.root,
        vid,
        n,
        size,
        config.segmentation.to_dict(),
        str(_video_path(folder, vid)),
      )
      for _, vid, n in todo
    ]
    _run(jobs, workers or os.cpu_count() or 1, progress)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    multihost_utils.sync_global_devices("segtube_saliency_cache_built")
  return folder


def _run(jobs: list[tuple], workers: int, progress: bool) -> None:
  bar = tqdm.tqdm(total=sum(j[2] for j in jobs), desc="B_o", unit="frame", disable=not progress)
  try:
    if workers <= 1 or len(jobs) == 1:
      for job in jobs:
        bar.update(compute_video(*job))
      return
    ctx = multiprocessing.get_context("spawn")  # The parent may hold JAX threads.
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
      for done in concurrent.futures.as_completed([pool.submit(compute_video, *j) for j in jobs]):
        bar.update(done.result())
  finally:
    bar.close()


class SaliencyCache:
  """Reads cached B_o masks: ``read(video_id, start, stop)`` -> bool [T, h, w].

  Args:
    folder: a cache folder written by :func:`build`.
  """

  def __init__(self, folder: str | os.PathLike):
    self.folder = pathlib.Path(folder)
    meta_path = self.folder / CACHE_FILE
    if not meta_path.is_file():
      raise DatasetError(
        f"{self.folder}: no B_o saliency cache ({CACHE_FILE} missing); build it with "
        f"python -m segtube_jax.training.saliency_cache --config CONFIG --workdir DIR"
      )
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != _VERSION or not meta.get("frame_size"):
      raise DatasetError(
        f"{meta_path}: expected a version {_VERSION} cache with a frame size, got "
        f"version {meta.get('version')!r}, frame size {meta.get('frame_size')!r}"
      )
    self.size = tuple(meta["frame_size"])
    self._arrays: dict[str, np.ndarray] = {}

  def num_frames(self, video_id: str) -> int | None:
    """Frames cached for ``video_id``, None when it is not in the cache."""
    path = _video_path(self.folder, video_id)
    if video_id not in self._arrays and not path.is_file():
      return None
    return int(self._array(video_id).shape[0])

  def _array(self, video_id: str) -> np.ndarray:
    arr = self._arrays.get(video_id)
    if arr is None:
      path = _video_path(self.folder, video_id)
      if not path.is_file():
        raise DatasetError(
          f"{path}: no B_o masks for video {video_id!r}; rerun "
          f"python -m segtube_jax.training.saliency_cache (it resumes)"
        )
      arr = self._arrays[video_id] = np.load(path, mmap_mode="r")
    return arr

  def read(self, video_id: str, start: int, stop: int) -> np.ndarray:
    """B_o of frames ``[start, stop)`` of one video, at the packed frame size."""
    arr = self._array(video_id)
    h, w = self.size
    if not 0 <= start < stop <= arr.shape[0]:
      raise DatasetError(
        f"{self.folder}: frames [{start}, {stop}) outside video {video_id!r}'s {arr.shape[0]}"
      )
    bits = np.unpackbits(np.asarray(arr[start:stop]), axis=1, count=h * w)
    return bits.reshape(stop - start, h, w).astype(bool)


_CONFIG = None


def main(argv: Sequence[str]) -> None:
  del argv
  try:
    from segtube_jax.training import input_pipeline  # pylint: disable=g-import-not-at-top

    config = _CONFIG.value
    if config.clips.mask_source != "saliency":
      logging.warning(
        "config.clips.mask_source is %r; computing the B_o cache anyway", config.clips.mask_source
      )
    data_dir, name = input_pipeline.ensure_built(config, flags.FLAGS.workdir, saliency=False)
    folder = build(
      config, data_dir, name, flags.FLAGS.workers or config.clips.saliency_workers or None
    )
    print(f"B_o masks of every video in {folder}")
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  _CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file.", lock_config=True
  )
  flags.DEFINE_string(
    "workdir", None, "Experiment folder (the packed dataset lives in <workdir>/tfds)."
  )
  flags.DEFINE_integer("workers", 0, "Processes (0: one per CPU core).")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
