"""Benchmark: the whole detector's frames/s on one host, split into decode, networks and segmentation.

Runs what ``evaluate.py --config C`` runs (the alternating loop of Sec. 2.3 through
``detector_eval.evaluate``: the localizer's networks on the accelerator, the graph cuts in a
process pool sized to the host's cores, the next videos decoded in a thread meanwhile) over N
synthetic videos and reports:

- frames/s end to end (the videos' frames over the detector's wall time);
- decode seconds (a thread: overlapped with the rest), localizer seconds (the networks and
  Eqs. 1-4, in this process) and segmentation seconds (summed over the pool's workers: above
  the wall time when the workers run in parallel), and how much of the work overlapped.

Without ``--workdir`` it generates the videos and trains the config's networks for
``--train_steps`` steps first: a throughput figure needs networks of the right size, not
trained ones. Such networks localize next to nothing at the config's gamma, so ``--gamma``
(default 0 for a generated run) makes Eq. (4) keep every frame: every frame is then segmented,
the detector's most work per frame. The report gives the fraction of frames localized. With
``--workdir`` of a trained run it evaluates that run on its config's dataset, at its gamma.

Usage:
  python bench/detector_throughput.py --config configs/synthetic.py --videos 20 --size 128
  python bench/detector_throughput.py --config configs/thumos14.py --videos 20 --size 128 \\
      --config.model.pretrained_c3d=''          # paper size (an accelerator), frames 128x171
  python bench/detector_throughput.py --config configs/synthetic.py --workdir runs/demo --videos 60
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Any

from absl import app, flags
import jax
from ml_collections import config_flags

# Runnable from a checkout without installing the package.
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from segtube_jax import cli

# pylint: enable=g-import-not-at-top,wrong-import-position


def define_flags(fv: flags.FlagValues = flags.FLAGS, argv: Sequence[str] | None = None) -> None:
  """Defines the bench's flags (when it runs as a program, never at import).

  ``argv``: the command line the ``--config.key=value`` overrides are read from (default
  ``sys.argv``).
  """
  config_flags.DEFINE_config_file(
    "config",
    str(ROOT / "configs/synthetic.py"),
    "Experiment config; override its keys with --config.key=value.",
    flag_values=fv,
    sys_argv=argv,
  )
  flags.DEFINE_string(
    "workdir", None, "A trained run to evaluate (default: train a new one).", flag_values=fv
  )
  flags.DEFINE_integer("videos", 20, "Videos to detect.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer(
    "size", 128, "Side of the generated videos' frames (pixels).", lower_bound=32, flag_values=fv
  )
  flags.DEFINE_integer(
    "train_steps", 1, "Training steps of the generated run.", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_integer(
    "train_videos", 3, "Training videos of the generated run.", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_integer(
    "workers", 0, "Segmentation processes (0: one per host core).", lower_bound=0, flag_values=fv
  )
  flags.DEFINE_integer(
    "iterations", None, "Loop iterations (default: the config's).", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_float(
    "gamma",
    None,
    "Eq. (4)'s threshold (default: 0 for a generated run, every frame localized; the config's "
    "with --workdir).",
    flag_values=fv,
  )
  flags.DEFINE_string("json", None, "Also write the results to this JSON file.", flag_values=fv)


def _generated_run(config, args, work: pathlib.Path) -> pathlib.Path:
  """Generates ``args.videos`` testing videos (and a few to train on) and trains a run on them."""
  from segtube_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  from segtube_jax.training import train_and_evaluate  # pylint: disable=g-import-not-at-top

  total = args.videos + args.train_videos + 1  # One to validate on.
  synthetic.generate_dataset(
    work / "data",
    total,
    seed=0,
    size=args.size,
    min_frames=120,
    max_frames=240,
    split=(args.train_videos / total, 1 / total, args.videos / total),
    workers=max(1, min(8, os.cpu_count() or 1)),
  )
  config.dataset.root = str(work / "data")
  config.train.num_steps = args.train_steps
  config.train.checkpoint_every = args.train_steps
  config.train.log_every = args.train_steps
  config.data_workers = 0  # The throughput measured is the detector's, not the trainer's.
  train_and_evaluate(config, work / "run")
  return work / "run"


def run(args: flags.FlagValues) -> dict[str, Any]:
  """Runs the benchmark on parsed flags and returns its results."""
  from segtube_jax.evaluation import detector_eval  # pylint: disable=g-import-not-at-top

  config = args.config
  cores = len(os.sched_getaffinity(0))
  work = pathlib.Path(tempfile.mkdtemp(prefix="segtube_detector_bench_"))
  try:
    t0 = time.perf_counter()
    workdir = pathlib.Path(args.workdir) if args.workdir else _generated_run(config, args, work)
    prep_s = time.perf_counter() - t0
    with config.unlocked():
      config.evaluation.workers = args.workers or cores
      config.evaluation.max_videos = args.videos
      config.evaluation.report_videos = 0
      if args.iterations:
        config.detector.max_iterations = args.iterations
      gamma = args.gamma if args.gamma is not None else (None if args.workdir else 0.0)
      if gamma is not None:
        config.detector.gamma = gamma
    metrics = detector_eval.evaluate(config, workdir)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  t = metrics["timings"]
  busy = t["decode_seconds"] + t["localize_seconds"] + t["segment_seconds"]
  results = {
    "backend": jax.default_backend(),
    "device": jax.devices()[0].device_kind,
    "cores": cores,
    "segmentation_workers": config.evaluation.workers,
    "videos": metrics["num_videos"],
    "iterations": config.detector.max_iterations,
    "frames": t["frames"],
    "wall_seconds": t["detect_seconds"],
    "frames_per_second": t["frames_per_second"],
    "decode_seconds": t["decode_seconds"],
    "localize_seconds": t["localize_seconds"],
    "segment_seconds": t["segment_seconds"],
    # Work done per second of wall time: above 1 when the parts ran at the same time.
    "overlap": round(busy / t["detect_seconds"], 2) if t["detect_seconds"] else None,
    "localized_frame_fraction": round(t["localized_frames"] / max(t["frames"], 1), 3),
    "prep_seconds": round(prep_s, 1),
  }
  print(
    f"detector  {results['videos']} videos, {results['frames']} frames, "
    f"{results['iterations']} iteration(s), backend {results['backend']} "
    f"({results['device']}), {results['segmentation_workers']} segmentation workers on "
    f"{cores} cores\n"
    f"  end to end   {results['frames_per_second']:8.1f} frames/s  ({results['wall_seconds']:.1f} s)\n"
    f"  localized    {results['localized_frame_fraction']:8.3f} of the frames (segmented)\n"
    f"  decode       {results['decode_seconds']:8.1f} s  (a thread, overlapped)\n"
    f"  localizer    {results['localize_seconds']:8.1f} s  (networks + Eqs. 1-4)\n"
    f"  segmentation {results['segment_seconds']:8.1f} s  (summed over the workers)\n"
    f"  overlap      {results['overlap']}x  (seconds of work per second of wall time)",
    flush=True,
  )
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
  return results


def main(argv: Sequence[str] = ()) -> dict[str, Any]:
  """Parses ``argv`` (flags only) into private flag values and runs the benchmark."""
  prog = "bench/detector_throughput.py"
  return run(cli.parse_flags(lambda fv: define_flags(fv, [prog, *argv]), argv, prog))


def _command_line(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cli.quiet_library_logs()  # Progress and the figures, not pages of library INFO lines.
  run(flags.FLAGS)


if __name__ == "__main__":
  define_flags()
  app.run(_command_line)
