"""Training of the Sec. 2.1 networks: train state, pmap steps, checkpointing, train_and_evaluate."""

from segtube_jax.training.trainer import NonFiniteLossError, TrainingStopped, train_and_evaluate

__all__ = ["NonFiniteLossError", "TrainingStopped", "train_and_evaluate"]
