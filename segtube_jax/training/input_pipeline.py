"""Training input: sequences of saliency-aware clips read through grain from the tfds chunks.

One training example is a sequence of ``seq_len`` consecutive windows of one scale of one video
(the LSTM's unroll), turned into clips ``uint8 [S, 16, h, w, 3]`` with SCNN-style labels. The
pipeline is a ``grain.MapDataset``: deterministic per seed, sharded per process, batched per
process, and its iterator state (the data position) goes into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Iterator

import grain
import jax
import ml_collections
import numpy as np

from segtube_jax import clips as clips_lib
from segtube_jax import schema
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import pipeline as chunk_pipeline
from segtube_jax.data import tfds_builder
from segtube_jax.data import video as video_lib
from segtube_jax.errors import ConfigError, DatasetError, SegtubeError
from segtube_jax.training import batch_stream, saliency_cache


@dataclasses.dataclass(frozen=True)
class Sequence:
  """``seq_len`` consecutive windows of one scale of one video (padding windows: valid False)."""

  video_id: str
  starts: np.ndarray
  ends: np.ndarray
  valid: np.ndarray
  proposal_labels: np.ndarray
  class_labels: np.ndarray


def tfds_location(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> tuple[pathlib.Path, str]:
  """Where the packed chunks of ``config.dataset.root`` live: (data_dir, name)."""
  data_dir = pathlib.Path(config.dataset.tfds_dir or pathlib.Path(workdir) / "tfds")
  size = tuple(config.dataset.frame_size) if config.dataset.frame_size else None
  return data_dir, tfds_builder.default_name(
    config.dataset.root, size, config.dataset.get("encoding", "png")
  )


def ensure_built(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, saliency: bool = True
) -> tuple[pathlib.Path, str]:
  """Packs the dataset folder into array_record chunks once (process 0), validating it first.

  With ``config.clips.mask_source='saliency'`` (and ``saliency``) it then computes the missing
  B_o masks of every video (training/saliency_cache.py), each process its share.
  """
  data_dir, name = tfds_location(config, workdir)
  built = any((data_dir / tfds_builder.BUILDER_NAME / name).glob("*/dataset_info.json"))
  if config.clips.mask_source == "dataset" and jax.process_index() == 0:
    check_masks_on_every_frame(dataset_lib.load_dataset(config.dataset.root))
  if not built and jax.process_index() == 0:
    dataset_lib.load_dataset(config.dataset.root)  # One clear DatasetError before any packing.
    size = tuple(config.dataset.frame_size) if config.dataset.frame_size else None
    tfds_builder.build_tfds(
      config.dataset.root,
      data_dir,
      name,
      frame_size=size,
      chunk_len=config.dataset.chunk_len,
      encoding=config.dataset.get("encoding", "png"),
    )
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("segtube_tfds_built")
  if saliency and config.clips.mask_source == "saliency":
    saliency_cache.build(config, data_dir, name, config.clips.saliency_workers or None)
  return data_dir, name


def check_masks_on_every_frame(ds: dataset_lib.Dataset) -> None:
  """DatasetError naming the first video (by id) that lacks a mask on some frame.

  Ground-truth masks attenuate the clips only if every frame has one: when masks exist only on
  action frames (the synthetic data, ActSeg-style annotation), attenuation would itself tell the
  network which frames are actions.
  """
  for info in sorted(ds.videos.values(), key=lambda v: v.video_id):
    reader = ds.masks(info.video_id)
    have = len(reader.indices) if reader is not None else 0
    if info.num_frames is None or have < info.num_frames:
      first_missing = next(
        (i for i in range(info.num_frames or 0) if reader is None or not reader.has(i)), 0
      )
      raise DatasetError(
        f"config.clips.mask_source='dataset' needs a ground-truth mask on every frame, but video "
        f"{info.video_id!r} has {have} masks for {info.num_frames} frames (first without: frame "
        f"{first_missing}); use mask_source='saliency' (the paper's B_o) instead"
      )


def build_sequences(
  source: chunk_pipeline.ChunkSource, cfg: ml_collections.ConfigDict, *, balance_seed: int | None
) -> list[Sequence]:
  """All window sequences of a split with their labels (Sec. 2.1, SCNN-style).

  Args:
    source: one split of the packed dataset.
    cfg: ``config.clips``.
    balance_seed: when given, background windows of the classification labels are subsampled
      (once, over the whole split) to the count of the most frequent class.
  """
  classes = {name: k + 1 for k, name in enumerate(source.classes)}
  per_video = []
  for vid, entry in source.videos.items():
    windows = clips_lib.enumerate_windows(entry.num_frames, tuple(cfg.window_lengths), cfg.overlap)
    spans = [
      dataset_lib.Instance(lbl, t0, t1).frame_span(entry.fps) + (classes[lbl],)
      for lbl, t0, t1 in entry.segments
    ]
    labels = clips_lib.window_labels(
      windows,
      spans,
      positive_coverage=cfg.positive_coverage,
      background_coverage=cfg.background_coverage,
    )
    per_video.append((vid, windows, labels))
  all_labels = (
    np.concatenate([labels for _, _, labels in per_video]) if per_video else np.zeros(0, np.int32)
  )
  class_labels = all_labels
  if balance_seed is not None:
    class_labels = clips_lib.balance_background(all_labels, np.random.default_rng(balance_seed))
  sequences, offset = [], 0
  s = cfg.seq_len
  for vid, windows, labels in per_video:
    cls = class_labels[offset : offset + len(labels)]
    offset += len(labels)
    for scale in range(len(cfg.window_lengths)):
      idx = windows.of_scale(scale)
      for first in range(0, len(idx), s):
        part = idx[first : first + s]
        pad = s - len(part)
        padded = lambda a, fill: np.concatenate([a[part], np.full(pad, fill, a.dtype)])  # pylint: disable=cell-var-from-loop
        sequences.append(
          Sequence(
            vid,
            padded(windows.starts, 0),
            padded(windows.ends, 0),
            np.concatenate([np.ones(len(part), bool), np.zeros(pad, bool)]),
            padded(clips_lib.proposal_labels(labels), clips_lib.IGNORE),
            padded(cls, clips_lib.IGNORE),
          )
        )
  return sequences


class LoadClips:
  """Reads one sequence's frames (only the chunks it needs) and assembles augmented clips."""

  def __init__(
    self,
    source: chunk_pipeline.ChunkSource,
    cfg: ml_collections.ConfigDict,
    clip_shape: tuple[int, int, int],
    train: bool,
    saliency: saliency_cache.SaliencyCache | None = None,
  ):
    self.source, self.cfg, self.train, self.saliency = source, cfg, train, saliency
    if cfg.mask_source == "saliency" and saliency is None:
      raise ConfigError(
        "config.clips.mask_source='saliency' needs the B_o cache (training/saliency_cache.py)"
      )
    self.clip_len, self.crop = clip_shape[0], (clip_shape[1], clip_shape[2])
    self.resize = tuple(cfg.resize) if cfg.resize else self.crop
    if self.resize[0] < self.crop[0] or self.resize[1] < self.crop[1]:
      raise ConfigError(
        f"config.clips.resize {self.resize} must be at least the clip size {self.crop}"
      )

  def _masks(
    self, seq: Sequence, lo: int, hi: int, read: dict[str, np.ndarray]
  ) -> np.ndarray | None:
    mode = self.cfg.mask_source
    if mode == "none":
      return None
    if mode == "saliency":  # B_o on every frame: nothing here depends on the labels.
      masks = self.saliency.read(seq.video_id, lo, hi)
      size = read["frames"].shape[1:3]
      return (
        masks
        if masks.shape[1:] == size
        else video_lib.resize_frames(masks[..., None].astype(np.uint8) * 255, size)[..., 0] > 127
      )
    if mode == "dataset":
      masks, present = read["masks"], read["mask_present"]
      if not present.all():
        raise DatasetError(
          f"video {seq.video_id!r} has no ground-truth mask on frame "
          f"{lo + int(np.argmin(present))}; mask_source='dataset' needs one on every frame"
        )
      return masks
    else:
      masks, present = read_mask_folder(
        self.cfg.mask_dir, seq.video_id, lo, hi, read["frames"].shape[1:3]
      )
    # Frames without a mask are left as they are: attenuating them would tell the network which
    # frames the mask producer thought were actions.
    return np.where(present[:, None, None], masks, True)

  def __call__(
    self, seq: Sequence, rng: np.random.Generator | None = None
  ) -> dict[str, np.ndarray]:
    batch_stream.note_progress(seq.video_id)
    try:
      return self._load(seq, rng)
    except ConfigError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      # One error naming the video, also from a worker process (grain re-raises it here).
      detail = str(e) if isinstance(e, SegtubeError) else f"{type(e).__name__}: {e}"
      raise DatasetError(
        f"video {seq.video_id!r}: cannot load frames {int(seq.starts.min())}.."
        f"{int(seq.ends.max())} of a training sequence: {detail}"
      ) from e

  def _load(self, seq: Sequence, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    lo, hi = int(seq.starts[seq.valid].min()), int(seq.ends[seq.valid].max())
    # Only the frames the clips sample are decoded, attenuated and resized: a 32-frame window's
    # clip takes every other frame.
    used = np.zeros(hi - lo, bool)
    for i in np.flatnonzero(seq.valid):
      start = int(seq.starts[i])
      used[clips_lib.clip_frame_indices(start, int(seq.ends[i]) - start, self.clip_len) - lo] = True
    read = chunk_pipeline.read_video_clip(self.source, seq.video_id, lo, hi, used)
    h, w = self.resize
    if self.train and rng is not None:
      y, x = int(rng.integers(0, h - self.crop[0] + 1)), int(rng.integers(0, w - self.crop[1] + 1))
      flip = bool(self.cfg.flip and rng.random() < 0.5)
    else:
      y, x, flip = (h - self.crop[0]) // 2, (w - self.crop[1]) // 2, False
    masks = self._masks(seq, lo, hi, read)
    crops = clips_lib.saliency_aware_crops(
      read["frames"][used],
      None if masks is None else masks[used],
      self.cfg.saliency_mode,
      self.cfg.background_weight,
      self.resize,
      self.crop,
      (y, x),
    )
    if flip:
      crops = crops[:, :, ::-1]
    if self.train and rng is not None and self.cfg.color_augment:
      crops = crops[..., rng.permutation(3)]
      if rng.random() < 0.5:
        crops = 255 - crops
    frames = np.zeros((hi - lo,) + crops.shape[1:], np.uint8)
    frames[used] = crops
    out = clips_lib.gather_clips(frames, seq.starts, seq.ends, self.clip_len, lo, seq.valid)
    return {"clips": out, "proposal_labels": seq.proposal_labels, "class_labels": seq.class_labels}


def read_mask_folder(
  mask_dir: str, video_id: str, lo: int, hi: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
  """Masks ``<mask_dir>/<video_id>/<frame>.png`` of frames [lo, hi) (e.g. written by the
  segmentation stage), resized to ``size``; no folder: no masks."""
  folder = pathlib.Path(mask_dir) / video_id
  if not folder.is_dir():
    return np.zeros((hi - lo,) + tuple(size), bool), np.zeros(hi - lo, bool)
  return video_lib.MaskFolderReader(folder).read(lo, hi, size, resize=True)


class _RandomLoad(grain.transforms.RandomMap):
  def __init__(self, load: LoadClips):
    self.load = load

  def random_map(self, element: Sequence, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return self.load(element, rng)


class _Load(grain.transforms.Map):
  def __init__(self, load: LoadClips):
    self.load = load

  def map(self, element: Sequence) -> dict[str, np.ndarray]:
    return self.load(element)


def _saliency(
  config: ml_collections.ConfigDict, data_dir: pathlib.Path, name: str
) -> saliency_cache.SaliencyCache | None:
  if config.clips.mask_source != "saliency":
    return None
  return saliency_cache.SaliencyCache(saliency_cache.cache_dir(config, data_dir, name))


def train_dataset(
  config: ml_collections.ConfigDict, data_dir: pathlib.Path, name: str, batch_per_process: int
) -> tuple[batch_stream.TrainBatches, int]:
  """Shuffled, repeated, augmented, batched training sequences: this process's share of each global batch.

  Every process computes the same shuffled, augmented stream (one seed); global batch k is its
  elements ``k*G .. k*G+G-1`` and process p loads only ``stream[p::P]`` of it, so P processes
  train on exactly the global batches (and augmentations) of one process. The batches are made
  by ``config.data_workers`` worker processes (batch_stream.py), the same for any worker count.
  """
  schema.validate(config)
  source = chunk_pipeline.open_chunk_source(data_dir, name, "training")
  saliency = _saliency(config, data_dir, name)
  sequences = build_sequences(source, config.clips, balance_seed=config.seed)
  if not sequences:
    raise DatasetError(f"{data_dir}/{name}: the training split has no window sequences")
  ds = grain.MapDataset.source(sequences).shuffle(seed=config.seed).repeat(None)
  load = LoadClips(
    source, config.clips, tuple(config.model.clip_shape), train=True, saliency=saliency
  )
  ds = ds.random_map(_RandomLoad(load), seed=config.seed)
  if jax.process_count() > 1:  # Lazy: a process reads the frames of its own elements only.
    ds = ds[jax.process_index() :: jax.process_count()]
  ds = ds.batch(batch_per_process, drop_remainder=True, batch_fn=_stack)
  workers = batch_stream.resolve_workers(config.data_workers)
  stream = batch_stream.TrainBatches(ds, config.data_threads, config.data_prefetch, workers)
  return stream, len(source.classes)


def eval_batches(
  config: ml_collections.ConfigDict,
  data_dir: pathlib.Path,
  name: str,
  split: str,
  batch_per_process: int,
) -> Iterator[dict[str, np.ndarray]]:
  """Every window sequence of ``split`` once, centre-cropped, padded to full batches (labels -1).

  Process p reads ``sequences[p::P]``; every process yields the same number of batches (the
  largest shard's, padding with empty ones), since each batch is a collective step.
  """
  schema.validate(config)
  source = chunk_pipeline.open_chunk_source(data_dir, name, split)
  sequences = build_sequences(source, config.clips, balance_seed=None)
  largest_shard = -(-len(sequences) // jax.process_count())
  num_batches = -(-largest_shard // batch_per_process)
  if jax.process_count() > 1:
    sequences = sequences[jax.process_index() :: jax.process_count()]
  load = LoadClips(
    source,
    config.clips,
    tuple(config.model.clip_shape),
    train=False,
    saliency=_saliency(config, data_dir, name),
  )
  ds = grain.MapDataset.source(sequences).map(_Load(load))
  ds = ds.batch(batch_per_process, drop_remainder=False, batch_fn=_stack)
  empty = {
    "clips": np.zeros((0, config.clips.seq_len, *config.model.clip_shape, 3), np.uint8),
    "proposal_labels": np.zeros((0, config.clips.seq_len), np.int32),
    "class_labels": np.zeros((0, config.clips.seq_len), np.int32),
  }
  count = 0
  for batch in (
    ds.to_iter_dataset(
      grain.ReadOptions(
        num_threads=config.data_threads, prefetch_buffer_size=max(2, config.data_threads)
      )
    )
    if sequences
    else ()
  ):
    empty = {k: v[:0] for k, v in batch.items()}
    count += 1
    yield pad_batch(batch, batch_per_process)
  for _ in range(count, num_batches):
    yield pad_batch(empty, batch_per_process)


def _stack(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  return {k: np.stack([it[k] for it in items]) for k in items[0]}


def pad_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """Pads a short final batch with ignored sequences so every step has the compiled shape."""
  n = batch["clips"].shape[0]
  if n == size:
    return batch
  out = {}
  for k, v in batch.items():
    fill = -1 if k.endswith("labels") else 0
    out[k] = np.concatenate([v, np.full((size - n,) + v.shape[1:], fill, v.dtype)])
  return out


def shard(batch: dict[str, Any], num_devices: int) -> dict[str, Any]:
  """[B, ...] -> [devices, B / devices, ...] for pmap."""
  return jax.tree.map(lambda x: x.reshape((num_devices, -1) + x.shape[1:]), batch)
