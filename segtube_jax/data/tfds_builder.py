"""Packs a dataset folder into TFDS array_record files of fixed-length frame chunks.

No TensorFlow is needed, neither to build nor to read: TFDS Image/Video features need TensorFlow,
so every frame is stored as encoded bytes in a ``Tensor(dtype=object)`` feature and decoded by
:mod:`segtube_jax.data.pipeline` with Pillow.

One record is one chunk of ``chunk_len`` consecutive frames of one video (the last chunk of a
video is padded with empty bytes), so a clip is read by decoding only the chunks it overlaps::

  video_id      Text              the video's id in the source dataset
  start         int64             index of the chunk's first frame in the video
  num_valid     int32             frames in the chunk (< chunk_len only for a video's last chunk)
  fps           float32           the video's frame rate (exact value in the metadata)
  num_frames    int64             frames in the whole video
  frames        object [L]        PNG or JPEG bytes per frame, resized to frame_size; b"" = padding
  masks         object [L]        1-bit PNG bytes of the frame's action mask; b"" = no mask
  mask_present  bool [L]          whether the source has a mask for the frame
  labels        int32 [L]         0 background, k for frames inside an instance of class k (1-based)
  ambiguous     bool [L]          frames inside an 'ambiguous' interval of the annotations

Splits are the dataset's subsets (only non-empty ones). Records keep generation order (videos
sorted by id, chunks in frame order), and ``metadata.json`` holds the classes, the build settings
and per-split video index (first record, chunk count, fps, frame count, source size, segments).

Command line::

  python -m segtube_jax.data.tfds_builder --source DIR --data_dir DIR [--name NAME]
      [--frame_size 128,171|native] [--chunk_len 32] [--encoding png|jpeg] [--overwrite] [--num_workers N]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import io
import math
import os
import pathlib
import re
from typing import Any, Iterator

from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import video as video_lib
from segtube_jax.errors import ConfigError, DatasetError, VideoError

BUILDER_NAME = "segtube_chunks"
ENCODINGS = ("png", "jpeg")
FORMAT_VERSION = 1
DEFAULT_FRAME_SIZE = (128, 171)  # C3D's convention: resize to 128x171, crop 112x112 later.
_CONFIG_NAME = re.compile(r"[A-Za-z0-9][\w.+-]*")
# PNG level 1 encodes several times faster than the default 6 for ~10% more bytes.
_PNG_COMPRESS_LEVEL = 1


@dataclasses.dataclass(eq=False)
class ChunkConfig(tfds.core.BuilderConfig):
  """Build settings; ``name`` names the built dataset under ``<data_dir>/segtube_chunks/``.

  Attributes:
    frame_size: (height, width) every frame is resized to, or None to keep each video's size.
    chunk_len: frames per record.
    encoding: 'png' (lossless: decoded frames equal the reader's) or 'jpeg' (about 5x smaller).
    jpeg_quality: JPEG quality (1-95) when encoding is 'jpeg'.
  """

  frame_size: tuple[int, int] | None = DEFAULT_FRAME_SIZE
  chunk_len: int = 32
  encoding: str = "png"
  jpeg_quality: int = 90

  def check(self) -> None:
    """Raises ConfigError on an impossible setting."""
    if not _CONFIG_NAME.fullmatch(self.name or ""):
      raise ConfigError(
        f"dataset name {self.name!r} must match {_CONFIG_NAME.pattern} (letters, digits, _.+-)"
      )
    if self.frame_size is not None and (len(self.frame_size) != 2 or min(self.frame_size) < 1):
      raise ConfigError(
        f"frame_size must be (height, width) with positive values or None, got {self.frame_size}"
      )
    if self.chunk_len < 1:
      raise ConfigError(f"chunk_len must be >= 1, got {self.chunk_len}")
    if self.encoding not in ENCODINGS:
      raise ConfigError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
    if not 1 <= self.jpeg_quality <= 95:
      raise ConfigError(f"jpeg_quality must be in [1, 95], got {self.jpeg_quality}")

  def settings(self) -> dict[str, Any]:
    """The settings that change the records (stored in, and compared against, the metadata)."""
    return {
      "frame_size": None if self.frame_size is None else list(self.frame_size),
      "chunk_len": self.chunk_len,
      "encoding": self.encoding,
      "jpeg_quality": self.jpeg_quality if self.encoding == "jpeg" else None,
    }


def encode_image(image: np.ndarray, encoding: str = "png", quality: int = 90) -> bytes:
  """Encodes an RGB uint8 ``[H, W, 3]`` or bool ``[H, W]`` (1-bit PNG) image."""
  buf = io.BytesIO()
  im = Image.fromarray(image)
  if encoding == "jpeg":
    im.save(buf, format="JPEG", quality=quality)
  else:
    im.save(buf, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
  return buf.getvalue()


def resize_masks(masks: np.ndarray, size: video_lib.Size | None) -> np.ndarray:
  """Resizes bool ``[T, H, W]`` masks to ``size`` = (height, width) by nearest neighbour."""
  if size is None or tuple(masks.shape[1:3]) == tuple(size):
    return masks
  h, w = int(size[0]), int(size[1])
  out = [
    np.asarray(Image.fromarray(m.astype(np.uint8)).resize((w, h), Image.NEAREST)) > 0 for m in masks
  ]
  return np.stack(out) if out else np.zeros((0, h, w), bool)


def _spans_to_frames(spans: list[tuple[int, int, int]], num_frames: int, dtype: Any) -> np.ndarray:
  out = np.zeros(num_frames, dtype)
  for fs, fe, value in spans:  # Later spans win where they overlap.
    out[fs : min(fe, num_frames)] = value
  return out


def frame_labels(
  ds: dataset_lib.Dataset, info: dataset_lib.VideoInfo
) -> tuple[np.ndarray, np.ndarray]:
  """Per-frame ``(labels int32 [N], ambiguous bool [N])`` of a loaded video.

  ``labels`` is 0 outside instances and the 1-based class index inside ``Instance.frame_span``;
  where instances overlap, the later one in annotations.json wins.
  """
  n, fps = int(info.num_frames), float(info.fps)
  labels = _spans_to_frames(
    [inst.frame_span(fps) + (ds.class_index(inst.label),) for inst in info.annotations], n, np.int32
  )
  ambiguous = _spans_to_frames(
    [dataset_lib.Instance("", t0, t1).frame_span(fps) + (True,) for t0, t1 in info.ambiguous],
    n,
    bool,
  )
  return labels, ambiguous


class SegtubeChunks(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """TFDS builder of frame-chunk records from any dataset folder in the project's format.

  Not registered with TFDS (``python -m`` would register it twice); read the result with
  :func:`segtube_jax.data.pipeline.open_chunk_source`, ``tfds.builder_from_directory`` or
  ``tfds.data_source('segtube_chunks/<name>', data_dir=...)``.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Frame chunks with masks, per-frame labels and a video index."}
  BUILDER_CONFIGS = [ChunkConfig(name="default")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Pass the dataset folder (annotations.json, videos/ or frames/, masks/) as manual_dir."
  )

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup imports the optional importlib_resources package, absent here.
    return epath.Path(__file__)

  def __init__(
    self,
    *,
    source: str | os.PathLike | dataset_lib.Dataset | None = None,
    num_workers: int | None = None,
    **kwargs: Any,
  ):
    """Creates the builder.

    Args:
      source: the dataset folder or a loaded Dataset; None reads the download config's manual_dir.
      num_workers: image encoding threads (default: the CPU count).
      **kwargs: DatasetBuilder's (config, data_dir, file_format: array_record by default, ...).
    """
    kwargs.setdefault("file_format", "array_record")
    self._source = source
    self._num_workers = max(1, num_workers or os.cpu_count() or 1)
    super().__init__(**kwargs)
    self.builder_config.check()

  def _info(self) -> tfds.core.DatasetInfo:
    def seq(dtype: Any) -> tfds.features.Tensor:
      return tfds.features.Tensor(shape=(self.builder_config.chunk_len,), dtype=dtype)

    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__.split("\n\n")[0],
      features=tfds.features.FeaturesDict(
        {
          "video_id": tfds.features.Text(),
          "start": tfds.features.Scalar(dtype=np.int64),
          "num_valid": tfds.features.Scalar(dtype=np.int32),
          "fps": tfds.features.Scalar(dtype=np.float32),
          "num_frames": tfds.features.Scalar(dtype=np.int64),
          "frames": seq(np.object_),
          "masks": seq(np.object_),
          "mask_present": seq(np.bool_),
          "labels": seq(np.int32),
          "ambiguous": seq(np.bool_),
        }
      ),
      metadata=tfds.core.MetadataDict(),
      # Record order = generation order, so the video index is known before writing.
      disable_shuffling=True,
    )

  def _load_source(self, dl_manager: tfds.download.DownloadManager) -> dataset_lib.Dataset:
    if isinstance(self._source, dataset_lib.Dataset):
      return self._source
    root = self._source if self._source is not None else dl_manager.manual_dir
    return dataset_lib.load_dataset(root)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
    ds = self._load_source(dl_manager)
    cfg = self.builder_config
    splits, generators = {}, {}
    for subset in dataset_lib.SUBSETS:
      infos = ds.subset(subset)
      if not infos:
        continue
      index, record = {}, 0
      for info in infos:
        reader = _open(ds, info.video_id)
        num_chunks = math.ceil(info.num_frames / cfg.chunk_len)
        index[info.video_id] = {
          "first_record": record,
          "num_chunks": num_chunks,
          "fps": info.fps,
          "num_frames": info.num_frames,
          "source_size": [reader.height, reader.width],
          "segments": [[inst.label, inst.start, inst.end] for inst in info.annotations],
          "ambiguous": [list(seg) for seg in info.ambiguous],
        }
        record += num_chunks
      splits[subset] = {"num_records": record, "videos": index}
      generators[subset] = self._generate_examples(ds, infos)
    if not generators:
      raise DatasetError(
        f"{ds.root}: the dataset has no videos in any subset {dataset_lib.SUBSETS}"
      )
    self.info.metadata.update(
      {
        "format_version": FORMAT_VERSION,
        "source": str(ds.root),
        "classes": ds.classes,
        **cfg.settings(),
        "splits": splits,
      }
    )
    return generators

  def _generate_examples(
    self, ds: dataset_lib.Dataset, infos: list[dataset_lib.VideoInfo]
  ) -> Iterator[tuple[str, dict[str, Any]]]:
    # Pillow releases the GIL while encoding, so threads encode a chunk's frames in parallel.
    with concurrent.futures.ThreadPoolExecutor(self._num_workers) as pool:
      for info in infos:
        try:
          yield from self._video_chunks(ds, info, pool)
        except VideoError as e:
          raise DatasetError(f"{ds.root}: video {info.video_id!r} cannot be packed: {e}") from None

  def _video_chunks(
    self, ds: dataset_lib.Dataset, info: dataset_lib.VideoInfo, pool: concurrent.futures.Executor
  ) -> Iterator[tuple[str, dict[str, Any]]]:
    cfg = self.builder_config
    length, size = cfg.chunk_len, cfg.frame_size
    reader = _open(ds, info.video_id)
    mask_reader = ds.masks(info.video_id)
    labels, ambiguous = frame_labels(ds, info)
    encode = functools.partial(encode_image, encoding=cfg.encoding, quality=cfg.jpeg_quality)
    for start, frames in reader.iter_chunks(length, size):
      n = len(frames)
      stop = start + n
      masks_bytes = [b""] * length
      present = np.zeros(length, bool)
      if mask_reader is not None and any(mask_reader.has(i) for i in range(start, stop)):
        masks, has = mask_reader.read(start, stop, (reader.height, reader.width))
        masks = resize_masks(masks, size)
        present[:n] = has
        for i in np.flatnonzero(has):
          masks_bytes[i] = encode_image(masks[i], "png")
      pad = length - n
      yield (
        f"{info.video_id}/{start:09d}",
        {
          "video_id": info.video_id,
          "start": start,
          "num_valid": n,
          "fps": info.fps,
          "num_frames": info.num_frames,
          "frames": np.array(list(pool.map(encode, frames)) + [b""] * pad, dtype=object),
          "masks": np.array(masks_bytes, dtype=object),
          "mask_present": present,
          "labels": np.pad(labels[start:stop], (0, pad)),
          "ambiguous": np.pad(ambiguous[start:stop], (0, pad)),
        },
      )


def _open(
  ds: dataset_lib.Dataset, video_id: str
) -> video_lib.VideoReader | video_lib.FrameFolderReader:
  try:
    return ds.open_frames(video_id)
  except VideoError as e:
    raise DatasetError(f"{ds.root}: video {video_id!r} cannot be opened: {e}") from None


def default_name(
  source_root: str | os.PathLike, frame_size: tuple[int, int] | None, encoding: str = "png"
) -> str:
  """``<source folder name>_<h>x<w>`` (or ``_native``), plus ``_jpeg`` for JPEG chunks, in the characters TFDS accepts."""
  base = (
    re.sub(r"[^\w.+-]", "_", pathlib.Path(source_root).resolve().name).strip("._+-") or "dataset"
  )
  suffix = "_jpeg" if encoding == "jpeg" else ""
  return f"{base}_{'native' if frame_size is None else f'{frame_size[0]}x{frame_size[1]}'}{suffix}"


def build_tfds(
  source_root: str | os.PathLike,
  data_dir: str | os.PathLike,
  name: str | None = None,
  *,
  frame_size: tuple[int, int] | None = DEFAULT_FRAME_SIZE,
  chunk_len: int = 32,
  encoding: str = "png",
  jpeg_quality: int = 90,
  overwrite: bool = False,
  num_workers: int | None = None,
) -> SegtubeChunks:
  """Validates a dataset folder and packs it into ``<data_dir>/segtube_chunks/<name>/1.0.0/``.

  Args:
    source_root: the dataset folder (see :mod:`segtube_jax.data.dataset`).
    data_dir: the TFDS data directory.
    name: the built dataset's name (TFDS config name); default :func:`default_name`.
    frame_size: (height, width) to resize frames and masks to; None keeps each video's size.
    chunk_len: frames per record.
    encoding: 'png' (lossless) or 'jpeg'.
    jpeg_quality: JPEG quality when encoding is 'jpeg'.
    overwrite: rebuild even if a dataset of that name exists.
    num_workers: image encoding threads (default: the CPU count).

  Returns:
    The prepared builder (``builder.as_data_source(split)`` reads it back).

  Raises:
    DatasetError: the folder is invalid (before anything is written), a video cannot be decoded,
      or ``name`` already holds a dataset built with other settings and ``overwrite`` is False.
    ConfigError: an impossible setting.
  """
  config = ChunkConfig(
    name=name or default_name(source_root, frame_size, encoding),
    frame_size=None if frame_size is None else (int(frame_size[0]), int(frame_size[1])),
    chunk_len=int(chunk_len),
    encoding=encoding,
    jpeg_quality=int(jpeg_quality),
  )
  config.check()
  ds = dataset_lib.load_dataset(source_root)
  builder = SegtubeChunks(
    source=ds, config=config, data_dir=os.fspath(data_dir), num_workers=num_workers
  )
  mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
  if builder.is_prepared():
    built = {k: builder.info.metadata.get(k) for k in config.settings()}
    if overwrite:
      mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD
    elif built != config.settings():
      raise DatasetError(
        f"{builder.data_dir}: already built with {built}, not {config.settings()}; "
        f"pick another name or pass overwrite=True (--overwrite)"
      )
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(download_mode=mode))
  return builder


def _parse_frame_size(text: str) -> tuple[int, int] | None:
  if text.strip().lower() == "native":
    return None
  m = re.fullmatch(r"\s*(\d+)\s*[,x]\s*(\d+)\s*", text)
  if not m:
    raise ConfigError(f"--frame_size must be HEIGHT,WIDTH (e.g. 128,171) or 'native', got {text!r}")
  return int(m.group(1)), int(m.group(2))


def main(argv: list[str]) -> int:
  """The command line (flags are defined by :func:`_define_flags`)."""
  from absl import flags

  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    builder = build_tfds(
      f.source,
      f.data_dir,
      f.name,
      frame_size=_parse_frame_size(f.frame_size),
      chunk_len=f.chunk_len,
      encoding=f.encoding,
      jpeg_quality=f.jpeg_quality,
      overwrite=f.overwrite,
      num_workers=f.num_workers,
    )
  except (DatasetError, ConfigError) as e:
    print(f"error: {e}")
    return 1
  for split, info in builder.info.splits.items():
    print(f"{split}: {info.num_examples} chunks")
  print(f"built {builder.data_dir}")
  return 0


def _define_flags() -> None:
  from absl import flags

  flags.DEFINE_string("source", None, "Dataset folder in the project's format.", required=True)
  flags.DEFINE_string("data_dir", None, "TFDS data directory to write to.", required=True)
  flags.DEFINE_string("name", None, "Name of the built dataset (default: <source folder>_<h>x<w>).")
  flags.DEFINE_string(
    "frame_size", ",".join(map(str, DEFAULT_FRAME_SIZE)), "HEIGHT,WIDTH or 'native'."
  )
  flags.DEFINE_integer("chunk_len", 32, "Frames per record.")
  flags.DEFINE_enum(
    "encoding", "png", ENCODINGS, "Frame encoding: png (lossless) or jpeg (smaller)."
  )
  flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality (1-95).")
  flags.DEFINE_bool("overwrite", False, "Rebuild if the dataset already exists.")
  flags.DEFINE_integer("num_workers", None, "Image encoding threads (default: the CPU count).")


if __name__ == "__main__":
  import sys

  from absl import app

  _define_flags()
  app.run(lambda argv: sys.exit(main(argv)))
