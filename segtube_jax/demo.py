"""The main job on the embedded synthetic dataset: ``make demo``.

Generates the synthetic untrimmed action dataset (once: an existing dataset made with the same
arguments is reused), prints its summary, and writes contact sheets of a few videos so a person
can look at what the detector will be trained on. Training the networks on it is
``python train.py --config configs/synthetic.py --workdir runs/demo`` (README).

Usage: python -m segtube_jax.demo --workdir runs/demo [--num_videos 200 --seed 0]
"""

from __future__ import annotations

import pathlib
import sys
import time

from absl import app, flags

from segtube_jax.data import contact_sheet, dataset as dataset_lib, synthetic
from segtube_jax.errors import SegtubeError

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Experiment folder; the dataset goes to <workdir>/data.")
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", 200, "Synthetic videos to generate.")
_SEED = flags.DEFINE_integer("seed", 0, "Generator seed.")
_SHEETS = flags.DEFINE_integer("contact_sheets", 4, "Contact sheets to write (one per video).")


def prepare_dataset(root: pathlib.Path, num_videos: int, seed: int) -> tuple[dict, float | None]:
  """Generates the dataset unless ``root`` already holds one made with the same arguments."""
  ann = root / "annotations.json"
  if ann.is_file():
    made = dataset_lib.read_annotations_json(ann).get("generator", {})
    if made.get("num_videos") == num_videos and made.get("seed") == seed:
      return synthetic.summarize(root), None
  t0 = time.perf_counter()
  synthetic.generate_dataset(root, num_videos, seed, overwrite=True)
  return synthetic.summarize(root), time.perf_counter() - t0


def run_demo(workdir: str, num_videos: int = 200, seed: int = 0, sheets: int = 4) -> dict:
  """Generates/reuses the dataset and writes contact sheets; returns the summary."""
  workdir = pathlib.Path(workdir)
  root = workdir / "data"
  summary, seconds = prepare_dataset(root, num_videos, seed)
  print(synthetic.format_summary(summary))
  print(f"  {'generated in %.1f s' % seconds if seconds is not None else 'reused (same arguments)'}")
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
  print("next: python train.py --config configs/synthetic.py --workdir", workdir)
  return {"summary": summary, "contact_sheets": written}


def main(argv: list[str]) -> None:
  del argv
  try:
    run_demo(_WORKDIR.value, _NUM_VIDEOS.value, _SEED.value, _SHEETS.value)
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
