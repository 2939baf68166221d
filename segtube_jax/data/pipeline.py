"""Reads the frame-chunk records of :mod:`segtube_jax.data.tfds_builder` through grain.

:func:`chunk_dataset` is a deterministic ``grain.MapDataset`` of decoded chunks; its
iterator (:func:`chunk_iterator`) has ``get_state()`` / ``set_state()``, which training saves in
its checkpoints. :func:`read_video_clip` reads frames ``[start, stop)`` of one video by decoding only
the chunks that overlap them, through the video index stored in the build's metadata.

A decoded chunk (``L`` = chunk length, frames past ``num_valid`` are zero padding)::

  frames        uint8 [L, h, w, 3]    masks      bool [L, h, w]    mask_present  bool [L]
  labels        int32 [L]             ambiguous  bool [L]          num_valid     int
  video_id      str                   start      int               fps, num_frames
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
from typing import Any

import grain
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from segtube_jax.data import tfds_builder
from segtube_jax.errors import DatasetError


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  """Where one video's chunks lie in its split, and what the source said about it."""

  video_id: str
  first_record: int
  num_chunks: int
  fps: float
  num_frames: int
  source_size: tuple[int, int]
  segments: tuple[tuple[str, float, float], ...]
  ambiguous: tuple[tuple[float, float], ...]


def _dataset_dir(data_dir: str | os.PathLike, name: str) -> pathlib.Path:
  """The newest built version folder of ``name``, or DatasetError naming what is missing."""
  base = pathlib.Path(data_dir) / tfds_builder.BUILDER_NAME / name
  versions = sorted(
    (p for p in base.glob("*.*.*") if (p / "dataset_info.json").is_file()),
    key=lambda p: tuple(int(x) if x.isdigit() else -1 for x in p.name.split(".")),
  )
  if not versions:
    raise DatasetError(
      f"{base}: no built dataset {name!r} in data_dir {data_dir} (expected {base}/<version>/dataset_info.json); "
      f"build it with python -m segtube_jax.data.tfds_builder --source DIR --data_dir {data_dir} --name {name}"
    )
  return versions[-1]


class ChunkSource:
  """One split of a built dataset: a grain random-access source of raw (encoded) chunk records.

  Attributes:
    path: the version folder read.
    split: the split (subset) name.
    classes: class names; label k is ``classes[k - 1]``, 0 is background.
    chunk_len: frames per record.
    frame_size: (height, width) of the stored frames, or None when videos kept their size.
    videos: ``video_id -> VideoEntry`` of the split, in record order.
  """

  def __init__(self, data_dir: str | os.PathLike, name: str, split: str):
    self.path = _dataset_dir(data_dir, name)
    builder = tfds.builder_from_directory(os.fspath(self.path))
    meta = builder.info.metadata or {}
    if meta.get("format_version") != tfds_builder.FORMAT_VERSION or "splits" not in meta:
      raise DatasetError(
        f"{self.path}: metadata.json is missing or not format version "
        f"{tfds_builder.FORMAT_VERSION}; rebuild the dataset with --overwrite"
      )
    if split not in meta["splits"]:
      raise DatasetError(
        f"{self.path}: no split {split!r}; the built splits are {sorted(meta['splits'])}"
      )
    self.split = split
    self.classes: list[str] = list(meta["classes"])
    self.chunk_len = int(meta["chunk_len"])
    self.frame_size = None if meta["frame_size"] is None else tuple(meta["frame_size"])
    self.videos = {
      vid: VideoEntry(
        vid,
        v["first_record"],
        v["num_chunks"],
        float(v["fps"]),
        int(v["num_frames"]),
        tuple(v["source_size"]),
        tuple(tuple(s) for s in v["segments"]),
        tuple(tuple(s) for s in v["ambiguous"]),
      )
      for vid, v in meta["splits"][split]["videos"].items()
    }
    self._source = builder.as_data_source(split=split)
    if len(self._source) != meta["splits"][split]["num_records"]:
      raise DatasetError(
        f"{self.path}: split {split!r} has {len(self._source)} records but the index lists "
        f"{meta['splits'][split]['num_records']}; rebuild the dataset with --overwrite"
      )

  def __repr__(self) -> str:
    return f"ChunkSource({str(self.path)!r}, split={self.split!r}, {len(self)} chunks, {len(self.videos)} videos)"

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return self._source[index]

  def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
    return self._source.__getitems__(indices)

  def chunk_records(self, video_id: str, start: int, stop: int) -> range:
    """Record indices of the chunks holding frames ``[start, stop)`` of ``video_id``."""
    entry = self.videos.get(video_id)
    if entry is None:
      raise DatasetError(f"{self.path}: no video {video_id!r} in split {self.split!r}")
    if not 0 <= start < stop <= entry.num_frames:
      raise DatasetError(
        f"{self.path}: frame range [{start}, {stop}) is outside video {video_id!r}'s "
        f"0..{entry.num_frames} frames (expected 0 <= start < stop <= {entry.num_frames})"
      )
    first = entry.first_record
    return range(first + start // self.chunk_len, first + (stop - 1) // self.chunk_len + 1)


def _decode_image(data: bytes) -> np.ndarray:
  with Image.open(io.BytesIO(data)) as im:
    return np.asarray(im)


def decode_chunk(
  record: dict[str, Any], lo: int = 0, hi: int | None = None, wanted: np.ndarray | None = None
) -> dict[str, Any]:
  """Decodes a raw chunk record; frames outside ``[lo, hi)`` (and padding) stay zero/False.

  ``wanted``: optional bool [chunk length]; frames it marks False are not decoded either.
  """
  n = int(record["num_valid"])
  length = len(record["frames"])
  hi = n if hi is None else min(hi, n)
  todo = [i for i in range(lo, hi) if wanted is None or wanted[i]]
  first = _decode_image(record["frames"][todo[0] if todo else 0])
  frames = np.zeros((length,) + first.shape, np.uint8)
  masks = np.zeros((length,) + first.shape[:2], bool)
  present = np.asarray(record["mask_present"], bool)
  for k, i in enumerate(todo):
    frames[i] = first if k == 0 else _decode_image(record["frames"][i])
    if present[i]:
      masks[i] = _decode_image(record["masks"][i])
  video_id = record["video_id"]
  return {
    "frames": frames,
    "masks": masks,
    "mask_present": present.copy(),
    "labels": np.asarray(record["labels"], np.int32),
    "ambiguous": np.asarray(record["ambiguous"], bool),
    "num_valid": n,
    "video_id": video_id.decode() if isinstance(video_id, bytes) else str(video_id),
    "start": int(record["start"]),
    "fps": float(record["fps"]),
    "num_frames": int(record["num_frames"]),
  }


class DecodeChunk(grain.transforms.Map):
  """grain transform: raw chunk record -> decoded chunk (for ``grain.DataLoader`` operations)."""

  def map(self, element: dict[str, Any]) -> dict[str, Any]:
    return decode_chunk(element)


def open_chunk_source(data_dir: str | os.PathLike, name: str, split: str) -> ChunkSource:
  """Opens one split of a built dataset; DatasetError names a missing dataset or split."""
  return ChunkSource(data_dir, name, split)


def chunk_dataset(
  data_dir: str | os.PathLike,
  name: str,
  split: str,
  *,
  seed: int = 0,
  shuffle: bool = False,
  num_epochs: int | None = 1,
  shard_index: int = 0,
  shard_count: int = 1,
  decode: bool = True,
) -> grain.MapDataset:
  """A deterministic grain dataset of the chunks of one split.

  Args:
    data_dir: the TFDS data directory given to ``build_tfds``.
    name: the built dataset's name.
    split: 'training', 'validation' or 'testing' (those that were built).
    seed: shuffle seed (the same seed gives the same order).
    shuffle: shuffle the chunks, with a new order every epoch.
    num_epochs: passes over the data; None repeats forever.
    shard_index, shard_count: keep every ``shard_count``-th chunk from ``shard_index`` (per host).
    decode: decode frames and masks (False leaves raw encoded records, e.g. to filter first).

  Returns:
    A ``grain.MapDataset``; :func:`chunk_iterator` (or ``iter(ds.to_iter_dataset())``) gives a
    checkpointable iterator.
  """
  if not 0 <= shard_index < shard_count:
    raise DatasetError(f"shard_index must be in [0, shard_count={shard_count}), got {shard_index}")
  if num_epochs is not None and num_epochs < 1:
    raise DatasetError(f"num_epochs must be >= 1 or None (forever), got {num_epochs}")
  ds = grain.MapDataset.source(open_chunk_source(data_dir, name, split))
  if shard_count > 1:
    ds = ds[shard_index::shard_count]
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  return ds.map(DecodeChunk()) if decode else ds


def chunk_iterator(
  ds: grain.MapDataset,
  *,
  num_threads: int = 2,
  prefetch: int = 16,
  state: dict[str, Any] | None = None,
) -> grain.DatasetIterator:
  """A checkpointable iterator over ``ds`` (``get_state()`` / ``set_state()``).

  grain's default read options prefetch 500 elements with 16 threads, too many decoded chunks
  for a small machine; ``state`` (from ``get_state()``) resumes where that iterator was.
  """
  it = iter(
    ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
  )
  if state is not None:
    it.set_state(state)
  return it


def read_video_clip(
  source: ChunkSource, video_id: str, start: int, stop: int, wanted: np.ndarray | None = None
) -> dict[str, np.ndarray]:
  """Frames ``[start, stop)`` of one video, decoding only the frames asked for.

  ``wanted``: optional bool [stop - start]: only these frames are decoded (the others stay zero),
  e.g. the frames that a 32-frame window's 16-frame clip samples.

  Returns:
    ``frames`` uint8 [T, h, w, 3], ``masks`` bool [T, h, w], ``mask_present`` bool [T],
    ``labels`` int32 [T] and ``ambiguous`` bool [T], T = stop - start.
  """
  parts: dict[str, list[np.ndarray]] = {
    k: [] for k in ("frames", "masks", "mask_present", "labels", "ambiguous")
  }
  records = source.chunk_records(video_id, start, stop)  # Validates the video and the range.
  first = source.videos[video_id].first_record
  for index in records:
    record = source[index]
    chunk_start = int(record["start"])
    rid = (
      record["video_id"].decode()
      if isinstance(record["video_id"], bytes)
      else str(record["video_id"])
    )
    if rid != video_id or chunk_start != (index - first) * source.chunk_len:
      raise DatasetError(
        f"{source.path}: record {index} holds {rid!r} frame {chunk_start}, not the chunk of "
        f"{video_id!r} that the index points to; rebuild the dataset with --overwrite"
      )
    lo, hi = (
      max(start, chunk_start) - chunk_start,
      min(stop, chunk_start + source.chunk_len) - chunk_start,
    )
    chunk_wanted = None
    if wanted is not None:  # This chunk's part of ``wanted``, at chunk positions.
      chunk_wanted = np.zeros(source.chunk_len, bool)
      chunk_wanted[lo:hi] = wanted[chunk_start + lo - start : chunk_start + hi - start]
    chunk = decode_chunk(record, lo, hi, chunk_wanted)
    for key, values in parts.items():
      values.append(chunk[key][lo:hi])
  return {key: np.concatenate(values) for key, values in parts.items()}


def read_video_frames(source: ChunkSource, video_id: str, start: int, stop: int) -> np.ndarray:
  """Frames ``[start, stop)`` of one video as uint8 ``[T, h, w, 3]`` (see :func:`read_video_clip`)."""
  return read_video_clip(source, video_id, start, stop)["frames"]
