"""Frame access: PyAV video files, frame folders and mask folders behind one API.

Every reader exposes ``num_frames``, ``fps``, ``height``, ``width``, ``read(start, stop, size)``
(RGB uint8 ``[T, H, W, 3]``), ``iter_chunks(chunk, size)`` and ``frame_names()``. Videos are decoded
in a streaming fashion: a reader never holds more than the requested frames, so windows of a
minutes-long THUMOS14 video can be read without decoding it whole into memory.
"""

from __future__ import annotations

import fractions
import os
import pathlib
import re
from typing import Iterable, Iterator, Protocol

import numpy as np
from PIL import Image

from segtube_jax.errors import VideoError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_FPS = 25.0  # Frame folders carry no rate; annotations may leave it out.
# Containers whose packet timestamps are decode-order (AVI with packed B-frames): seeking and
# pts-based frame numbering are unreliable there, so they are read sequentially.
_SEQUENTIAL_FORMATS = ("avi",)

Size = tuple[int, int]  # (height, width)


class FrameReader(Protocol):
  """What every frame source offers."""

  path: str
  num_frames: int
  fps: float
  height: int
  width: int

  def read(
    self, start: int = 0, stop: int | None = None, size: Size | None = None
  ) -> np.ndarray: ...

  def iter_chunks(
    self, chunk: int, size: Size | None = None
  ) -> Iterator[tuple[int, np.ndarray]]: ...

  def frame_names(self) -> list[str]: ...


def resize_frames(frames: np.ndarray, size: Size | None) -> np.ndarray:
  """Resizes ``[T, H, W, C]`` or ``[T, H, W]`` uint8 frames to ``size`` = (height, width) (bilinear)."""
  if size is None or tuple(frames.shape[1:3]) == tuple(size):
    return frames
  h, w = int(size[0]), int(size[1])
  if h <= 0 or w <= 0:
    raise VideoError(f"resize size must be positive (height, width), got {size}")
  out = [np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames]
  return np.stack(out) if out else np.zeros((0, h, w) + frames.shape[3:], frames.dtype)


def _check_range(path: str, num_frames: int, start: int, stop: int | None) -> tuple[int, int]:
  stop = num_frames if stop is None else stop
  if not 0 <= start <= stop <= num_frames:
    raise VideoError(
      f"{path}: frame range [{start}, {stop}) is outside the video's 0..{num_frames} frames"
    )
  return int(start), int(stop)


def _chunks(reader: FrameReader, chunk: int, size: Size | None) -> Iterator[tuple[int, np.ndarray]]:
  if chunk < 1:
    raise VideoError(f"chunk length must be >= 1, got {chunk}")
  for start in range(0, reader.num_frames, chunk):
    yield start, reader.read(start, min(start + chunk, reader.num_frames), size)


class VideoReader:
  """Streaming random-access reader of a video file through PyAV.

  Frame ``i`` is the ``i``-th frame in presentation order. Reads that move forward continue the
  open decoder; reads that jump seek to the keyframe before the target (mp4/mkv/webm) or restart
  (AVI, whose timestamps cannot be trusted for seeking).
  """

  def __init__(self, path: str | os.PathLike, *, count_frames: bool = False):
    import av  # Imported lazily: the rest of the data layer does not need FFmpeg.

    self.path = str(path)
    if not os.path.isfile(self.path):
      raise VideoError(f"{self.path}: video file not found")
    self._av = av
    try:
      container = av.open(self.path)
    except Exception as e:  # PyAV raises many FFmpeg error types.
      raise VideoError(f"{self.path}: not a readable video ({type(e).__name__}: {e})") from None
    try:
      if not container.streams.video:
        raise VideoError(f"{self.path}: the file has no video stream")
      stream = container.streams.video[0]
      rate = stream.average_rate or stream.base_rate
      self.fps = float(rate) if rate else 0.0
      self.width = int(stream.codec_context.width)
      self.height = int(stream.codec_context.height)
      self._format = container.format.name.split(",")[0]
      self._time_base = float(stream.time_base) if stream.time_base else None
      self._start_pts = stream.start_time or 0
      n = int(stream.frames or 0)
      if count_frames or n <= 0 or self.fps <= 0:
        n = sum(1 for _ in container.decode(video=0))
    except VideoError:
      container.close()
      raise
    except Exception as e:
      container.close()
      raise VideoError(
        f"{self.path}: cannot decode the video stream ({type(e).__name__}: {e})"
      ) from None
    container.close()
    if n <= 0:
      raise VideoError(f"{self.path}: the video stream has no decodable frames")
    if self.fps <= 0:
      raise VideoError(f"{self.path}: the video stream declares no frame rate")
    self.num_frames = n
    self._container = None
    self._iter = None
    self._next_index = 0
    self._seekable = self._format not in _SEQUENTIAL_FORMATS and self._time_base is not None

  def __repr__(self) -> str:
    return f"VideoReader({self.path!r}, {self.num_frames} frames, {self.width}x{self.height}, {self.fps:g} fps)"

  def close(self) -> None:
    if self._container is not None:
      self._container.close()
    self._container, self._iter, self._next_index = None, None, 0

  def __del__(self):
    try:
      self.close()
    except Exception:  # Interpreter shutdown.
      pass

  def _restart(self) -> None:
    self.close()
    self._container = self._av.open(self.path)
    self._container.streams.video[0].thread_type = "AUTO"
    self._iter = self._container.decode(video=0)
    self._next_index = 0

  def _seek(self, index: int) -> None:
    """Positions the decoder so that the next decoded frame has index <= ``index``."""
    if self._container is None or index < self._next_index:
      self._restart()
    if not self._seekable or index - self._next_index < 2 * max(1.0, self.fps):
      return
    stream = self._container.streams.video[0]
    target = self._start_pts + int(index / self.fps / self._time_base)
    self._container.seek(target, stream=stream, backward=True, any_frame=False)
    self._iter = self._container.decode(video=0)
    self._next_index = -1  # Unknown until the first frame's pts tells.

  def _frame_index(self, frame) -> int:
    if self._next_index >= 0 or frame.pts is None:
      return self._next_index
    return int(round((frame.pts - self._start_pts) * self._time_base * self.fps))

  def read(self, start: int = 0, stop: int | None = None, size: Size | None = None) -> np.ndarray:
    """Returns frames ``[start, stop)`` as RGB uint8 ``[T, H, W, 3]``, resized to ``size`` if given."""
    start, stop = _check_range(self.path, self.num_frames, start, stop)
    out_h, out_w = (self.height, self.width) if size is None else (int(size[0]), int(size[1]))
    out = np.zeros((stop - start, out_h, out_w, 3), np.uint8)
    if stop == start:
      return out
    self._seek(start)
    got = 0
    try:
      while got < stop - start:
        try:
          frame = next(self._iter)
        except StopIteration:
          break
        index = self._frame_index(frame)
        self._next_index = index + 1
        if index < start:
          continue
        if size is None:
          out[index - start] = frame.to_ndarray(format="rgb24")
        else:
          # Resizing inside FFmpeg's swscale is much cheaper than decoding full-size first.
          out[index - start] = frame.reformat(
            width=out_w, height=out_h, format="rgb24"
          ).to_ndarray()
        got = index - start + 1
    except self._av.FFmpegError as e:
      self.close()
      raise VideoError(f"{self.path}: decoding failed near frame {start + got} ({e})") from None
    if got < stop - start:
      self.close()
      raise VideoError(
        f"{self.path}: the file ends after frame {start + got - 1} but {self.num_frames} frames were "
        f"declared (truncated or corrupt video?)"
      )
    return out

  def iter_chunks(self, chunk: int, size: Size | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yields ``(start, frames)`` over the whole video, ``chunk`` frames at a time."""
    return _chunks(self, chunk, size)

  def frame_names(self) -> list[str]:
    return [f"{i:05d}" for i in range(self.num_frames)]


def _numbered_files(folder: pathlib.Path, extensions: tuple[str, ...]) -> list[pathlib.Path]:
  files = [p for p in folder.iterdir() if p.suffix.lower() in extensions]
  bad = [p.name for p in files if not re.fullmatch(r"\d+", p.stem)]
  if bad:
    raise VideoError(
      f"{folder}: frame files must be named by frame number (e.g. 000000.jpg), got {bad[:3]}"
    )
  return sorted(files, key=lambda p: int(p.stem))


def load_image(path: pathlib.Path, mode: str) -> np.ndarray:
  """A decoded image as an array in PIL ``mode`` ("RGB", "L"); VideoError naming the file if unreadable."""
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert(mode))
  except Exception as e:
    raise VideoError(f"{path}: expected a readable image ({type(e).__name__}: {e})") from None


class FrameFolderReader:
  """A folder of numbered images (the DAVIS layout) read through the frame API."""

  def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS):
    folder = pathlib.Path(path)
    if not folder.is_dir():
      raise VideoError(f"{folder}: frame folder not found")
    self.path = str(folder)
    self._files = _numbered_files(folder, FRAME_EXTENSIONS)
    if not self._files:
      raise VideoError(f"{folder}: no frame images (.jpg/.png) in the folder")
    numbers = [int(p.stem) for p in self._files]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
      raise VideoError(f"{folder}: frame numbers must be consecutive, got a gap after {numbers[0]}")
    first = load_image(self._files[0], "RGB")
    self.height, self.width = first.shape[:2]
    self.num_frames = len(self._files)
    self.fps = float(fps)

  def __repr__(self) -> str:
    return f"FrameFolderReader({self.path!r}, {self.num_frames} frames, {self.width}x{self.height})"

  def read(self, start: int = 0, stop: int | None = None, size: Size | None = None) -> np.ndarray:
    """Returns frames ``[start, stop)`` as RGB uint8 ``[T, H, W, 3]``."""
    start, stop = _check_range(self.path, self.num_frames, start, stop)
    frames = []
    for p in self._files[start:stop]:
      img = load_image(p, "RGB")
      if img.shape[:2] != (self.height, self.width):
        raise VideoError(
          f"{p}: frame size {img.shape[1]}x{img.shape[0]} differs from the folder's "
          f"{self.width}x{self.height}"
        )
      frames.append(img)
    arr = np.stack(frames) if frames else np.zeros((0, self.height, self.width, 3), np.uint8)
    return resize_frames(arr, size)

  def iter_chunks(self, chunk: int, size: Size | None = None) -> Iterator[tuple[int, np.ndarray]]:
    return _chunks(self, chunk, size)

  def frame_names(self) -> list[str]:
    return [p.stem for p in self._files]


class MaskFolderReader:
  """Per-frame binary masks ``<folder>/<frame number>.png`` (0 background, > 0 action).

  Frames need not all have masks: ``indices`` lists those that do, and ``read`` returns
  ``(masks, present)`` where ``present[i]`` says whether frame ``start + i`` has one.
  """

  def __init__(self, path: str | os.PathLike, num_frames: int | None = None):
    folder = pathlib.Path(path)
    if not folder.is_dir():
      raise VideoError(f"{folder}: mask folder not found")
    self.path = str(folder)
    files = _numbered_files(folder, (".png",))
    self._by_index = {int(p.stem): p for p in files}
    self.indices = sorted(self._by_index)
    if num_frames is not None and self.indices and self.indices[-1] >= num_frames:
      raise VideoError(
        f"{folder}: mask for frame {self.indices[-1]} but the video has {num_frames} frames"
      )
    self.num_frames = num_frames

  def has(self, index: int) -> bool:
    return index in self._by_index

  def file(self, index: int) -> pathlib.Path:
    """The file of frame ``index``'s mask (its name has 5 or 6 digits)."""
    if index not in self._by_index:
      raise VideoError(f"{self.path}: no mask for frame {index}")
    return self._by_index[index]

  def read_one(self, index: int, size: Size | None = None) -> np.ndarray:
    """The mask of frame ``index`` as bool ``[H, W]``, resized (nearest) to ``size`` if given."""
    if index not in self._by_index:
      raise VideoError(f"{self.path}: no mask for frame {index}")
    image = load_image(self._by_index[index], "L")
    if size is not None and image.shape != tuple(size):
      image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.NEAREST))
    return image > 0

  def read(
    self, start: int, stop: int, shape: Size | None = None, resize: bool = False
  ) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(masks bool [T, H, W], present bool [T])`` for frames ``[start, stop)``.

    Frames without a mask file are all-False with ``present`` False. ``shape`` is required when
    none of the frames has a mask (the frame size is then unknown to the mask folder). A mask
    of another size than ``shape`` is an error, or resized to it (nearest) with ``resize``.
    """
    present = np.array([self.has(i) for i in range(start, stop)], bool)
    size = shape if resize else None
    loaded = {i: self.read_one(i, size) for i in range(start, stop) if self.has(i)}
    if shape is None:
      if not loaded:
        raise VideoError(f"{self.path}: no masks in frames [{start}, {stop}) and no shape given")
      shape = next(iter(loaded.values())).shape
    masks = np.zeros((stop - start,) + tuple(shape), bool)
    for i, m in loaded.items():
      if m.shape != tuple(shape):
        raise VideoError(
          f"{self._by_index[i]}: mask size {m.shape[1]}x{m.shape[0]} differs from the frame size "
          f"{shape[1]}x{shape[0]}"
        )
      masks[i - start] = m
    return masks, present


def frame_rate(fps: float | None) -> float:
  """``fps`` as a float, or DEFAULT_FPS when it is unknown (None or 0)."""
  return float(fps or DEFAULT_FPS)


def open_frames(
  path: str | os.PathLike, fps: float = DEFAULT_FPS
) -> VideoReader | FrameFolderReader:
  """Opens a video file or a frame folder (``fps`` is used for folders only)."""
  p = pathlib.Path(path)
  if p.is_dir():
    return FrameFolderReader(p, fps=fps)
  if not p.exists():
    raise VideoError(f"{p}: no such video file or frame folder")
  return VideoReader(p)


def write_video(
  path: str | os.PathLike,
  frames: Iterable[np.ndarray],
  fps: float = DEFAULT_FPS,
  *,
  codec: str = "libx264",
  crf: int = 18,
) -> int:
  """Encodes RGB uint8 frames to ``path`` and returns the number of frames written.

  Deterministic: libx264 runs single-threaded without mbtree, so the same frames give the same bytes. Frames go
  to a temporary name first and are renamed at the end, so an interrupted write never leaves a
  file that looks complete. Odd sizes are padded to even ones (yuv420p needs even sizes).
  """
  import av

  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
  container = av.open(str(tmp), "w")
  stream, count = None, 0
  try:
    for frame in frames:
      frame = np.asarray(frame)
      if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise VideoError(f"{path}: frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
      if stream is None:
        height, width = frame.shape[:2]
        stream = container.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "libx264":
          # No macroblock-tree rate control: its lookahead made small frames encode differently run to run.
          stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
      if frame.shape[:2] != (height, width):
        raise VideoError(
          f"{path}: frame {count} is {frame.shape[1]}x{frame.shape[0]}, expected {width}x{height}"
        )
      if (stream.height, stream.width) != (height, width):
        frame = np.pad(
          frame, ((0, stream.height - height), (0, stream.width - width), (0, 0)), mode="edge"
        )
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
      count += 1
    if stream is None:
      raise VideoError(f"{path}: no frames to write")
    for packet in stream.encode():
      container.mux(packet)
    container.close()
    os.replace(tmp, path)
  except BaseException:
    container.close()
    tmp.unlink(missing_ok=True)
    raise
  return count
