"""The ablation the paper implies, on the synthetic data: does alternating the two stages help?

Segment-tube's claim is that alternating temporal localization (Sec. 2.1) and spatial
segmentation (Sec. 2.2) improves both. This measures it on the demo's synthetic dataset:

* networks trained on raw clips (``clips.mask_source='none'``, the demo config) vs on the
  paper's saliency-aware clips from B_o (``'saliency'``);
* the paper's class rule of Eqs. (3)-(4) (``detector.class_assignment='paper'``) vs one class per
  detected run (``'segment'``);
* the loop stopped after 1, 2 or 3 iterations (1: temporal localization alone, then one
  segmentation of the localized spans; no alternation).

Each cell is a full ``evaluate.py`` run on the testing videos: mAP at tIoU 0.3 and 0.5 (THUMOS14
protocol) and the mask IoU over the ground-truth frames. One command::

  python -m segtube_jax.evaluation.ablation --workdir runs/ablation

It reuses the dataset, the packed chunks, the B_o cache, both trainings and every finished cell,
so rerunning it resumes. The table goes to ``<workdir>/ablation.md`` and ``ablation.json``.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
import time
from typing import Any

from absl import app, flags
import ml_collections

from segtube_jax import io_utils
from segtube_jax.data import synthetic
from segtube_jax.errors import SegtubeError
from segtube_jax.evaluation import detector_eval
from segtube_jax.training import train_and_evaluate

TRAININGS = {"raw clips": "none", "B_o clips": "saliency"}
RULES = ("paper", "segment")


def experiment_config(
  root: pathlib.Path, tfds_dir: pathlib.Path, mask_source: str
) -> ml_collections.ConfigDict:
  """configs/synthetic.py on ``root``, trained on clips of ``mask_source``."""
  from configs import synthetic as synthetic_config  # pylint: disable=g-import-not-at-top

  config = synthetic_config.get_config()
  config.dataset.root = str(root)
  config.dataset.tfds_dir = str(tfds_dir)  # Both trainings read one packed copy.
  config.clips.mask_source = mask_source
  return config


def run_ablation(
  workdir: str | pathlib.Path,
  num_videos: int = 400,
  iterations: int = 3,
  max_videos: int = 0,
  rules: tuple[str, ...] = RULES,
) -> list[dict[str, Any]]:
  """Trains both networks, evaluates every cell, writes the table; returns its rows."""
  t_start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  root = workdir / "data"
  synthetic.prepare_demo_dataset(root, num_videos, seed=0)
  cells = workdir / "cells"
  cells.mkdir(parents=True, exist_ok=True)
  rows = []
  for training, mask_source in TRAININGS.items():
    run = workdir / mask_source
    config = experiment_config(root, workdir / "tfds", mask_source)
    print(f"training on {training}: {run}", flush=True)
    validation = train_and_evaluate(config, run)  # Resumes; a finished run only re-validates.
    for rule in rules:
      for its in range(1, iterations + 1):
        cell = cells / f"{mask_source}-{rule}-{its}.json"
        if not cell.is_file():
          config.detector.class_assignment = rule
          config.detector.max_iterations = its
          config.evaluation.max_videos = max_videos
          t0 = time.perf_counter()
          metrics = detector_eval.evaluate(config, run)
          metrics["seconds"] = time.perf_counter() - t0
          io_utils.write_json_atomic(cell, metrics)
          shutil.copy(run / "eval" / "report.md", cells / f"{mask_source}-{rule}-{its}.md")
        rows.append(_row(training, rule, its, json.loads(cell.read_text()), validation))
        print(format_table(rows[-1:], header=not rows[:-1]), flush=True)
  seconds = time.perf_counter() - t_start
  io_utils.write_json_atomic(workdir / "ablation.json", {"rows": rows, "seconds": seconds})
  io_utils.write_text_atomic(
    workdir / "ablation.md", format_table(rows) + f"\n\nwall time {seconds / 60:.1f} min\n"
  )
  return rows


def _row(
  training: str, rule: str, its: int, metrics: dict[str, Any], validation: dict[str, float]
) -> dict[str, Any]:
  temporal = metrics["temporal"]
  by_tiou = dict(zip((round(t, 2) for t in temporal["tiou"]), temporal["mAP"]))
  seg = metrics.get("segmentation") or {}
  return {
    "training": training,
    "rule": rule,
    "iterations": its,
    "map_03": by_tiou.get(0.3),
    "map_05": by_tiou.get(0.5),
    "mask_iou": (seg.get("mean") or {}).get("iou"),
    "mean_iterations": metrics["loop"]["mean_iterations"],
    "classification_accuracy": validation.get("classification_accuracy"),
    "seconds": metrics.get("seconds"),
  }


def format_table(rows: list[dict[str, Any]], header: bool = True) -> str:
  """The rows as a Markdown table."""
  pct = lambda v: "-" if v is None else f"{100 * v:.1f}"
  lines = (
    [
      "| training clips | class rule | loop iterations | mAP@0.3 | mAP@0.5 | mask IoU |",
      "|---|---|---:|---:|---:|---:|",
    ]
    if header
    else []
  )
  for r in rows:
    iou = "-" if r["mask_iou"] is None else f"{r['mask_iou']:.3f}"
    lines.append(
      f"| {r['training']} | {r['rule']} | {r['iterations']} | {pct(r['map_03'])} | {pct(r['map_05'])} | {iou} |"
    )
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  del argv
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))  # configs/ of the checkout.
  f = flags.FLAGS
  try:
    rows = run_ablation(f.workdir, f.num_videos, f.iterations, f.max_videos, tuple(f.rules))
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(format_table(rows))


if __name__ == "__main__":
  flags.DEFINE_string(
    "workdir", "runs/ablation", "Folder of the whole ablation (resumed when rerun)."
  )
  flags.DEFINE_integer("num_videos", 400, "Synthetic videos (the demo's dataset).")
  flags.DEFINE_integer("iterations", 3, "Loop lengths 1..N are evaluated.")
  flags.DEFINE_integer("max_videos", 0, "Testing videos per evaluation (0: all).")
  flags.DEFINE_list(
    "rules", list(RULES), "Class rules (config.detector.class_assignment) to evaluate."
  )
  app.run(main)
