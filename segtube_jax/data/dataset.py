"""The dataset format: the one contract between data producers and consumers.

A dataset is a folder::

    <root>/annotations.json
    <root>/videos/<video_id>.<mp4|avi|mkv|webm>   or   <root>/frames/<video_id>/<000000>.<jpg|png>
    <root>/masks/<video_id>/<000000>.png          optional per-frame action masks (0 bg, > 0 action)

``annotations.json`` follows the ActivityNet convention::

    {"version": "...", "classes": ["Name", ...],
     "database": {"<video_id>": {"subset": "training|validation|testing", "fps": 25.0,
                                 "num_frames": 1234, "duration": 49.36,
                                 "annotations": [{"label": "Name", "segment": [t0, t1]}],
                                 "ambiguous": [[t0, t1], ...]}}}

Times are in seconds; frame ``f`` covers ``[f / fps, (f + 1) / fps)``. ``fps``, ``num_frames`` and
``duration`` may be ``null`` (e.g. THUMOS14 converted without its videos); they are then read from
the media when the dataset is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any

from segtube_jax import io_utils
from segtube_jax.data import video as video_lib
from segtube_jax.errors import DatasetError, VideoError

SUBSETS = ("training", "validation", "testing")
# Segments may end up to one frame past the last frame's start (rounding in published annotations).
_TIME_TOLERANCE_FRAMES = 1.0
# Frame indices are int32 downstream (windows, clips, masks).
_MAX_FRAMES = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Instance:
  """One action instance: its class name and its [start, end] in seconds."""

  label: str
  start: float
  end: float

  def frame_span(self, fps: float) -> tuple[int, int]:
    """The frames ``[f_s, f_e)`` (end exclusive) whose time intervals overlap the segment."""
    fs = max(0, math.floor(self.start * fps + 1e-6))
    fe = max(fs + 1, math.ceil(self.end * fps - 1e-6))
    return fs, fe


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """The annotation record of one video."""

  video_id: str
  subset: str
  fps: float | None
  num_frames: int | None
  duration: float | None
  annotations: tuple[Instance, ...]
  ambiguous: tuple[tuple[float, float], ...] = ()


def _is_number(x: Any) -> bool:
  if isinstance(x, bool) or not isinstance(x, (int, float)):
    return False
  try:
    return math.isfinite(x)
  except OverflowError:  # A JSON integer beyond the float range.
    return False


def _bad_video_id(vid: str) -> bool:
  """Ids name files (videos/<id>.mp4, frames/<id>/, masks/<id>/): no path parts, no NUL."""
  return vid in ("", ".", "..") or "/" in vid or "\0" in vid


def parse_annotations(
  data: Any, source: str = "annotations.json"
) -> tuple[str, list[str], dict[str, VideoInfo], list[str]]:
  """Parses the annotation structure; returns (version, classes, videos, problems).

  Every problem names the video and the field. Entries with problems are left out of ``videos``.
  """
  problems: list[str] = []
  if not isinstance(data, dict):
    return "", [], {}, [f"{source}: top level must be a JSON object, got {type(data).__name__}"]
  classes = _parse_classes(data, source, problems)
  known = set(classes)
  database = data.get("database")
  if not isinstance(database, dict):
    problems.append(f"{source}: 'database' must be an object mapping video ids to records")
    database = {}
  videos: dict[str, VideoInfo] = {}
  for vid, rec in database.items():
    info = _parse_video(vid, rec, source, known, problems)
    if info is not None:
      videos[vid] = info
  return str(data.get("version", "")), list(classes), videos, problems


def _parse_classes(data: dict, source: str, problems: list[str]) -> list:
  """Reads and checks the top-level 'classes' list ([] when it is unusable)."""
  classes = data.get("classes")
  if (
    not isinstance(classes, list)
    or not classes
    or not all(isinstance(c, str) and c for c in classes)
  ):
    problems.append(f"{source}: 'classes' must be a non-empty list of class names")
    classes = []
  elif len(set(classes)) != len(classes):
    problems.append(f"{source}: 'classes' has duplicate names")
  return classes


def _parse_video(
  vid: Any, rec: Any, source: str, known: set[str], problems: list[str]
) -> VideoInfo | None:
  """Parses one database record; returns None when it has problems."""
  where = f"{source}: video {vid!r}"
  before = len(problems)
  if _bad_video_id(vid):
    problems.append(f"{where}: video id must be a file name (non-empty, no '/', not '.' or '..')")
  if not isinstance(rec, dict):
    problems.append(f"{where}: record must be an object")
    return None
  subset, fps, num_frames, duration = _parse_video_header(rec, where, problems)
  header_ok = len(problems) == before
  if header_ok and duration is None and fps and num_frames:
    duration = num_frames / fps
  instances = _parse_instances(rec, where, known, header_ok, fps, duration, problems)
  ambiguous = _parse_ambiguous(rec, where, problems)
  if len(problems) != before:
    return None
  return VideoInfo(
    vid,
    subset,
    None if fps is None else float(fps),
    num_frames,
    None if duration is None else float(duration),
    tuple(instances),
    tuple(ambiguous),
  )


def _parse_video_header(rec: dict, where: str, problems: list[str]) -> tuple[Any, Any, Any, Any]:
  """Reads and checks a record's 'subset', 'fps', 'num_frames' and 'duration'."""
  subset = rec.get("subset")
  if subset not in SUBSETS:
    problems.append(f"{where}: 'subset' must be one of {SUBSETS}, got {subset!r}")
  fps, num_frames, duration = rec.get("fps"), rec.get("num_frames"), rec.get("duration")
  if fps is not None and not (_is_number(fps) and fps > 0):
    problems.append(f"{where}: 'fps' must be a positive number or null, got {fps!r}")
  if num_frames is not None and not (
    isinstance(num_frames, int)
    and not isinstance(num_frames, bool)
    and 0 < num_frames <= _MAX_FRAMES
  ):
    problems.append(
      f"{where}: 'num_frames' must be a positive integer (at most {_MAX_FRAMES}) or null, "
      f"got {num_frames!r}"
    )
  if duration is not None and not (_is_number(duration) and duration > 0):
    problems.append(f"{where}: 'duration' must be a positive number or null, got {duration!r}")
  return subset, fps, num_frames, duration


def _parse_instances(
  rec: dict,
  where: str,
  known: set[str],
  header_ok: bool,
  fps: Any,
  duration: Any,
  problems: list[str],
) -> list[Instance]:
  """Reads and checks a record's 'annotations' list into instances."""
  instances = []
  anns = rec.get("annotations", [])
  if not isinstance(anns, list):
    problems.append(f"{where}: 'annotations' must be a list")
    anns = []
  for i, ann in enumerate(anns):
    field = f"{where}: annotations[{i}]"
    if not isinstance(ann, dict):
      problems.append(f"{field} must be an object with 'label' and 'segment'")
      continue
    label, seg = ann.get("label"), ann.get("segment")
    if not isinstance(label, str) or label not in known:
      problems.append(f"{field}.label {label!r} is not one of the dataset's classes")
    if not (isinstance(seg, list) and len(seg) == 2 and all(_is_number(t) for t in seg)):
      problems.append(f"{field}.segment must be [t_start, t_end] in seconds, got {seg!r}")
      continue
    t0, t1 = float(seg[0]), float(seg[1])
    if t0 < 0 or t0 >= t1:
      problems.append(f"{field}.segment {seg} must satisfy 0 <= t_start < t_end")
      continue
    if (
      header_ok
      and duration is not None
      and fps is not None
      and t1 > duration + _TIME_TOLERANCE_FRAMES / fps
    ):
      problems.append(f"{field}.segment {seg} ends after the video's duration {duration:.3f} s")
      continue
    if isinstance(label, str) and label in known:
      instances.append(Instance(label, t0, t1))
  return instances


def _parse_ambiguous(rec: dict, where: str, problems: list[str]) -> list[tuple[float, float]]:
  """Reads and checks a record's 'ambiguous' list of [t0, t1] intervals."""
  ambiguous = []
  amb = rec.get("ambiguous", [])
  if not isinstance(amb, list):
    problems.append(f"{where}: 'ambiguous' must be a list of [t0, t1]")
    amb = []
  for i, seg in enumerate(amb):
    if not (
      isinstance(seg, list)
      and len(seg) == 2
      and all(_is_number(t) for t in seg)
      and seg[0] < seg[1]
    ):
      problems.append(f"{where}: ambiguous[{i}] must be [t0, t1] with t0 < t1, got {seg!r}")
      continue
    ambiguous.append((float(seg[0]), float(seg[1])))
  return ambiguous


def _unique_keys(path: pathlib.Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
  """object_pairs_hook: a repeated key (e.g. a video id listed twice) would silently drop an entry."""
  out = {}
  for key, value in pairs:
    if key in out:
      raise DatasetError(
        f"{path}: duplicate key {key!r} in one JSON object; expected unique keys "
        "(video ids, fields)"
      )
    out[key] = value
  return out


def read_annotations_json(path: str | os.PathLike) -> Any:
  """Reads a JSON file; malformed JSON is reported with its line and column."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise DatasetError(f"{path}: annotations file not found")
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f, object_pairs_hook=lambda pairs: _unique_keys(path, pairs))
  except json.JSONDecodeError as e:
    raise DatasetError(
      f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
    ) from None
  except UnicodeDecodeError as e:
    raise DatasetError(f"{path}: not UTF-8 text ({e})") from None
  except (ValueError, RecursionError) as e:  # Integers of thousands of digits; absurd nesting.
    raise DatasetError(f"{path}: invalid JSON ({type(e).__name__}: {str(e)[:200]})") from None


class Dataset:
  """A dataset folder in the project's format, validated on load."""

  def __init__(
    self, root: str | os.PathLike, version: str, classes: list[str], videos: dict[str, VideoInfo]
  ):
    self.root = pathlib.Path(root)
    self.version = version
    self.classes = classes
    self.videos = videos

  def __repr__(self) -> str:
    return f"Dataset({str(self.root)!r}, {len(self.videos)} videos, {len(self.classes)} classes)"

  def class_index(self, label: str) -> int:
    """1-based class id (0 is background), as the classification network numbers classes."""
    return self.classes.index(label) + 1

  def subset(self, name: str) -> list[VideoInfo]:
    """The videos of one subset, sorted by id."""
    if name not in SUBSETS:
      raise DatasetError(f"unknown subset {name!r}; expected one of {SUBSETS}")
    return [v for _, v in sorted(self.videos.items()) if v.subset == name]

  def media_path(self, video_id: str) -> pathlib.Path | None:
    """The video file or frame folder of ``video_id``, or None when neither exists."""
    return find_media(self.root, video_id)

  def open_frames(self, video_id: str) -> video_lib.VideoReader | video_lib.FrameFolderReader:
    """A frame reader for ``video_id``."""
    path = self.media_path(video_id)
    if path is None:
      raise DatasetError(
        f"{self.root}: video {video_id!r} has no file under videos/ nor folder under frames/"
      )
    info = self.videos.get(video_id)
    return video_lib.open_frames(path, fps=(info.fps if info and info.fps else 25.0))

  def masks(self, video_id: str) -> video_lib.MaskFolderReader | None:
    """The ground-truth mask folder of ``video_id``, or None when the dataset has none."""
    folder = self.root / "masks" / video_id
    return (
      video_lib.MaskFolderReader(folder, self.videos[video_id].num_frames)
      if folder.is_dir()
      else None
    )


def find_media(root: pathlib.Path, video_id: str) -> pathlib.Path | None:
  for ext in video_lib.VIDEO_EXTENSIONS:
    p = root / "videos" / f"{video_id}{ext}"
    if p.is_file():
      return p
  p = root / "frames" / video_id
  return p if p.is_dir() else None


def fill_from_media(root: pathlib.Path, info: VideoInfo) -> tuple[VideoInfo, list[str]]:
  """Opens the media of one video, fills null fields and reports disagreements."""
  where = f"video {info.video_id!r}"
  path = find_media(root, info.video_id)
  if path is None:
    return info, [
      f"{where}: no file videos/{info.video_id}.<mp4|avi|mkv|webm> nor folder frames/{info.video_id}/"
    ]
  try:
    reader = video_lib.open_frames(path, fps=video_lib.frame_rate(info.fps))
  except VideoError as e:
    return info, [f"{where}: {e}"]
  problems = []
  if info.num_frames is not None and info.num_frames != reader.num_frames:
    problems.append(
      f"{where}: 'num_frames' is {info.num_frames} but {path} has {reader.num_frames} frames"
    )
  if info.fps is not None and path.is_file() and abs(info.fps - reader.fps) > 0.01:
    problems.append(f"{where}: 'fps' is {info.fps} but {path} plays at {reader.fps:g} fps")
  fps = info.fps or reader.fps
  num_frames = info.num_frames or reader.num_frames
  duration = info.duration or num_frames / fps
  for inst in info.annotations:
    if inst.end > duration + _TIME_TOLERANCE_FRAMES / fps:
      problems.append(
        f"{where}: segment [{inst.start}, {inst.end}] of {inst.label!r} ends after the video ({duration:.3f} s)"
      )
  filled = dataclasses.replace(info, fps=fps, num_frames=num_frames, duration=duration)
  return filled, problems


def check_masks(
  root: pathlib.Path, info: VideoInfo, frame_size: tuple[int, int] | None
) -> list[str]:
  """Mask files must be numbered within the video and have the frame size (header-only reads)."""
  from PIL import Image

  folder = root / "masks" / info.video_id
  if not folder.is_dir():
    return []
  where = f"video {info.video_id!r}"
  try:
    reader = video_lib.MaskFolderReader(folder, info.num_frames)
  except VideoError as e:
    return [f"{where}: {e}"]
  problems = []
  for i in reader.indices:
    p = reader.file(i)
    try:
      with Image.open(p) as im:
        w, h = im.size
    except Exception as e:
      problems.append(f"{where}: mask {p} is unreadable ({type(e).__name__})")
      continue
    if frame_size is not None and (h, w) != tuple(frame_size):
      problems.append(
        f"{where}: mask {p.name} is {w}x{h} but the frames are {frame_size[1]}x{frame_size[0]}"
      )
      break
  return problems


def validate_dataset(root: str | os.PathLike, *, check_media: bool = True) -> list[str]:
  """Lists every problem of a dataset folder (empty list: valid)."""
  root = pathlib.Path(root)
  if not root.is_dir():
    return [f"{root}: dataset folder not found"]
  try:
    data = read_annotations_json(root / "annotations.json")
  except DatasetError as e:
    return [str(e)]
  _, _, videos, problems = parse_annotations(data, str(root / "annotations.json"))
  if not check_media:
    return problems
  # Entries rejected above still get their media looked for, so one run lists everything.
  database = data.get("database") if isinstance(data, dict) else None
  for vid in database if isinstance(database, dict) else {}:
    if vid not in videos and find_media(root, vid) is None:
      problems.append(
        f"video {vid!r}: no file videos/{vid}.<mp4|avi|mkv|webm> nor folder frames/{vid}/"
      )
  for info in videos.values():
    filled, media_problems = fill_from_media(root, info)
    problems.extend(media_problems)
    if not media_problems:
      path = find_media(root, info.video_id)
      reader = video_lib.open_frames(path, fps=filled.fps)
      problems.extend(check_masks(root, filled, (reader.height, reader.width)))
  return problems


def load_dataset(root: str | os.PathLike, *, check_media: bool = True) -> Dataset:
  """Loads and validates a dataset folder.

  Args:
    root: the dataset folder.
    check_media: open every video's header to fill null fps / frame counts and check that
      the media exist and agree with the annotations (masks are checked by the validator CLI).

  Raises:
    DatasetError: listing every problem found, each naming the video and the field.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise DatasetError(f"{root}: dataset folder not found")
  data = read_annotations_json(root / "annotations.json")
  version, classes, videos, problems = parse_annotations(data, str(root / "annotations.json"))
  if check_media:
    for vid, info in list(videos.items()):
      videos[vid], media_problems = fill_from_media(root, info)
      problems.extend(media_problems)
  if problems:
    shown = "\n  ".join(problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    raise DatasetError(
      f"{root}: invalid dataset ({len(problems)} problems; "
      f"run python -m segtube_jax.data.validate {root}):\n  {shown}{more}"
    )
  return Dataset(root, version, classes, videos)


def write_annotations(path: str | os.PathLike, data: dict) -> None:
  """Writes annotations.json atomically (temporary name, then rename)."""
  io_utils.write_json_atomic(path, data)
