"""The main job on the embedded synthetic dataset: ``make demo``.

1. Generates the synthetic untrimmed action dataset (once: an existing dataset made with the
   same arguments is reused), prints its summary and writes contact sheets of a few videos.
2. Trains the networks (``configs/synthetic.py``; rerunning resumes from the checkpoints).
3. Evaluates the detector on the testing videos and writes ``<workdir>/eval/report.md``.

Usage: python -m segtube_jax.demo --workdir runs/demo [--num_videos 400 --seed 0]
Equivalent to the three commands printed at each step (synthetic generator, train.py,
evaluate.py), which accept ``--config.key=value`` overrides.
"""

from __future__ import annotations

import pathlib
import sys
import time

from absl import app, flags

from configs import synthetic as synthetic_config
from segtube_jax.data import contact_sheet, synthetic
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.errors import SegtubeError
from segtube_jax.evaluation import detector_eval
from segtube_jax.training import TrainingStopped, train_and_evaluate


def run_demo(
  workdir: str,
  num_videos: int = 400,
  seed: int = 0,
  sheets: int = 2,
  data_only: bool = False,
  config=None,
) -> dict:
  """Dataset, training and evaluation; returns the summary, the validation and the test metrics.

  Args:
    workdir: the experiment folder (dataset in <workdir>/data).
    num_videos, seed: of the generated dataset.
    sheets: contact sheets to write.
    data_only: stop after the dataset.
    config: the experiment config; default ``configs/synthetic.py`` with the dataset in workdir.
  """
  t_start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  root = workdir / "data"
  summary, seconds = synthetic.prepare_demo_dataset(root, num_videos, seed)
  print(synthetic.format_summary(summary))
  print(
    f"  {'generated in %.1f s' % seconds if seconds is not None else 'reused (same arguments)'}"
  )
  ds = dataset_lib.load_dataset(root, check_media=False)
  sheet_dir = workdir / "contact_sheets"
  sheet_dir.mkdir(parents=True, exist_ok=True)
  written = []
  for info in ds.subset("testing")[:sheets]:
    out = sheet_dir / f"{info.video_id}.png"
    contact_sheet.write_contact_sheet(ds, info.video_id, out)
    written.append(str(out))
  print(f"contact sheets ({len(written)}): {sheet_dir}/")
  for path in written:
    print(f"  {path}")
  if data_only:
    print(
      f"next: python train.py --config configs/synthetic.py --workdir {workdir} --config.dataset.root={root}"
    )
    return {"summary": summary, "contact_sheets": written}
  if config is None:
    config = synthetic_config.get_config()
    config.dataset.root = str(root)
  print(
    f"training: python train.py --config configs/synthetic.py --workdir {workdir} "
    f"--config.dataset.root={config.dataset.root}",
    flush=True,
  )
  validation = train_and_evaluate(config, workdir)
  print(
    "validation windows: "
    + ", ".join(f"{k} {v:.4f}" for k, v in sorted(validation.items()) if k.endswith("accuracy"))
  )
  print(
    f"evaluating: python evaluate.py --config configs/synthetic.py --workdir {workdir} "
    f"--config.dataset.root={config.dataset.root}",
    flush=True,
  )
  metrics = detector_eval.evaluate(config, workdir)
  print(detector_eval.summary_lines(metrics, workdir))
  print(
    f"demo finished in {time.perf_counter() - t_start:.0f} s; report: {workdir / 'eval' / 'report.md'}"
  )
  return {
    "summary": summary,
    "contact_sheets": written,
    "validation": validation,
    "metrics": metrics,
  }


def main(argv: list[str]) -> None:
  del argv
  try:
    f = flags.FLAGS
    run_demo(f.workdir, f.num_videos, f.seed, f.contact_sheets, f.data_only)
  except TrainingStopped as e:
    print(f"stopped: {e}", file=sys.stderr)
    sys.exit(1)
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  # Flags only as a program: importing run_demo defines none.
  flags.DEFINE_string(
    "workdir", "runs/demo", "Experiment folder; the dataset goes to <workdir>/data."
  )
  flags.DEFINE_integer("num_videos", 400, "Synthetic videos to generate.")
  flags.DEFINE_integer("seed", 0, "Generator seed.")
  flags.DEFINE_integer("contact_sheets", 2, "Contact sheets to write (one per video).")
  flags.DEFINE_bool("data_only", False, "Only generate the dataset and contact sheets.")
  app.run(main)
