"""Generates a synthetic untrimmed action dataset (videos, per-frame masks) in the project's format.

Each video shows one textured actor on a textured background. The actor idles (slow random drift,
slow rotation, now and then a straight "dash" that belongs to no class) and, during 1 or 2 action
instances, performs a class motion: the classes differ ONLY in how the actor moves. Appearance
(colour, texture, shape, size, start position) is drawn from a random stream that never sees the
class, so a detector must look at motion. Distractor shapes drift slowly, the camera jitters and
pixel noise is added. Masks are the actor's exact rendered support, written for action frames only.

Every video has its own random streams seeded by (seed, video index, stream): the output is
byte-identical for the same arguments, whatever the number of worker processes. Usage::

  python -m segtube_jax.data.synthetic --out /tmp/syn --num_videos 200 --seed 0 [--actor_size=0.18,0.24]

Other flags: the fields of synthetic.Options; pairs and triples are comma-separated.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import pathlib
import shutil
import sys
import time
from typing import Any

from absl import flags
import numpy as np
from PIL import Image

from segtube_jax import cli
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import video as video_lib
from segtube_jax.data.synthetic_render import (
  FRAME_FORMATS,
  MOTIONS,
  Options,
  VideoPlan,
  actor_trajectory,
  assign_subsets,
  plan_dataset,
  plan_video,
  render_video,
  sample_appearance,
)
from segtube_jax.errors import ConfigError, DatasetError

# The generator's public API; plans and rendering live in synthetic_render.
__all__ = [
  "DEMO_OPTIONS",
  "FRAME_FORMATS",
  "MOTIONS",
  "VERSION",
  "Options",
  "VideoPlan",
  "actor_trajectory",
  "assign_subsets",
  "format_summary",
  "generate_dataset",
  "main",
  "plan_dataset",
  "plan_video",
  "prepare_demo_dataset",
  "render_video",
  "sample_appearance",
  "summarize",
]
VERSION = "segtube-synthetic-1"


def _write_one(out_dir: str, plan: VideoPlan, opts: Options) -> dict[str, Any]:
  """Renders and writes one video's media and masks; returns its annotations.json record."""
  root = pathlib.Path(out_dir)
  frames, masks = render_video(plan, opts)
  if opts.frame_format == "mp4":
    video_lib.write_video(root / "videos" / f"{plan.video_id}.mp4", frames, opts.fps, crf=opts.crf)
  else:
    folder = root / "frames" / plan.video_id
    folder.mkdir(parents=True, exist_ok=True)
    quality = {"quality": 95} if opts.frame_format == "jpg" else {}
    for f, frame in enumerate(frames):
      Image.fromarray(frame).save(folder / f"{f:06d}.{opts.frame_format}", **quality)
  folder = root / "masks" / plan.video_id
  folder.mkdir(parents=True, exist_ok=True)
  for _, fs, fe in plan.instances:
    for f in range(fs, fe):
      Image.fromarray(masks[f].astype(np.uint8) * 255).save(folder / f"{f:06d}.png")
  classes = MOTIONS[: opts.num_classes]
  segments = [
    {"label": classes[c], "segment": [fs / opts.fps, fe / opts.fps]} for c, fs, fe in plan.instances
  ]
  return {
    "subset": plan.subset,
    "fps": opts.fps,
    "num_frames": plan.num_frames,
    "duration": plan.num_frames / opts.fps,
    "annotations": segments,
    "ambiguous": [],
  }


def generate_dataset(
  out_dir: str | pathlib.Path,
  num_videos: int,
  seed: int = 0,
  *,
  overwrite: bool = False,
  **options: Any,
) -> dict[str, Any]:
  """Writes a synthetic dataset to ``out_dir`` and returns its summary (see :func:`summarize`).

  Args:
    out_dir: the dataset folder to create; must be absent or empty unless ``overwrite``.
    num_videos: how many videos (>= 1).
    seed: the random seed; the same arguments give byte-identical files.
    overwrite: replace the dataset parts (annotations.json, videos/, frames/, masks/) of ``out_dir``.
    **options: fields of :class:`Options`.

  Raises:
    ConfigError: an option is unknown or impossible.
    DatasetError: ``out_dir`` is not empty and ``overwrite`` is False.
  """
  known = [f.name for f in dataclasses.fields(Options)]
  if set(options) - set(known):
    raise ConfigError(
      f"unknown synthetic dataset options {sorted(set(options) - set(known))}; known: {known}"
    )
  opts = Options(**options)
  opts.validate()
  if not isinstance(num_videos, int) or num_videos < 1:
    raise ConfigError(f"num_videos must be an integer >= 1, got {num_videos!r}")
  root = pathlib.Path(out_dir)
  if root.exists() and any(root.iterdir()):
    if not overwrite:
      raise DatasetError(
        f"{root}: output folder is not empty (pass overwrite=True / --overwrite to replace it)"
      )
    for name in ("videos", "frames", "masks"):
      shutil.rmtree(root / name, ignore_errors=True)
    (root / "annotations.json").unlink(missing_ok=True)
  (root / ("videos" if opts.frame_format == "mp4" else "frames")).mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  plans = plan_dataset(num_videos, seed, opts)
  if opts.workers > 1 and len(plans) > 1:
    # Spawned (not forked) workers: the caller may have started threads (JAX does).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
      min(opts.workers, len(plans)), mp_context=ctx
    ) as pool:
      records = list(
        pool.map(_write_one, [str(root)] * len(plans), plans, [opts] * len(plans), chunksize=4)
      )
  else:
    records = [_write_one(str(root), p, opts) for p in plans]
  generator = {
    k: list(v) if isinstance(v, tuple) else v
    for k, v in dataclasses.asdict(opts).items()
    if k not in ("workers",)
  }
  dataset_lib.write_annotations(
    root / "annotations.json",
    {
      "version": VERSION,
      "classes": list(MOTIONS[: opts.num_classes]),
      "database": {p.video_id: r for p, r in zip(plans, records)},
      "generator": dict(generator, seed=seed, num_videos=num_videos),
    },
  )
  summary = summarize(root)
  summary["seconds"] = round(time.perf_counter() - start, 2)
  return summary


def summarize(root: str | pathlib.Path) -> dict[str, Any]:
  """Counts of a dataset folder: videos per subset, instances per class, frames and mask frames."""
  data = dataset_lib.read_annotations_json(pathlib.Path(root) / "annotations.json")
  _, classes, videos, problems = dataset_lib.parse_annotations(
    data, str(pathlib.Path(root) / "annotations.json")
  )
  if problems:
    raise DatasetError("\n  ".join([f"{root}: invalid annotations:"] + problems[:10]))
  per_subset = {s: sum(v.subset == s for v in videos.values()) for s in dataset_lib.SUBSETS}
  per_class = {c: 0 for c in classes}
  action_frames = 0
  for v in videos.values():
    for inst in v.annotations:
      per_class[inst.label] += 1
      if v.fps:
        fs, fe = inst.frame_span(v.fps)
        action_frames += fe - fs
  mask_dir = pathlib.Path(root) / "masks"
  mask_frames = (
    sum(1 for vid in videos for _ in (mask_dir / vid).glob("*.png")) if mask_dir.is_dir() else 0
  )
  return {
    "root": str(root),
    "num_videos": len(videos),
    "videos_per_subset": per_subset,
    "instances_per_class": per_class,
    "num_frames": sum(v.num_frames or 0 for v in videos.values()),
    "action_frames": action_frames,
    "mask_frames": mask_frames,
  }


def format_summary(summary: dict[str, Any]) -> str:
  """A few human-readable lines for a :func:`summarize` dict."""
  lines = [
    f"dataset {summary['root']}: {summary['num_videos']} videos, {summary['num_frames']} frames "
    f"({summary['action_frames']} in actions, {summary['mask_frames']} with masks)",
    "  videos per subset: "
    + ", ".join(f"{k} {v}" for k, v in summary["videos_per_subset"].items()),
    "  instances per class: "
    + ", ".join(f"{k} {v}" for k, v in summary["instances_per_class"].items()),
  ]
  if "seconds" in summary:
    lines.append(f"  generated in {summary['seconds']:.1f} s")
  return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
  """Defines the command's flags on ``fv``: the dataset's, then one per :class:`Options` field."""
  defaults = Options()
  flags.DEFINE_string("out", None, "Dataset folder to write.", flag_values=fv)
  flags.DEFINE_integer("num_videos", None, "Videos to generate.", flag_values=fv)
  flags.DEFINE_integer(
    "seed", 0, "Random seed; the same flags give byte-identical files.", flag_values=fv
  )
  flags.DEFINE_bool("overwrite", False, "Replace an existing dataset in --out.", flag_values=fv)
  flags.mark_flags_as_required(["out", "num_videos"], flag_values=fv)
  cli.define_floats(
    "split", defaults.split, "TRAIN,VAL,TEST", "Fractions of the videos per subset.", fv
  )
  cli.define_floats(
    "actor_size",
    defaults.actor_size,
    "LO,HI",
    "Range of the actor's semi-major axis as a fraction of the frame size.",
    fv,
  )
  flags.DEFINE_enum(
    "frame_format",
    defaults.frame_format,
    FRAME_FORMATS,
    "Videos (mp4) or frame folders.",
    flag_values=fv,
  )
  define = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
  for f in dataclasses.fields(Options):
    if f.name not in ("split", "frame_format", "actor_size"):
      value = getattr(defaults, f.name)
      define[type(value)](f.name, value, f"Options.{f.name}.", flag_values=fv)


def _generate(fv: flags.FlagValues) -> int:
  options = {f.name: fv[f.name].value for f in dataclasses.fields(Options)}
  print(
    format_summary(
      generate_dataset(fv.out, fv.num_videos, fv.seed, overwrite=fv.overwrite, **options)
    )
  )
  return 0


# The demo dataset: bigger actors than the generator's default, so that the motions that tell
# the classes apart survive the networks' 32x32 input; shorter videos keep packing and
# evaluation within the demo's time.
DEMO_OPTIONS = {
  "actor_size": (0.18, 0.24),
  "min_frames": 120,
  "max_frames": 300,
  "split": (0.7, 0.15, 0.15),
}


def prepare_demo_dataset(
  root: str | pathlib.Path, num_videos: int, seed: int
) -> tuple[dict, float | None]:
  """Generates the dataset unless ``root`` already holds one made with the same arguments."""
  root = pathlib.Path(root)
  ann = root / "annotations.json"
  if ann.is_file():
    made = dataset_lib.read_annotations_json(ann).get("generator", {})
    same = all(
      made.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in DEMO_OPTIONS.items()
    )
    if made.get("num_videos") == num_videos and made.get("seed") == seed and same:
      return summarize(root), None
  t0 = time.perf_counter()
  generate_dataset(root, num_videos, seed, overwrite=True, **DEMO_OPTIONS)
  return summarize(root), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit status (0 ok, 2 bad input)."""
  return cli.run_command(
    __doc__, define_flags, _generate, argv, "python -m segtube_jax.data.synthetic"
  )


if __name__ == "__main__":
  sys.exit(main())
