"""Chooses Eq. (4)'s threshold gamma on held-out videos: temporal mAP of the first localization per gamma.

gamma decides which frames are actions (alpha_t > gamma), so it sets where the segments start and
end. The paper fixes it at 0.6 for its networks; how high alpha_t rises depends on how confident
a given pair of networks is, so a model trained differently (smaller, from scratch, longer or
shorter) needs its own value, chosen on the validation videos, never on the testing ones.

The networks run once per video; Eqs. (1)-(4) then run for every gamma on the same window
logits (one compiled function: gamma is an argument). This scores the alternating loop's first
localization (no saliency masks yet), which is what gamma acts on first; evaluate.py then scores
the whole loop with the chosen value.

Usage:
  python -m segtube_jax.evaluation.tune_gamma --config configs/synthetic.py --workdir runs/demo \\
      [--gammas 0.2,0.3,...] [--subset validation]
Prints mAP per gamma and tIoU, writes <workdir>/gamma_sweep.json and names the best gamma; pass it
on as ``--config.detector.gamma=...``.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
import os
import pathlib
import sys
from typing import Any

from absl import app, flags, logging
import ml_collections
from ml_collections import config_flags
import numpy as np

from segtube_jax import io_utils, schema
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.errors import ConfigError, DatasetError, SegtubeError
from segtube_jax.evaluation import detection_writers, detector_eval, temporal_map

DEFAULT_GAMMAS = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.1, 0.15, ..., 0.9
SWEEP_FILE = "gamma_sweep.json"


def check_gammas(gammas: Sequence[float]) -> list[float]:
  """Sorted distinct gammas, each in [0, 1) (Eq. 4 thresholds a score that is at most 1)."""
  out = []
  for g in gammas:
    if (
      isinstance(g, bool)
      or not isinstance(g, (int, float))
      or not math.isfinite(g)
      or not 0.0 <= g < 1.0
    ):
      raise ConfigError(f"gamma values must be numbers in [0, 1), got {g!r}")
    out.append(float(g))
  if not out:
    raise ConfigError("give at least one gamma value")
  return sorted(set(out))


def sweep_gamma(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  gammas: Sequence[float] = DEFAULT_GAMMAS,
  subset: str = "validation",
) -> dict[str, Any]:
  """Temporal mAP of the first localization of every ``subset`` video, per gamma.

  Args:
    config: the experiment config (``evaluation.protocol`` and ``evaluation.tious`` are used).
    workdir: the trained experiment (its latest checkpoint).
    gammas: thresholds to try, each in [0, 1).
    subset: the videos to tune on ('validation'; tuning on 'testing' would report a tuned test).

  Returns:
    ``{"subset", "videos", "protocol", "tious", "gammas", "map": [[mAP per tIoU] per gamma],
    "best_gamma", "checkpoint_step"}``; mAP in [0, 1]. The best gamma has the highest mAP at the
    largest tIoU, ties broken by the mean over tIoUs, then by the smaller gamma.
  """
  schema.validate(config)
  gammas = check_gammas(gammas)
  ev = config.evaluation
  tious = [float(t) for t in ev.tious]
  ds = dataset_lib.load_dataset(config.dataset.root, check_media=False)
  videos = ds.subset(subset)
  if not videos:
    raise ConfigError(f"subset {subset!r}: {config.dataset.root} has no such video")
  errors = detector_eval.fill_from_media(ds, videos)
  if errors:
    raise DatasetError(
      "cannot tune gamma: " + "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
    )
  localizer, step = localizer_lib.load_localizer(config, workdir, ds.classes)
  results: dict[float, dict[str, list[detection_writers.DetectedSegment]]] = {g: {} for g in gammas}
  for info in videos:
    frames, fps = detector_eval.read_dataset_video(ds, info.video_id)
    net_frames = localizer_lib.prepare_frames(frames, config)
    starts, ends, pro, cla = localizer.window_logits(net_frames, None)
    for g in gammas:
      results[g][info.video_id] = localizer.localize_windows(
        starts, ends, pro, cla, len(frames), fps, gamma=g
      ).segments
  gt = detector_eval.ground_truth(ds, [v.video_id for v in videos], subset)
  maps = []
  for g in gammas:
    dets = detection_writers.as_detections(results[g], ds.classes)
    ap = temporal_map.average_precision(gt, dets, ev.protocol, tious)
    maps.append([float(x) for x in temporal_map.mean_average_precision(ap)])
  last = int(np.argmax(tious))
  best = max(range(len(gammas)), key=lambda i: (maps[i][last], float(np.mean(maps[i])), -gammas[i]))
  return {
    "subset": subset,
    "videos": len(videos),
    "protocol": ev.protocol,
    "tious": tious,
    "gammas": gammas,
    "map": maps,
    "best_gamma": gammas[best],
    "checkpoint_step": step,
  }


def format_sweep(sweep: dict[str, Any]) -> str:
  """A table: one row per gamma, mAP (%) per tIoU; the best gamma marked."""
  head = "gamma  " + "  ".join(f"tIoU {t:g}" for t in sweep["tious"])
  lines = [
    f"temporal mAP (%) of the first localization, {sweep['videos']} {sweep['subset']} videos, "
    f"protocol {sweep['protocol']}, checkpoint step {sweep['checkpoint_step']}",
    head,
  ]
  for g, row in zip(sweep["gammas"], sweep["map"]):
    mark = "  <- best" if g == sweep["best_gamma"] else ""
    lines.append(f"{g:5.2f}  " + "  ".join(f"{100 * m:8.2f}" for m in row) + mark)
  lines.append(
    f"best gamma: {sweep['best_gamma']:g} (use --config.detector.gamma={sweep['best_gamma']:g})"
  )
  return "\n".join(lines)


_FLAGS: dict[str, Any] = {}


def _define_flags() -> None:
  """The CLI's flags, defined only when run as a program (detect and evaluate define --workdir too)."""
  _FLAGS["config"] = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file.", lock_config=True
  )
  _FLAGS["workdir"] = flags.DEFINE_string("workdir", None, "The trained experiment's folder.")
  _FLAGS["gammas"] = flags.DEFINE_list(
    "gammas", [f"{g:g}" for g in DEFAULT_GAMMAS], "Comma-separated gammas to try."
  )
  _FLAGS["subset"] = flags.DEFINE_string("subset", "validation", "Videos to tune on.")
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  del argv
  try:
    try:
      gammas = [float(g) for g in _FLAGS["gammas"].value]
    except ValueError:
      raise ConfigError(
        f"--gammas must be comma-separated numbers, got {','.join(_FLAGS['gammas'].value)!r}"
      ) from None
    workdir = _FLAGS["workdir"].value
    sweep = sweep_gamma(_FLAGS["config"].value, workdir, gammas, _FLAGS["subset"].value)
    path = pathlib.Path(workdir) / SWEEP_FILE
    io_utils.write_json_atomic(path, sweep, what="gamma sweep")
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(format_sweep(sweep))
  logging.info("wrote %s", path)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
