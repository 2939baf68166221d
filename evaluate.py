"""Evaluates temporal action detections.

Scoring mode (score an existing detection file)::

  python evaluate.py --detections FILE --ground_truth PATH
      --protocol thumos14|activitynet [--tiou 0.1,0.2,0.3,0.4,0.5] [--subset testing]
      [--out metrics.json]

``--ground_truth`` is a THUMOS14 annotation folder or an annotations.json. Prints per-class
AP and mAP per threshold and, with ``--out``, writes them as JSON (atomically).
"""

from collections.abc import Sequence

from absl import app
from absl import flags

from segtube_jax.errors import SegtubeError
from segtube_jax.evaluation import score_detections
from segtube_jax.evaluation import temporal_map

_DETECTIONS = flags.DEFINE_string(
    "detections", None, "Detection file to score: THUMOS14 text or ActivityNet JSON.")
_GROUND_TRUTH = flags.DEFINE_string(
    "ground_truth", None, "THUMOS14 annotation folder or annotations.json.")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", "thumos14", list(temporal_map.PROTOCOLS),
    "thumos14: official TH14evalDet rules; activitynet: eval_detection.py rules.")
_TIOU = flags.DEFINE_list(
    "tiou", [str(t) for t in temporal_map.DEFAULT_TIOUS], "Comma-separated tIoU thresholds.")
_SUBSET = flags.DEFINE_enum(
    "subset", "testing", list(temporal_map.DATASET_SUBSETS),
    "Ground-truth subset to score against.")
_OUT = flags.DEFINE_string("out", None, "Optional metrics.json output path.")


def _parse_tious(values: Sequence[str]) -> list[float]:
  try:
    return [float(v) for v in values]
  except ValueError:
    raise app.UsageError(f"--tiou: expected comma-separated numbers, got {','.join(values)!r}")


def _score_mode() -> None:
  """Scores --detections against --ground_truth."""
  if not _GROUND_TRUTH.value:
    raise app.UsageError("--ground_truth is required with --detections")
  score_detections.run_scoring(_DETECTIONS.value, _GROUND_TRUTH.value, _PROTOCOL.value,
                               _parse_tious(_TIOU.value), _SUBSET.value, _OUT.value)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # One branch per mode; a --config/--workdir mode (evaluate a trained run) goes here too.
  if _DETECTIONS.value:
    mode = _score_mode
  else:
    raise app.UsageError("nothing to do: pass --detections FILE --ground_truth PATH to score a "
                         "detection file")
  try:
    mode()
  except SegtubeError as e:
    # Bad input is the user's to fix: a one-line message beats a traceback.
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  app.run(main)
