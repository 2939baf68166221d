"""Trains the proposal and classification networks: python train.py --config CONFIG --workdir DIR.

Rerunning the same command resumes from the workdir's latest checkpoint. Overrides:
--config.key=value (e.g. --config.train.num_steps=100).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from segtube_jax import cli
from segtube_jax.errors import SegtubeError
from segtube_jax.training import (
  NonFiniteLossError,
  TrainingStopped,
  distributed,
  train_and_evaluate,
)

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Experiment folder (checkpoints, metrics).")
_DISTRIBUTED = flags.DEFINE_bool(
  "jax_distributed",
  False,
  "Call jax.distributed.initialize() first (multi-host: SLURM/TPU pods fill in the coordinator; "
  "otherwise set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  cli.quiet_library_logs()
  try:
    if _DISTRIBUTED.value:  # The same as --config.distributed=on.
      distributed.initialize("on")
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except TrainingStopped as e:
    logging.warning("%s", e)
    sys.exit(0)
  except (SegtubeError, NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
