"""Evaluates the unsupervised segmentation on DAVIS-style folders: J, F and speed per sequence.

Layout: ``ROOT/<seq>/frames/%05d.jpg`` (RGB) and ``ROOT/<seq>/masks/%05d.png`` (0 / 255, one per
frame, the same stems; a mask may be empty). Every sequence is segmented whole, without any mask
given (:func:`segtube_jax.spatial.segment_video`), in a process pool, and scored with the DAVIS
2016 definitions (:func:`segtube_jax.evaluation.masks.evaluate_video`: first and last frame left
out). The layout of all sequences is checked before any work starts.

Usage::

  python -m segtube_jax.evaluation.davis --root ../shared/data/davis2016 --out DIR \\
      [--workers N] [--sequences a,b] [--set key=value ...] [--worst K] [--save_masks] [--stages]
      [--frame_step N] [--height H] [--transform NAME]

Prints a table (sequence, frames, J, F, frames/s; with --stages also the J of B_o and of the
superpixel labelling after the graph cuts, to see which step gains or loses what) and the
summary; writes ``DIR/results.json``,
``DIR/table.md``, ``DIR/sheets/<seq>.png`` (the K worst frames by J: predicted mask in green,
ground-truth outline in red) and, with --save_masks, ``DIR/masks/<seq>/<stem>.png``.
``--frame_step N`` keeps every Nth frame (and its mask) of each sequence: the same videos at
1/N of their frame rate, to see how the stage holds when the actor moves N times as far between
frames. ``--height H`` scales every frame and mask down to H rows first (area averaging; a mask
pixel is foreground where more than half of its area was): the videos as a lower-resolution
source would give them, such as THUMOS14's 320x180. ``--transform NAME`` applies a nuisance
transform to frames and masks alike (mirror, reverse, another framing, an added camera pan or
shake, sensor noise, an exposure drift, motion blur, JPEG compression;
:mod:`segtube_jax.evaluation.video_transforms`): new test cases from the
same sequences, to tell a general gain from one that fits them.
"""

from __future__ import annotations

from collections.abc import Sequence
import concurrent.futures
import multiprocessing
import os
import pathlib
import sys
import time
from typing import Any

from absl import flags
import ml_collections
import numpy as np
import tqdm

from segtube_jax import cli, io_utils, schema
from segtube_jax.data import contact_sheet
from segtube_jax.errors import ConfigError
from segtube_jax.evaluation import masks as metrics
from segtube_jax.evaluation import video_transforms
from segtube_jax.evaluation.davis_layout import check_layout, image_size, load_sequence
from segtube_jax.spatial import segment_video, segment_video_stages

# With --stages: results.json key of the mean J of each step before the final masks -> its column.
STAGE_COLUMNS = {"j_initial_mean": "J B_o", "j_cut_mean": "J cut"}
TILE_SIZE = 256
RESULTS_FILE, TABLE_FILE = "results.json", "table.md"


def evaluate_sequence(
  name: str,
  frame_files: Sequence[pathlib.Path],
  mask_files: Sequence[pathlib.Path],
  out_dir: str | os.PathLike,
  config: ml_collections.ConfigDict,
  worst: int = 6,
  save_masks: bool = False,
  stages: bool = False,
  height: int = 0,
  transform: str = "none",
) -> dict[str, Any]:
  """Segments and scores one sequence; writes its sheet (and masks). Runs in a pool worker.

  ``height`` > 0 scales the frames and the ground truth down to that many rows first; then
  ``transform`` (:mod:`segtube_jax.evaluation.video_transforms`) is applied to both. Frame
  indices in the result (scored and worst frames) are those of the transformed video.

  Returns:
    ``{"sequence", "frames", "seconds", "fps", "j_mean", "f_mean", "scored_frames", "j", "f",
    "worst_frames", "sheet"}``; ``seconds`` covers reading the frames and segmenting them. With
    ``stages``, also ``"j_initial_mean"`` and ``"j_cut_mean"``: the mean J of B_o and of the
    superpixel labelling after the cuts (see :func:`segment_video_stages`), on the same frames.
  """
  frames, gt, seconds = load_sequence(name, frame_files, mask_files, height, transform)
  start = time.perf_counter()
  if stages:
    steps = segment_video_stages(frames, config=config)
    pred = steps["final"]
  else:
    pred = segment_video(frames, config=config)
  seconds += time.perf_counter() - start
  scores = metrics.evaluate_video(pred, gt)
  stage_j = {}
  if stages:
    for step in ("initial", "cut"):
      j = metrics.region_similarity(steps[step][scores.frames], gt[scores.frames])
      stage_j[f"j_{step}_mean"] = float(np.mean(j)) if j.size else float("nan")
  order = np.argsort(scores.j, kind="stable")[: max(worst, 0)]
  worst_frames = [int(scores.frames[k]) for k in order]
  out = pathlib.Path(out_dir)
  sheet = None
  if worst_frames:
    image = contact_sheet.render_scored_sheet(
      f"{name}: {len(worst_frames)} worst frames by J (mean J {scores.j_mean:.3f}); "
      "green: predicted, red: ground truth",
      frames,
      pred,
      gt,
      worst_frames,
      [float(scores.j[k]) for k in order],
      tile_size=TILE_SIZE,
    )
    sheet = f"sheets/{name}.png"
    io_utils.write_png_atomic(out / sheet, np.asarray(image), what="contact sheet")
  if save_masks:  # Each mask under its source frame's name (the transform's geometry).
    sources = video_transforms.source_frames(transform, len(frame_files))
    for p, mask in zip([frame_files[k] for k in sources], pred):
      io_utils.write_png_atomic(
        out / "masks" / name / f"{p.stem}.png", mask.astype(np.uint8) * 255, what="mask"
      )
  return {
    "sequence": name,
    "frames": len(frame_files),
    "seconds": seconds,
    "fps": len(frame_files) / seconds,
    "j_mean": scores.j_mean,
    "f_mean": scores.f_mean,
    "scored_frames": [int(t) for t in scores.frames],
    "j": [float(v) for v in scores.j],
    "f": [float(v) for v in scores.f],
    "worst_frames": worst_frames,
    "sheet": sheet,
    **stage_j,
  }


def evaluate_folder(
  root: str | os.PathLike,
  out_dir: str | os.PathLike,
  config: ml_collections.ConfigDict | None = None,
  workers: int | None = None,
  sequences: Sequence[str] | None = None,
  worst: int = 6,
  save_masks: bool = False,
  progress: bool = True,
  stages: bool = False,
  frame_step: int = 1,
  height: int = 0,
  transform: str = "none",
) -> dict[str, Any]:
  """Segments and scores every sequence under ``root``; writes results.json, table.md and sheets.

  Args:
    root: The DAVIS-style folder.
    out_dir: The output folder (created).
    config: Segmentation config; None for :func:`segtube_jax.schema.segmentation_config`.
    workers: Processes (spawned); None for one per CPU, at most one per sequence; 1 runs here.
    sequences: Names to evaluate; None for all.
    worst: Frames per contact sheet (the lowest J among the scored frames); 0 for no sheets.
    save_masks: Also write the predicted masks to ``out_dir/masks/<seq>/<stem>.png``.
    progress: Show a tqdm progress bar.
    stages: Also score B_o and the labelling after the cuts (``j_initial_mean``, ``j_cut_mean``
      per sequence and their means in the summary), to see which step loses what.
    frame_step: Keep every ``frame_step``-th frame and mask of each sequence (the first
      included): the sequences at a lower frame rate.
    height: Scale every frame and mask down to this many rows first (0: as stored): the
      sequences at a lower resolution. At most the height of every sequence's frames.
    transform: A nuisance transform of frames and masks alike, after the scaling (one of
      :data:`segtube_jax.evaluation.video_transforms.TRANSFORMS`), to probe generalization.

  Returns:
    ``{"root", "sequences": {name: per-sequence dict (see evaluate_sequence)}, "summary":
    {"sequences", "frames", "j_mean", "f_mean", "j_min", "j_min_sequence", "wall_seconds", "fps",
    "workers", "frame_step", "height", "transform"}, "config"}``, as written to results.json.

  Raises:
    DatasetError: bad layout or unreadable images (checked for all sequences first).
    ConfigError: ``frame_step`` is not an integer >= 1, ``height`` is not 0 or an integer
      from 16 to the height of the smallest sequence, or ``transform`` is unknown.
    SegtubeError: a bad config, a segmentation failure or an unwritable output folder.
  """
  start = time.perf_counter()
  config = schema.segmentation_config() if config is None else config
  schema.validate_segmentation(config)
  layout = check_layout(root, sequences)
  _check_sampling(frame_step, height, transform, layout)
  out = io_utils.ensure_writable_dir(out_dir)
  workers = max(1, min(workers or os.cpu_count() or 1, len(layout)))
  jobs = [
    (
      name,
      frames[::frame_step],
      masks[::frame_step],
      str(out),
      config,
      worst,
      save_masks,
      stages,
      height,
      transform,
    )
    for name, (frames, masks) in layout.items()
  ]
  results = _run_jobs(jobs, workers, progress)
  per_seq = {name: results[name] for name in layout}
  summary = _summarize(per_seq, time.perf_counter() - start, workers)
  summary.update(frame_step=frame_step, height=height, transform=transform)
  report = {
    "root": str(pathlib.Path(root).resolve()),
    "sequences": per_seq,
    "summary": summary,
    "config": config.to_dict(),
  }
  io_utils.write_json_atomic(out / RESULTS_FILE, report, what="results file")
  io_utils.write_text_atomic(out / TABLE_FILE, format_table(report, markdown=True), what="table")
  return report


def _check_sampling(
  frame_step: int, height: int, transform: str, layout: dict[str, tuple[list, list]]
) -> None:
  """ConfigError unless frame_step >= 1, height is 0 or 16..(every sequence's height) and the
  transform is known."""
  video_transforms.check_transform(transform)
  if isinstance(frame_step, bool) or not isinstance(frame_step, int) or frame_step < 1:
    raise ConfigError(f"frame_step: expected an integer >= 1, got {frame_step!r}")
  if isinstance(height, bool) or not isinstance(height, int) or (height and height < 16):
    raise ConfigError(f"height: expected 0 (as stored) or an integer >= 16, got {height!r}")
  for name, (frame_files, _) in layout.items():
    stored = image_size(frame_files[0])[1]
    if height > stored:
      raise ConfigError(
        f"height: {height} rows is more than sequence {name!r} has ({stored}); frames are "
        "only scaled down"
      )


def _run_jobs(jobs: list[tuple], workers: int, progress: bool) -> dict[str, dict[str, Any]]:
  """Runs :func:`evaluate_sequence` on every job (here or in spawned workers); name -> result."""
  results: dict[str, dict[str, Any]] = {}
  with tqdm.tqdm(total=len(jobs), desc="davis", unit="seq", disable=not progress) as bar:
    if workers == 1:
      for job in jobs:
        results[job[0]] = evaluate_sequence(*job)
        bar.update()
    else:
      # Spawned workers, as in spatial.batch: forking a parent that may hold XLA threads is unsafe.
      ctx = multiprocessing.get_context("spawn")
      with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [pool.submit(evaluate_sequence, *job) for job in jobs]
        try:
          for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results[result["sequence"]] = result
            bar.update()
        except BaseException:
          pool.shutdown(cancel_futures=True)
          raise
  return results


def _summarize(per_seq: dict[str, dict[str, Any]], wall: float, workers: int) -> dict[str, Any]:
  """The results.json summary (totals, means, worst sequence, speed) of the per-sequence results."""
  total = sum(r["frames"] for r in per_seq.values())
  j_min_seq = min(per_seq, key=lambda s: per_seq[s]["j_mean"])
  summary = {
    "sequences": len(per_seq),
    "frames": total,
    "j_mean": float(np.mean([r["j_mean"] for r in per_seq.values()])),
    "f_mean": float(np.mean([r["f_mean"] for r in per_seq.values()])),
    "j_min": per_seq[j_min_seq]["j_mean"],
    "j_min_sequence": j_min_seq,
    "wall_seconds": wall,
    "fps": total / wall,
    "workers": workers,
  }
  for key in STAGE_COLUMNS:
    if all(key in r for r in per_seq.values()):
      summary[key] = float(np.mean([r[key] for r in per_seq.values()]))
  return summary


def format_table(report: dict[str, Any], markdown: bool = False) -> str:
  """The per-sequence table (sequence, frames, J, F, frames/s) and the summary, as text or Markdown.

  Args:
    report: What :func:`evaluate_folder` returns (or results.json).
    markdown: A Markdown table with the summary as a list, instead of aligned plain text.
  """
  s = report["summary"]
  stage_keys = [k for k in STAGE_COLUMNS if k in s]
  rows = [
    (name, str(r["frames"]), f"{r['j_mean']:.3f}", f"{r['f_mean']:.3f}", f"{r['fps']:.2f}")
    + tuple(f"{r[k]:.3f}" for k in stage_keys)
    for name, r in report["sequences"].items()
  ]
  rows.append(
    ("all", str(s["frames"]), f"{s['j_mean']:.3f}", f"{s['f_mean']:.3f}", f"{s['fps']:.2f}")
    + tuple(f"{s[k]:.3f}" for k in stage_keys)
  )
  head = ("sequence", "frames", "J", "F", "frames/s") + tuple(STAGE_COLUMNS[k] for k in stage_keys)
  notes = [
    f"mean J {s['j_mean']:.3f}, mean F {s['f_mean']:.3f} over {s['sequences']} sequences",
    f"min J {s['j_min']:.3f} ({s['j_min_sequence']})",
    f"overall {s['fps']:.2f} frames/s: {s['frames']} frames in {s['wall_seconds']:.1f} s, "
    f"{s['workers']} workers",
    "(row 'all': total frames, mean J and F over sequences, overall frames/s)",
  ]
  if s.get("frame_step", 1) > 1:
    notes.insert(0, f"one frame in {s['frame_step']} of each sequence (--frame_step)")
  if s.get("height"):
    notes.insert(0, f"frames and masks scaled to {s['height']} rows (--height)")
  if s.get("transform", "none") != "none":
    notes.insert(0, f"frames and masks transformed: {s['transform']} (--transform)")
  if markdown:
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"
  width = max(len(r[0]) for r in rows + [head])
  fmt = lambda r: (
    f"{r[0]:<{width}}  {r[1]:>6}  {r[2]:>6}  {r[3]:>6}  {r[4]:>8}"
    + "".join(f"  {v:>6}" for v in r[5:])
  )
  return "\n".join([fmt(head)] + [fmt(r) for r in rows] + notes)


def define_flags(flag_values: flags.FlagValues) -> None:
  """Defines the command's flags on ``flag_values``."""
  flags.DEFINE_string(
    "root", None, "Folder of sequences (<seq>/frames, <seq>/masks).", flag_values=flag_values
  )
  flags.DEFINE_string("out", None, "Output folder.", flag_values=flag_values)
  flags.DEFINE_integer(
    "workers", None, "Processes (default: the CPU count).", lower_bound=1, flag_values=flag_values
  )
  flags.DEFINE_list(
    "sequences", None, "Comma-separated sequences (default: all).", flag_values=flag_values
  )
  flags.DEFINE_multi_string(
    "set", [], "Segmentation config override key=value (repeatable).", flag_values=flag_values
  )
  flags.DEFINE_integer(
    "worst",
    6,
    "Frames per contact sheet (lowest J); 0: no sheets.",
    lower_bound=0,
    flag_values=flag_values,
  )
  flags.DEFINE_bool(
    "save_masks", False, "Write the predicted masks to OUT/masks/<seq>/.", flag_values=flag_values
  )
  flags.DEFINE_bool(
    "stages",
    False,
    "Also score B_o and the labelling after the cuts (columns 'J B_o', 'J cut').",
    flag_values=flag_values,
  )
  flags.DEFINE_integer(
    "frame_step",
    1,
    "Keep every Nth frame and mask of each sequence: the videos at 1/N of their frame rate.",
    lower_bound=1,
    flag_values=flag_values,
  )
  flags.DEFINE_integer(
    "height",
    0,
    "Scale frames and masks down to this many rows first (0: as stored), e.g. 180 for "
    "THUMOS14's 320x180.",
    lower_bound=0,
    flag_values=flag_values,
  )
  flags.DEFINE_enum(
    "transform",
    "none",
    list(video_transforms.TRANSFORMS),
    "Nuisance transform of frames and masks alike (after --height), to probe generalization: "
    "flip (mirror), reverse (play backwards), crop (central 80%), pan / shake (a moving 80% "
    "window: added camera pan, hand-held shake), noise (Gaussian, std 8), exposure (a drifting "
    "exposure and white balance, +-30%), blur (motion blur up to 2% of the width), jpeg "
    "(quality 20).",
    flag_values=flag_values,
  )
  flags.mark_flags_as_required(["root", "out"], flag_values=flag_values)


def main(argv: Sequence[str]) -> int:
  """Runs the command on ``argv`` (program name first); returns the exit status (2: bad input).

  The flags live in a private FlagValues, so the command can run many times in one process.
  """
  return cli.run_command(
    __doc__, define_flags, _run, argv[1:], "python -m segtube_jax.evaluation.davis"
  )


def _run(fv: flags.FlagValues) -> int:
  """The command's work on parsed flags."""
  config = cli.apply_overrides(schema.segmentation_config(), fv.set)
  names = list(dict.fromkeys(s for s in fv.sequences or [] if s)) or None
  report = evaluate_folder(
    fv.root,
    fv.out,
    config,
    fv.workers,
    names,
    fv.worst,
    fv.save_masks,
    stages=fv.stages,
    frame_step=fv.frame_step,
    height=fv.height,
    transform=fv.transform,
  )
  print(format_table(report))
  print(
    f"wrote {pathlib.Path(fv.out) / RESULTS_FILE}, {TABLE_FILE}" + (", sheets/" if fv.worst else "")
  )
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
