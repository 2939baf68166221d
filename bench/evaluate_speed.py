"""Times scoring of the five published SCNN detection files under both protocols.

Run from the repository root: ``python bench/evaluate_speed.py``. Each measurement is end
to end (read the THUMOS14 annotation folder and every detection file, match, AP) and the
best of ``--repeats`` runs is reported. Budget: 2 s for everything.
"""

from collections.abc import Sequence
import json
import os
import pathlib
import sys
import time

from absl import app, flags

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from segtube_jax.evaluation import (
  score_detections,  # pylint: disable=g-import-not-at-top
  temporal_map,  # pylint: disable=g-import-not-at-top
)

SHARED_DATA = pathlib.Path(
  os.environ.get("SEGTUBE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)


def _score_all(annotation_dir, scnn_dir, files, protocol, all_tious):
  """Scores every file (at its own threshold, or at all five); returns (seconds, mAPs)."""
  start = time.perf_counter()
  ground_truth = temporal_map.load_ground_truth(annotation_dir, "testing")
  maps = {}
  for tiou, name in files.items():
    tious = temporal_map.DEFAULT_TIOUS if all_tious else [float(tiou)]
    metrics = score_detections.score_detection_file(scnn_dir / name, ground_truth, protocol, tious)
    maps[tiou] = metrics["mAP"][metrics["tiou"].index(float(tiou))]
  return time.perf_counter() - start, maps


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags (when it runs as a program, never at import)."""
  flags.DEFINE_integer(
    "repeats", 3, "Runs per measurement (the best is reported).", lower_bound=1, flag_values=fv
  )


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  args = flags.FLAGS
  annotation_dir = SHARED_DATA / "thumos14" / "annotation_test"
  scnn_dir = SHARED_DATA / "thumos14" / "scnn_c3d_detections"
  if not scnn_dir.is_dir():
    print(f"skipped: SCNN detections not found under {SHARED_DATA} (set SEGTUBE_SHARED_DATA)")
    return 0
  files = json.loads((scnn_dir / "expected_map.json").read_text())["det_file_for_tiou"]

  total = 0.0
  for all_tious in (False, True):
    what = "each file at all 5 tIoUs" if all_tious else "each file at its own tIoU"
    for protocol in temporal_map.PROTOCOLS:
      runs = [
        _score_all(annotation_dir, scnn_dir, files, protocol, all_tious)
        for _ in range(args.repeats)
      ]
      seconds = min(r[0] for r in runs)
      maps = " ".join(f"{100 * m:.2f}" for m in runs[0][1].values())
      print(f"{protocol:<12} {what:<26} {seconds:6.3f} s   mAP@{'/'.join(files)}: {maps}")
      if not all_tious:
        total += seconds
  print(f"total, both protocols, 5 files at their own tIoU: {total:.3f} s (budget 2 s)")
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
