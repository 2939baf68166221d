"""Config validation: unknown keys and impossible values fail before anything compiles."""

from __future__ import annotations

import math
from typing import Any

import ml_collections

from segtube_jax import clips as clips_lib
from segtube_jax import defaults, models
from segtube_jax.errors import ConfigError
from segtube_jax.training import distributed


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


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return False
  try:
    return math.isfinite(value)
  except OverflowError:
    return False


def _ints(value: Any, low: int, size: int | None = None) -> bool:
  """A tuple/list of ints >= ``low`` (of length ``size`` when given; non-empty otherwise)."""
  return (
    isinstance(value, (tuple, list))
    and (len(value) == size if size is not None else bool(value))
    and all(_is_int(v) and v >= low for v in value)
  )


def _need(ok: bool, key: str, expected: str, value: Any) -> None:
  if not ok:
    raise ConfigError(f"config.{key} must be {expected}, got {value!r}")


SALIENCY_MODES = ("multiply", "blend_mean", "none")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")

# Training keys: (key, predicate, what was expected). Values come from --config.key=value overrides
# (literal_eval'd tuples can hold anything), so types are checked as well as ranges.
_RULES = (
  ("seed", lambda v: _is_int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)"),
  ("init_from", lambda v: isinstance(v, str), "a path string ('' for none)"),
  ("dataset.tfds_dir", lambda v: isinstance(v, str), "a path string ('' for <workdir>/tfds)"),
  (
    "dataset.frame_size",
    lambda v: not v or _ints(v, 1, 2),
    "(height, width) positive ints, or () for native",
  ),
  ("dataset.chunk_len", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
  ("dataset.encoding", lambda v: v in ("png", "jpeg"), "'png' or 'jpeg'"),
  (
    "clips.window_lengths",
    lambda v: _ints(v, 16),
    "a non-empty tuple of window sizes >= 16 frames",
  ),
  ("clips.overlap", lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
  ("clips.positive_coverage", lambda v: _is_real(v) and 0 < v <= 1, "a number in (0, 1]"),
  ("clips.background_coverage", lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
  ("clips.seq_len", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
  (
    "clips.resize",
    lambda v: not v or _ints(v, 1, 2),
    "(height, width) positive ints, or () for the crop size",
  ),
  ("clips.flip", lambda v: isinstance(v, bool), "a bool"),
  ("clips.color_augment", lambda v: isinstance(v, bool), "a bool"),
  ("clips.mask_source", lambda v: v in clips_lib.MASK_SOURCES, f"one of {clips_lib.MASK_SOURCES}"),
  ("clips.mask_dir", lambda v: isinstance(v, str), "a path string"),
  (
    "clips.saliency_workers",
    lambda v: _is_int(v) and v >= 0,
    "an integer >= 0 (0: one per CPU core)",
  ),
  ("clips.saliency_mode", lambda v: v in SALIENCY_MODES, f"one of {SALIENCY_MODES}"),
  ("clips.background_weight", lambda v: _is_real(v) and 0 <= v <= 1, "a number in [0, 1]"),
  ("optimizer.name", lambda v: v in OPTIMIZERS, f"one of {OPTIMIZERS}"),
  ("optimizer.learning_rate", lambda v: _is_real(v) and v > 0, "> 0 and finite"),
  ("optimizer.momentum", lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
  ("optimizer.weight_decay", lambda v: _is_real(v) and v >= 0, "a finite number >= 0"),
  ("optimizer.schedule", lambda v: v in SCHEDULES, f"one of {SCHEDULES}"),
  (
    "optimizer.step_boundaries",
    lambda v: isinstance(v, (tuple, list)) and all(_is_real(f) and 0 <= f <= 1 for f in v),
    "a tuple of fractions of num_steps in [0, 1]",
  ),
  ("optimizer.step_factor", lambda v: _is_real(v) and v > 0, "> 0 and finite"),
  ("optimizer.warmup_steps", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
  (
    "optimizer.grad_clip_norm",
    lambda v: _is_real(v) and v >= 0,
    "a finite number >= 0 (0: no clipping)",
  ),
  ("train.async_checkpoints", lambda v: isinstance(v, bool), "a bool"),
)


def _get(config: Any, key: str) -> Any:
  for part in key.split("."):
    config = config[part]
  return config


def check_training_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError naming the key and what was expected.

  Every key training reads is checked here, before the workdir, the packed data or any
  compilation, so that a mistyped ``--config.key=value`` fails at once.

  Args:
    config: the experiment config.
    num_devices: devices over all processes (the global batch must divide evenly).
  """
  schema = defaults.base_config()
  unknown = _unknown_keys(config, schema)
  if unknown:
    raise ConfigError(f"unknown config keys {unknown}; see segtube_jax/defaults.py for the schema")
  if not isinstance(config.dataset.root, str) or not config.dataset.root:
    raise ConfigError("config.dataset.root must name a dataset folder (docs/datasets.md)")
  shape = config.model.clip_shape
  if isinstance(shape, (tuple, list)) and shape and _is_int(shape[0]) and shape[0] != 16:
    raise ConfigError(
      f"config.model.clip_shape[0] (clip length) must be 16 as in C3D, got {shape[0]}"
    )
  models.validate_model_config(config.model)
  for key, ok, expected in _RULES:
    _need(ok(_get(config, key)), key, expected, _get(config, key))
  batch = config.train.global_batch_size
  if not _is_int(batch) or batch < 1 or batch % num_devices:
    raise ConfigError(
      f"config.train.global_batch_size={batch} must be a positive multiple of the "
      f"{num_devices} device(s)"
    )
  micro = config.train.microbatch_size
  per_device = batch // num_devices
  if not _is_int(micro) or micro < 0 or (0 < micro < per_device and per_device % micro):
    raise ConfigError(
      f"config.train.microbatch_size must be 0 (no split) or an integer that divides the "
      f"{per_device} sequences per device (global_batch_size {batch} / {num_devices} device(s)), "
      f"got {micro!r}"
    )
  for key in ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
    if not _is_int(config.train[key]) or config.train[key] < 1:
      raise ConfigError(f"config.train.{key} must be >= 1, got {config.train[key]!r}")
  clips = config.clips
  if not clips.background_coverage < clips.positive_coverage:
    raise ConfigError(
      f"config.clips.background_coverage ({clips.background_coverage}) must be below "
      f"config.clips.positive_coverage ({clips.positive_coverage})"
    )
  crop = tuple(config.model.clip_shape[1:])
  if clips.resize and (clips.resize[0] < crop[0] or clips.resize[1] < crop[1]):
    raise ConfigError(
      f"config.clips.resize {tuple(clips.resize)} must be at least the clip size {crop} "
      "(config.model.clip_shape[1:])"
    )
  if clips.mask_source == "saliency" and not config.dataset.frame_size:
    raise ConfigError(
      "config.clips.mask_source='saliency' needs config.dataset.frame_size (the B_o cache "
      "stores masks at the packed frame size)"
    )
  if clips.mask_source == "folder" and not clips.mask_dir:
    raise ConfigError("config.clips.mask_source='folder' needs config.clips.mask_dir")
  if (
    config.get("distributed", "auto") not in distributed.MODES
  ):  # Also checked by distributed.initialize.
    raise ConfigError(
      f"config.distributed must be one of {distributed.MODES}, got {config.distributed!r}"
    )
  for key in ("data_threads", "data_prefetch"):
    if not _is_int(config[key]) or config[key] < 0:
      raise ConfigError(f"config.{key} must be an integer >= 0, got {config[key]!r}")
