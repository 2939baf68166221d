"""Reader for the official THUMOS14 temporal annotation folder.

The folder holds one ``<ClassName>_<suffix>.txt`` file per detection class (lines
``video_name t_start t_end``, seconds), ``Ambiguous_<suffix>.txt`` (intervals that the
official evaluator counts neither as positives nor as false positives) and
``detclasslist.txt`` (lines ``class_id ClassName``), where ``suffix`` is ``test`` or ``val``.

:func:`load_thumos14_annotations` turns such a folder into the project's dataset format
(ActivityNet convention)::

  {"version": "THUMOS14", "classes": [...], "database": {video_id: {
      "subset": "testing", "fps": null, "num_frames": null, "duration": null,
      "annotations": [{"label": "Name", "segment": [t0, t1]}, ...],
      "ambiguous": [[t0, t1], ...]}}}

Within a video, the instances of one class keep their file order: the official evaluator
matches ground truth in that order, so reordering them changes its scores.

Command line::

  python -m segtube_jax.data.thumos14 --annotations DIR --subset testing
      --out annotations.json [--videos DIR] [--class_list FILE]
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
import glob
import math
import os
import pathlib
import sys
from typing import Any

from segtube_jax import io_utils
from segtube_jax.errors import AnnotationError, ConfigError, DatasetError, SegtubeError

DATASET_VERSION = "THUMOS14"
AMBIGUOUS_CLASS = "Ambiguous"
CLASS_LIST_FILENAME = "detclasslist.txt"
# Dataset subset name -> suffix of the official annotation files.
SUBSET_SUFFIXES = {"testing": "test", "validation": "val"}

PathLike = str | os.PathLike


def read_class_list(path: PathLike) -> list[str]:
  """Reads ``detclasslist.txt`` (lines ``class_id ClassName``).

  Args:
    path: the class list file.

  Returns:
    Class names ordered by class id, so that ``names[class_id - 1]`` is the class of a
    detection file's ``class_id``.

  Raises:
    AnnotationError: the file is missing or a line is malformed, or the ids are not
      exactly 1..N, or a name repeats.
  """
  path = pathlib.Path(path)
  by_id: dict[int, str] = {}
  for lineno, fields in _read_fields(path):
    if len(fields) != 2:
      raise AnnotationError(
        f"{path}:{lineno}: expected 'class_id ClassName' (2 fields), got {len(fields)} fields: "
        f"{' '.join(fields)!r}"
      )
    try:
      class_id = int(fields[0])
    except ValueError:
      raise AnnotationError(
        f"{path}:{lineno}: expected an integer class_id, got {fields[0]!r}"
      ) from None
    name = fields[1]
    if class_id in by_id:
      raise AnnotationError(f"{path}:{lineno}: class_id {class_id} is listed twice")
    if name in by_id.values():
      raise AnnotationError(f"{path}:{lineno}: class name {name!r} is listed twice")
    if name == AMBIGUOUS_CLASS:
      raise AnnotationError(f"{path}:{lineno}: {AMBIGUOUS_CLASS!r} is reserved, not a class")
    by_id[class_id] = name
  if not by_id:
    raise AnnotationError(f"{path}: expected at least one 'class_id ClassName' line, found none")
  if sorted(by_id) != list(range(1, len(by_id) + 1)):
    raise AnnotationError(
      f"{path}: expected class ids 1..{len(by_id)} (detection files index classes by them), "
      f"got {sorted(by_id)}"
    )
  return [by_id[i] for i in range(1, len(by_id) + 1)]


def read_interval_file(path: PathLike) -> list[tuple[str, float, float]]:
  """Reads one per-class (or Ambiguous) annotation file.

  Args:
    path: a ``<ClassName>_<suffix>.txt`` file with lines ``video_name t_start t_end``.

  Returns:
    ``(video_name, t_start, t_end)`` tuples in file order; blank lines are skipped.

  Raises:
    AnnotationError: a line has the wrong field count, a non-numeric or non-finite time,
      or ``t_start >= t_end``.
  """
  path = pathlib.Path(path)
  rows = []
  for lineno, fields in _read_fields(path):
    if len(fields) != 3:
      raise AnnotationError(
        f"{path}:{lineno}: expected 'video_name t_start t_end' (3 fields), got "
        f"{len(fields)} fields: {' '.join(fields)!r}"
      )
    video, start, end = fields
    try:
      t0, t1 = float(start), float(end)
    except ValueError:
      raise AnnotationError(
        f"{path}:{lineno}: expected numeric t_start and t_end in seconds, got {start!r} {end!r}"
      ) from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
      raise AnnotationError(f"{path}:{lineno}: expected finite times, got {start!r} {end!r}")
    if t0 >= t1:
      raise AnnotationError(f"{path}:{lineno}: expected t_start < t_end, got {t0:g} >= {t1:g}")
    if t0 < 0:  # The dataset format (and every video) starts at 0 s.
      raise AnnotationError(f"{path}:{lineno}: expected t_start >= 0 seconds, got {t0:g}")
    rows.append((video, t0, t1))
  return rows


def load_thumos14_annotations(
  annotation_dir: PathLike,
  subset: str = "testing",
  *,
  class_list: PathLike | None = None,
  video_dir: PathLike | None = None,
) -> dict[str, Any]:
  """Parses a THUMOS14 annotation folder into the project's dataset format.

  Args:
    annotation_dir: folder with ``<ClassName>_<suffix>.txt``, ``Ambiguous_<suffix>.txt``
      and (unless ``class_list`` is given) ``detclasslist.txt``.
    subset: ``"testing"`` (``*_test.txt``) or ``"validation"`` (``*_val.txt``).
    class_list: the ``detclasslist.txt`` to use; defaults to the one in
      ``annotation_dir`` (the official validation folder ships without one).
    video_dir: when given, fill ``fps``, ``num_frames`` and ``duration`` of every video
      from ``video_dir/<video_id>.*``; otherwise they stay ``None``.

  Returns:
    The dataset dict. Videos are sorted by id; every video that appears in any class or
    Ambiguous file is present (some carry only Ambiguous intervals). Within a video,
    annotations follow class-list order and, per class, file order.

  Raises:
    AnnotationError: a file is missing or malformed, or a ``*_<suffix>.txt`` file names a
      class that the class list does not have.
    ConfigError: ``subset`` is unknown.
    DatasetError: a video file is missing or unusable.
  """
  if subset not in SUBSET_SUFFIXES:
    raise ConfigError(
      f"unknown THUMOS14 subset {subset!r}; expected one of {sorted(SUBSET_SUFFIXES)}"
    )
  suffix = SUBSET_SUFFIXES[subset]
  annotation_dir = pathlib.Path(annotation_dir)
  if not annotation_dir.is_dir():
    raise AnnotationError(f"{annotation_dir}: expected a THUMOS14 annotation folder, not found")
  class_list_path = pathlib.Path(class_list) if class_list else annotation_dir / CLASS_LIST_FILENAME
  if not class_list_path.is_file():
    raise AnnotationError(
      f"{class_list_path}: class list not found; pass the test folder's {CLASS_LIST_FILENAME} "
      "explicitly (class_list / --class_list) for folders that ship without one"
    )
  classes = read_class_list(class_list_path)

  _check_class_files(annotation_dir, suffix, classes, class_list_path)
  database = _read_interval_files(annotation_dir, suffix, classes, subset)

  dataset = {
    "version": DATASET_VERSION,
    "classes": list(classes),
    "database": {video: database[video] for video in sorted(database)},
  }
  if video_dir is not None:
    add_video_metadata(dataset, video_dir)
  return dataset


def _check_class_files(
  annotation_dir: pathlib.Path, suffix: str, classes: list[str], class_list_path: pathlib.Path
) -> None:
  """Rejects ``*_<suffix>.txt`` files whose class is not in the class list."""
  # A class file the class list does not know would be silently dropped otherwise.
  known = set(classes) | {AMBIGUOUS_CLASS}
  for path in sorted(annotation_dir.glob(f"*_{suffix}.txt")):
    name = path.name[: -len(f"_{suffix}.txt")]
    if name not in known:
      raise AnnotationError(
        f"{path}: class {name!r} is not listed in {class_list_path}; expected one of {classes}"
      )


def _read_interval_files(
  annotation_dir: pathlib.Path, suffix: str, classes: list[str], subset: str
) -> dict[str, dict[str, Any]]:
  """Reads every class file and the Ambiguous file into per-video database entries."""

  def entry() -> dict[str, Any]:
    return {
      "subset": subset,
      "fps": None,
      "num_frames": None,
      "duration": None,
      "annotations": [],
      "ambiguous": [],
    }

  database: dict[str, dict[str, Any]] = collections.defaultdict(entry)
  for name in classes + [AMBIGUOUS_CLASS]:
    path = annotation_dir / f"{name}_{suffix}.txt"
    if not path.is_file():
      raise AnnotationError(f"{path}: annotation file for class {name!r} not found")
    for video, t0, t1 in read_interval_file(path):
      if name == AMBIGUOUS_CLASS:
        database[video]["ambiguous"].append([t0, t1])
      else:
        database[video]["annotations"].append({"label": name, "segment": [t0, t1]})
  return database


def add_video_metadata(dataset: dict[str, Any], video_dir: PathLike) -> None:
  """Fills ``fps``, ``num_frames`` and ``duration`` of every video in place.

  Args:
    dataset: a dataset dict (see module docstring).
    video_dir: folder holding one ``<video_id>.<ext>`` file per video.

  Raises:
    DatasetError: a video file is missing, ambiguous, or reports a non-positive fps.
  """
  # Imported here: video decoding pulls in heavy dependencies that parsing does not need.
  from segtube_jax.data import video as video_lib  # pylint: disable=g-import-not-at-top

  video_dir = pathlib.Path(video_dir)
  if not video_dir.is_dir():
    raise DatasetError(f"{video_dir}: expected a folder of videos, not found")
  for video_id, info in dataset["database"].items():
    path = _find_video(video_dir, video_id)
    reader = video_lib.open_frames(path)
    try:
      fps, num_frames = float(reader.fps), int(reader.num_frames)
    finally:
      close = getattr(reader, "close", None)
      if callable(close):
        close()
    if not fps > 0:
      raise DatasetError(f"{path}: video {video_id!r} reports fps {fps}; expected > 0")
    info["fps"] = fps
    info["num_frames"] = num_frames
    info["duration"] = num_frames / fps


def write_dataset_json(dataset: dict[str, Any], path: PathLike) -> None:
  """Writes a dataset dict as JSON atomically (temp file in the same folder + rename)."""
  io_utils.write_json_atomic(path, dataset)


def _find_video(video_dir: pathlib.Path, video_id: str) -> pathlib.Path:
  """The single file ``video_dir/<video_id>.<ext>``."""
  matches = sorted(p for p in video_dir.glob(glob.escape(video_id) + ".*") if p.is_file())
  if not matches:
    raise DatasetError(
      f"{video_dir}: no video file for {video_id!r}; expected {video_id}.mp4 (any extension)"
    )
  if len(matches) > 1:
    raise DatasetError(
      f"{video_dir}: several files for {video_id!r}: "
      f"{[p.name for p in matches]}; expected exactly one"
    )
  return matches[0]


def _read_fields(path: pathlib.Path) -> list[tuple[int, list[str]]]:
  """(1-based line number, whitespace-split fields) of every non-blank line."""
  try:
    text = path.read_text(encoding="utf-8")
  except FileNotFoundError:
    raise AnnotationError(f"{path}: file not found") from None
  except UnicodeDecodeError as e:
    raise AnnotationError(f"{path}: expected a text file, cannot decode it ({e})") from None
  except OSError as e:  # A folder, no permission, ...
    raise AnnotationError(f"{path}: expected a readable text file ({e.strerror})") from None
  return [(i, line.split()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _main(argv: Sequence[str]) -> None:
  """CLI entry point: converts an annotation folder into annotations.json."""
  from absl import (
    app,  # pylint: disable=g-import-not-at-top
    flags,  # pylint: disable=g-import-not-at-top
  )

  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  flag_values = flags.FLAGS
  try:
    dataset = load_thumos14_annotations(
      flag_values.annotations,
      flag_values.subset,
      class_list=flag_values.class_list,
      video_dir=flag_values.videos,
    )
    write_dataset_json(dataset, flag_values.out)
  except SegtubeError as e:
    # Bad input is the user's to fix: a one-line message beats a traceback.
    sys.exit(f"error: {e}")
  database = dataset["database"]
  num_instances = sum(len(v["annotations"]) for v in database.values())
  num_ambiguous = sum(len(v["ambiguous"]) for v in database.values())
  print(
    f"wrote {flag_values.out}: {len(database)} videos, {len(dataset['classes'])} classes, "
    f"{num_instances} instances, {num_ambiguous} ambiguous intervals"
  )


def cli() -> None:
  """Defines the CLI flags and runs :func:`_main` (flags stay undefined on plain import)."""
  from absl import (
    app,  # pylint: disable=g-import-not-at-top
    flags,  # pylint: disable=g-import-not-at-top
  )

  flags.DEFINE_string("annotations", None, "THUMOS14 annotation folder (e.g. annotation_test/).")
  flags.DEFINE_enum("subset", "testing", sorted(SUBSET_SUFFIXES), "Which annotation files to read.")
  flags.DEFINE_string("out", None, "Output annotations.json path (written atomically).")
  flags.DEFINE_string("videos", None, "Optional folder of videos to read fps/num_frames from.")
  flags.DEFINE_string(
    "class_list", None, f"{CLASS_LIST_FILENAME} to use (default: the one in --annotations)."
  )
  flags.mark_flags_as_required(["annotations", "out"])
  app.run(_main)


if __name__ == "__main__":
  cli()
