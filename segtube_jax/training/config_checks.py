"""Config validation: unknown keys and impossible values fail before anything compiles."""

from __future__ import annotations

from typing import Any

import ml_collections

from segtube_jax import defaults, models
from segtube_jax.errors import ConfigError


def _unknown_keys(config: Any, schema: Any, prefix: str = "config") -> list[str]:
  if not isinstance(config, (ml_collections.ConfigDict, dict)):
    return []
  out = []
  for key in config.keys():
    if key not in schema:
      out.append(f"{prefix}.{key}")
    elif isinstance(schema[key], (ml_collections.ConfigDict, dict)):
      out.extend(_unknown_keys(config[key], schema[key], f"{prefix}.{key}"))
  return out


def check_training_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError naming the key and what was expected.

  Args:
    config: the experiment config.
    num_devices: devices over all processes (the global batch must divide evenly).
  """
  schema = defaults.base_config()
  unknown = _unknown_keys(config, schema)
  if unknown:
    raise ConfigError(f"unknown config keys {unknown}; see segtube_jax/defaults.py for the schema")
  if not config.dataset.root:
    raise ConfigError("config.dataset.root must name a dataset folder (docs/datasets.md)")
  if config.model.clip_shape[0] != 16:
    raise ConfigError(f"config.model.clip_shape[0] (clip length) must be 16 as in C3D, got {config.model.clip_shape[0]}")
  models.validate_model_config(config.model)
  lengths = tuple(config.clips.window_lengths)
  if not lengths or any(int(l) < 16 for l in lengths):
    raise ConfigError(f"config.clips.window_lengths must be window sizes >= 16 frames, got {lengths}")
  batch = config.train.global_batch_size
  if batch < 1 or batch % num_devices:
    raise ConfigError(f"config.train.global_batch_size={batch} must be a positive multiple of the "
                      f"{num_devices} device(s)")
  for key in ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
    if config.train[key] < 1:
      raise ConfigError(f"config.train.{key} must be >= 1, got {config.train[key]}")
  if config.optimizer.learning_rate <= 0:
    raise ConfigError(f"config.optimizer.learning_rate must be > 0, got {config.optimizer.learning_rate}")
  if not 0.0 <= config.clips.background_weight <= 1.0:
    raise ConfigError(f"config.clips.background_weight must be in [0, 1], got {config.clips.background_weight}")
  if config.data_threads < 0 or config.data_prefetch < 0:
    raise ConfigError("config.data_threads and config.data_prefetch must be >= 0")
