"""Evaluates a trained Segment-tube detector, or scores a detection file.

Detector mode (the latest checkpoint of a training workdir on the test subset)::

  python evaluate.py --config configs/<name>.py --workdir DIR [--config.key=value ...]

writes DIR/eval/: detections.json (ActivityNet), detections.txt (THUMOS14), masks/<video>/,
metrics.json and report.md with figures (see segtube_jax/evaluation/detector_eval.py).

Scoring mode (score an existing detection file)::

  python evaluate.py --detections FILE --ground_truth PATH
      --protocol thumos14|activitynet [--tiou 0.1,0.2,0.3,0.4,0.5] [--subset testing]
      [--out metrics.json]

``--ground_truth`` is a THUMOS14 annotation folder or an annotations.json. Prints per-class
AP and mAP per threshold and, with ``--out``, writes them as JSON (atomically).
"""

from collections.abc import Sequence

from absl import app, flags, logging
from ml_collections import config_flags

from segtube_jax import cli
from segtube_jax.errors import SegtubeError
from segtube_jax.evaluation import detector_eval, score_detections, temporal_map

_DETECTIONS = flags.DEFINE_string(
  "detections", None, "Detection file to score: THUMOS14 text or ActivityNet JSON."
)
_GROUND_TRUTH = flags.DEFINE_string(
  "ground_truth", None, "THUMOS14 annotation folder or annotations.json."
)
_PROTOCOL = flags.DEFINE_enum(
  "protocol",
  "thumos14",
  list(temporal_map.PROTOCOLS),
  "thumos14: official TH14evalDet rules; activitynet: eval_detection.py rules.",
)
_TIOU = flags.DEFINE_list(
  "tiou", [str(t) for t in temporal_map.DEFAULT_TIOUS], "Comma-separated tIoU thresholds."
)
_SUBSET = flags.DEFINE_enum(
  "subset", "testing", list(temporal_map.DATASET_SUBSETS), "Ground-truth subset to score against."
)
_OUT = flags.DEFINE_string("out", None, "Optional metrics.json output path.")
_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment config file (detector mode).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate (detector mode).")


def _parse_tious(values: Sequence[str]) -> list[float]:
  try:
    return [float(v) for v in values]
  except ValueError:
    raise app.UsageError(f"--tiou: expected comma-separated numbers, got {','.join(values)!r}")


def _score_mode() -> None:
  """Scores --detections against --ground_truth."""
  if not _GROUND_TRUTH.value:
    raise app.UsageError("--ground_truth is required with --detections")
  score_detections.run_scoring(
    _DETECTIONS.value,
    _GROUND_TRUTH.value,
    _PROTOCOL.value,
    _parse_tious(_TIOU.value),
    _SUBSET.value,
    _OUT.value,
  )


def _detector_mode() -> None:
  """Runs the detector of --workdir on the config's test subset and writes DIR/eval."""
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required with --config")
  metrics = detector_eval.evaluate(_CONFIG.value, _WORKDIR.value)
  print(detector_eval.summary_lines(metrics, _WORKDIR.value))


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.quiet_library_logs()
  if _DETECTIONS.value and _CONFIG.value is not None:
    raise app.UsageError(
      "pass either --config/--workdir (detector mode) or --detections (scoring mode)"
    )
  if _DETECTIONS.value:
    mode = _score_mode
  elif _CONFIG.value is not None:
    mode = _detector_mode
  else:
    raise app.UsageError(
      "nothing to do: pass --config CONFIG --workdir DIR to evaluate a trained run, or "
      "--detections FILE --ground_truth PATH to score a detection file"
    )
  try:
    mode()
  except detector_eval.VideosFailed as e:
    logging.error("%s", e)
    raise SystemExit(f"error: {e}") from None
  except SegtubeError as e:
    # Bad input is the user's to fix: a one-line message beats a traceback.
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  app.run(main)
