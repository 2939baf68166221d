"""Merges dataset folders by class name, turning trimmed videos into whole-video instances.

The paper trains on a mix of untrimmed and trimmed videos of the same action classes (ActSeg,
UCF101, THUMOS14). Each source is first put in the project's format (one folder each), then
:func:`merge_datasets` writes one folder whose media are symlinks to (or copies of) the sources'::

  mix = merge_datasets(
      [MixSource("actseg"),
       MixSource("ucf101", trimmed_label=ucf101_label, rename={"BasketballDunk": "Basketball Dunk"}),
       MixSource("thumos14_val", subsets={"validation": "training"})],
      "mixed", class_names=["Basketball Dunk", ...])

A trimmed video has no annotations in its source: it becomes one instance spanning the whole
video, labelled by its source's ``trimmed_label`` (a class name, or a function of the video id).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
from typing import Callable, Collection, Mapping, Sequence

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.errors import DatasetError

_UCF101_ID = re.compile(r"v_([A-Za-z0-9]+)_g\d+_c\d+")
_OUTPUT_ENTRIES = ("annotations.json", "videos", "frames", "masks")


@dataclasses.dataclass(frozen=True)
class MixSource:
  """One dataset folder to merge and how to take its videos.

  Attributes:
    root: the dataset folder (project format).
    trimmed_label: the class of the source's videos that have no annotations: a class name, or a
      function of the video id returning one (None: leave that video as it is). None: no video
      of the source is treated as trimmed.
    rename: source class name -> class name in the mix (applied to trimmed labels too).
    subsets: source subset -> subset in the mix (e.g. {"validation": "training"}).
    video_ids: keep only these videos of the source (None: all).
    prefix: prepended to the source's video ids in the mix (to avoid id collisions).
  """

  root: str | os.PathLike
  trimmed_label: str | Callable[[str], str | None] | None = None
  rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
  subsets: Mapping[str, str] = dataclasses.field(default_factory=dict)
  video_ids: Collection[str] | None = None
  prefix: str = ""


def ucf101_label(video_id: str) -> str | None:
  """The class of a UCF101 video id ``v_<Class>_g<group>_c<clip>`` (None for other ids)."""
  m = _UCF101_ID.fullmatch(video_id)
  return m.group(1) if m else None


def as_trimmed(info: dataset_lib.VideoInfo, label: str) -> dataset_lib.VideoInfo:
  """``info`` with one ``label`` instance spanning the whole video when it has no annotations.

  The video's fps and frame count must be known (``load_dataset`` fills them from the media).
  """
  if info.annotations:
    return info
  # num_frames / fps covers exactly the frames; a declared duration may be rounded.
  duration = info.num_frames / info.fps if info.num_frames and info.fps else info.duration
  if not duration:
    raise DatasetError(
      f"video {info.video_id!r}: duration unknown, cannot span the whole video "
      f"(load the dataset with check_media=True to read it from the media)"
    )
  return dataclasses.replace(info, annotations=(dataset_lib.Instance(label, 0.0, float(duration)),))


def _place_media(src: pathlib.Path, dst: pathlib.Path, link: bool) -> None:
  dst.parent.mkdir(parents=True, exist_ok=True)
  if link:
    os.symlink(src.resolve(), dst, target_is_directory=src.is_dir())
  elif src.is_dir():
    shutil.copytree(src, dst)
  else:
    shutil.copy2(src, dst)


def _clear_output(out_root: pathlib.Path, overwrite: bool) -> None:
  if out_root.exists() and not out_root.is_dir():
    raise DatasetError(f"{out_root}: output exists and is not a folder")
  present = [name for name in _OUTPUT_ENTRIES if os.path.lexists(out_root / name)]
  if present and not overwrite:
    raise DatasetError(f"{out_root}: already holds {present}; pass overwrite=True to replace them")
  for name in present:
    p = out_root / name
    if p.is_dir() and not p.is_symlink():
      shutil.rmtree(p)
    else:
      p.unlink()


def merge_datasets(
  roots: Sequence[str | os.PathLike | MixSource],
  out_root: str | os.PathLike,
  class_names: Sequence[str] | None = None,
  link: bool = True,
  *,
  keep_empty: bool = False,
  overwrite: bool = False,
  version: str = "mixed",
) -> dataset_lib.Dataset:
  """Writes one dataset folder holding the videos of several, matched by class name.

  Args:
    roots: dataset folders (or :class:`MixSource` for trimmed sources, renames, subset changes).
    out_root: the folder to write (annotations.json plus videos/, frames/ and masks/ entries).
    class_names: the mix's classes, in this order; instances of other classes are dropped.
      None: every class of the sources, in order of first appearance.
    link: symlink the media (True) or copy them.
    keep_empty: keep videos left without instances (else they are dropped).
    overwrite: replace an existing annotations.json / media entries in ``out_root``.
    version: the mix's ``version`` string.

  Returns:
    The merged dataset, loaded (and so validated) from ``out_root``.

  Raises:
    DatasetError: a source is invalid, a requested class is in no source, two
      sources share a video id (use ``MixSource.prefix``), or ``out_root`` is not empty.
  """
  sources = [r if isinstance(r, MixSource) else MixSource(r) for r in roots]
  if not sources:
    raise DatasetError("merge_datasets needs at least one dataset folder")
  loaded = [dataset_lib.load_dataset(s.root) for s in sources]
  out_root = pathlib.Path(out_root)
  classes: list[str] = list(class_names) if class_names is not None else []
  if len(set(classes)) != len(classes):
    raise DatasetError(f"class_names has duplicates: {classes}")
  taken, known = _collect_videos(sources, loaded, classes, class_names, keep_empty)
  missing = [c for c in classes if c not in known]
  if missing:
    raise DatasetError(
      f"class_names {missing} are classes of none of {[str(s.root) for s in sources]} "
      f"(check the spelling or MixSource.rename)"
    )
  if not taken:
    raise DatasetError(
      f"no video of {[str(s.root) for s in sources]} has an instance of the classes {classes}"
    )

  _write_mix(out_root, taken, classes, link, overwrite=overwrite, version=version)
  return dataset_lib.load_dataset(out_root)


_Taken = dict[str, tuple[MixSource, dataset_lib.Dataset, dataset_lib.VideoInfo]]


def _collect_videos(
  sources: list[MixSource],
  loaded: list[dataset_lib.Dataset],
  classes: list[str],
  class_names: Sequence[str] | None,
  keep_empty: bool,
) -> tuple[_Taken, set[str]]:
  """Picks the sources' videos for the mix; returns (taken, known); may extend ``classes``."""
  taken: _Taken = {}
  known: set[str] = set()  # Every class name the sources offer, to catch misspelt class_names.
  for src, ds in zip(sources, loaded):
    known.update(src.rename.get(c, c) for c in ds.classes)
    if class_names is None:
      classes.extend(c for c in (src.rename.get(c, c) for c in ds.classes) if c not in classes)
    for vid, info in sorted(ds.videos.items()):
      if src.video_ids is not None and vid not in src.video_ids:
        continue
      if src.trimmed_label is not None and not info.annotations:
        label = src.trimmed_label(vid) if callable(src.trimmed_label) else src.trimmed_label
        info = as_trimmed(info, label) if label else info
      instances = tuple(
        dataclasses.replace(inst, label=src.rename.get(inst.label, inst.label))
        for inst in info.annotations
      )
      known.update(i.label for i in instances)
      if class_names is None:
        classes.extend(i.label for i in instances if i.label not in classes)
      else:
        instances = tuple(i for i in instances if i.label in classes)
      if not instances and not keep_empty:
        continue
      new_id = src.prefix + vid
      if new_id in taken:
        raise DatasetError(
          f"video id {new_id!r} is in both {taken[new_id][1].root} and {ds.root}; "
          f"give one source a MixSource.prefix"
        )
      subset = src.subsets.get(info.subset, info.subset)
      if subset not in dataset_lib.SUBSETS:
        raise DatasetError(
          f"{ds.root}: subset mapping sends {info.subset!r} to {subset!r}, "
          f"expected one of {dataset_lib.SUBSETS}"
        )
      taken[new_id] = (
        src,
        ds,
        dataclasses.replace(info, video_id=new_id, subset=subset, annotations=instances),
      )
  return taken, known


def _write_mix(
  out_root: pathlib.Path,
  taken: _Taken,
  classes: list[str],
  link: bool,
  *,
  overwrite: bool,
  version: str,
) -> None:
  """Places the taken videos' media in ``out_root`` and writes its annotations.json."""
  out_root.mkdir(parents=True, exist_ok=True)
  _clear_output(out_root, overwrite)
  database = {}
  for new_id, (src, ds, info) in sorted(taken.items()):
    old_id = new_id[len(src.prefix) :]
    media = ds.media_path(old_id)
    if media.is_dir():
      _place_media(media, out_root / "frames" / new_id, link)
    else:
      _place_media(media, out_root / "videos" / f"{new_id}{media.suffix.lower()}", link)
    masks = ds.root / "masks" / old_id
    if masks.is_dir():
      _place_media(masks, out_root / "masks" / new_id, link)
    database[new_id] = {
      "subset": info.subset,
      "fps": info.fps,
      "num_frames": info.num_frames,
      "duration": info.duration,
      "annotations": [{"label": i.label, "segment": [i.start, i.end]} for i in info.annotations],
      "ambiguous": [list(seg) for seg in info.ambiguous],
    }
  dataset_lib.write_annotations(
    out_root / "annotations.json", {"version": version, "classes": classes, "database": database}
  )
