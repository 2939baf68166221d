"""The one validator: unknown keys and impossible values fail before any work, naming the key.

:func:`validate` checks a whole experiment config and is what every entry point calls first
(``train.py``, ``evaluate.py``, ``python -m segtube_jax.detect_videos``, the tools under
``segtube_jax/evaluation``). Its sections are exported for the library layers that receive one
section only: :func:`validate_model` (``models.build_model``), :func:`validate_segmentation`
(the spatial stage and ``python -m segtube_jax.segment_actors``) and :func:`validate_detector` (the
``Localizer``). Every leaf of :func:`schema.defaults.experiment_config` has a rule here
(tests/test_schema.py checks it), so a new field is its default plus one rule.

Values come from ``--config.key=value`` overrides, whose literal_eval'd tuples can hold
anything, so types are checked as well as ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import math
from typing import Any

import ml_collections

from segtube_jax.errors import ConfigError
from segtube_jax.schema import defaults as d

Rule = tuple[str, Callable[[Any], bool], str]
_DICTS = (ml_collections.ConfigDict, Mapping)


def _int(v: Any, low: int = 0) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _real(v: Any) -> bool:
  if isinstance(v, bool) or not isinstance(v, (int, float)):
    return False
  try:
    return math.isfinite(v)
  except OverflowError:
    return False


def _ints(v: Any, low: int, size: int | None = None) -> bool:
  """A tuple/list of ints >= ``low`` (of length ``size`` when given; non-empty otherwise)."""
  return (
    isinstance(v, (tuple, list))
    and (len(v) == size if size is not None else bool(v))
    and all(_int(x, low) for x in v)
  )


def _in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
  def ok(v: Any) -> bool:
    return _real(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

  return ok


def _thresholds(v: Any) -> bool:
  """A non-empty tuple of IoU thresholds in (0, 1]."""
  unit = _in(0, 1, lo_open=True)
  return isinstance(v, (tuple, list)) and bool(v) and all(unit(x) for x in v)


_bool = (lambda v: isinstance(v, bool), "a bool")
_str = (lambda v: isinstance(v, str), "a string")
_path = (lambda v: isinstance(v, str), "a path string ('' for none)")
_pos_int = (lambda v: _int(v, 1), "a positive integer")
_count = (lambda v: _int(v, 0), "an integer >= 0")
_unit = (_in(0, 1), "a number in [0, 1]")
_unit_open = (_in(0, 1, hi_open=True), "in [0, 1)")
_non_negative = (lambda v: _real(v) and v >= 0, "a finite number >= 0")
_positive = (lambda v: _real(v) and v > 0, "> 0 and finite")
_size = (lambda v: not v or _ints(v, 1, 2), "(height, width) positive ints, or ()")


def _choice(options: tuple[str, ...]) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: v in options, f"one of {options}")


def _clip_shape(v: Any) -> bool:
  # C3D's five pools (pool1 keeps time, the others halve it; pools 1-4 halve space, pool5 keeps
  # at least one cell) need 16 frames and 16x16 pixels: the exact bound of models.c3d.
  return _ints(v, 1, 3) and v[0] >= 16 and min(v[1:]) >= 16


MODEL_RULES: tuple[Rule, ...] = (
  ("width_multiplier", _positive[0], "a number > 0 (finite)"),
  ("fc_dim", *_pos_int),
  ("lstm_features", *_pos_int),
  ("lstm_layers", *_pos_int),
  ("dropout_rate", *_unit_open),
  ("dtype", *_choice(d.DTYPES)),
  ("conv_impl", *_choice(d.CONV_IMPLS)),
  ("pool5_padding", *_choice(d.POOL5_PADDINGS)),
  ("clip_shape", lambda v: _ints(v, 1, 3), "3 positive ints (frames, height, width)"),
  ("clip_shape", _clip_shape, "at least (16, 16, 16): smaller clips are too small for C3D's pools"),
  ("in_channels", *_pos_int),
  ("shared_trunk", *_bool),
  ("conv_norm", *_choice(d.CONV_NORMS)),
  ("feature_norm", *_bool),
  ("input_diff", *_bool),
  ("feature_skip", *_bool),
  ("input_norm", *_choice(d.INPUT_NORMS)),
  ("pretrained_c3d", *_path),
)

SEGMENTATION_RULES: tuple[Rule, ...] = (
  ("work_height", lambda v: _int(v, 16), "an integer >= 16"),
  ("graph_height", lambda v: _int(v, 8), "an integer >= 8"),
  ("threads", _count[0], "an integer >= 0 (0: every core, 1 in a worker process)"),
  ("superpixels.n_segments", lambda v: _int(v, 4), "an integer >= 4"),
  ("superpixels.compactness", *_positive),
  ("superpixels.max_num_iter", *_pos_int),
  ("superpixels.min_temporal_overlap", *_unit),
  ("flow.preset", *_choice(d.FLOW_PRESETS)),
  ("flow.finest_scale", *_count),
  ("compensate_exposure", *_bool),
  ("saliency.border", _in(0, 0.5, hi_open=True), "a number in [0, 0.5)"),
  ("saliency.motion_noise", *_non_negative),
  ("saliency.min_motion", *_non_negative),
  ("saliency.background_consistency", *_bool),
  ("saliency.consistency_max_step", lambda v: _int(v, 1), "an integer >= 1"),
  ("saliency.threshold_method", *_choice(d.THRESHOLD_METHODS)),
  ("saliency.threshold_k", lambda v: _real(v), "a finite number"),
  ("saliency.min_threshold", *_unit),
  ("saliency.span_threshold", *_unit),
  ("saliency.seed_fraction", *_unit),
  ("saliency.region_fraction", *_unit),
  ("saliency.region_gap", *_non_negative),
  ("gmm.color_components", *_pos_int),
  ("gmm.bg_color_components", *_pos_int),
  ("gmm.location_components", *_pos_int),
  ("gmm.color_features", *_choice(d.COLOR_FEATURES)),
  ("gmm.max_samples", *_pos_int),
  ("gmm.max_iter", *_pos_int),
  ("gmm.min_samples", *_pos_int),
  ("gmm.seed", *_count),
  ("gmm.prior_power", *_non_negative),
  ("gmm.location_model", *_choice(d.LOCATION_MODELS)),
  ("gmm.location_bandwidth", *_positive),
  ("gmm.location_window", *_count),
  ("gmm.location_time_scale", *_non_negative),
  ("beta", *_unit),
  ("saliency_weight", *_unit),
  ("lambda_spatial", *_non_negative),
  ("lambda_temporal", *_non_negative),
  ("sigma_scale", *_positive),
  ("motion_contrast", *_unit),
  ("max_span_frames", *_pos_int),
  ("max_rounds", *_pos_int),
  ("min_change", *_unit),
  ("refine.enabled", *_bool),
  ("refine.band", *_non_negative),
  ("refine.weight", *_non_negative),
  ("refine.color_weight", *_unit),
  ("refine.chroma_sigma", *_non_negative),
)

DETECTOR_RULES: tuple[Rule, ...] = (
  ("gamma", *_unit_open),
  ("class_assignment", *_choice(d.CLASS_ASSIGNMENTS)),
  ("min_segment_frames", *_pos_int),
  ("nms_iou", *_unit),
  ("max_iterations", *_pos_int),
  ("converged_mask_iou", _in(0, 1, lo_open=True), "a number in (0, 1]"),
  ("initial_saliency_whole_video", *_bool),
  ("batch_size", *_pos_int),
)

EXPERIMENT_RULES: tuple[Rule, ...] = (
  ("seed", lambda v: _int(v) and v < 2**32, "an integer in [0, 2**32)"),
  ("init_from", *_path),
  ("distributed", *_choice(d.DISTRIBUTED_MODES)),
  ("dataset.root", lambda v: isinstance(v, str) and bool(v), "a dataset folder (docs/datasets.md)"),
  ("dataset.tfds_dir", _str[0], "a path string ('' for <workdir>/tfds)"),
  ("dataset.frame_size", *_size),
  ("dataset.chunk_len", *_pos_int),
  ("dataset.encoding", *_choice(d.ENCODINGS)),
  ("clips.window_lengths", lambda v: _ints(v, 16), "a non-empty tuple of window sizes >= 16"),
  ("clips.overlap", *_unit_open),
  ("clips.positive_coverage", _in(0, 1, lo_open=True), "a number in (0, 1]"),
  ("clips.background_coverage", *_unit_open),
  ("clips.seq_len", *_pos_int),
  ("clips.resize", *_size),
  ("clips.flip", *_bool),
  ("clips.color_augment", *_bool),
  ("clips.mask_source", *_choice(d.MASK_SOURCES)),
  ("clips.mask_dir", _str[0], "a path string"),
  ("clips.saliency_workers", _count[0], "an integer >= 0 (0: one per CPU core)"),
  ("clips.saliency_mode", *_choice(d.SALIENCY_MODES)),
  ("clips.background_weight", *_unit),
  ("optimizer.name", *_choice(d.OPTIMIZERS)),
  ("optimizer.learning_rate", *_positive),
  ("optimizer.momentum", *_unit_open),
  ("optimizer.weight_decay", *_non_negative),
  ("optimizer.schedule", *_choice(d.SCHEDULES)),
  (
    "optimizer.step_boundaries",
    lambda v: isinstance(v, (tuple, list)) and all(_in(0, 1)(f) for f in v),
    "a tuple of fractions of num_steps in [0, 1]",
  ),
  ("optimizer.step_factor", *_positive),
  ("optimizer.warmup_steps", *_count),
  ("optimizer.grad_clip_norm", _non_negative[0], "a finite number >= 0 (0: no clipping)"),
  ("train.num_steps", *_pos_int),
  ("train.global_batch_size", *_pos_int),
  ("train.microbatch_size", _count[0], "0 (no split) or a positive integer"),
  ("train.log_every", *_pos_int),
  ("train.checkpoint_every", *_pos_int),
  ("train.keep_checkpoints", *_pos_int),
  ("train.async_checkpoints", *_bool),
  ("data_workers", lambda v: _int(v, -1), "an integer >= -1 (-1: one per host core, 0: none)"),
  ("data_threads", *_count),
  ("data_prefetch", *_count),
  ("evaluation.subset", lambda v: isinstance(v, str) and bool(v), "a subset name"),
  ("evaluation.max_videos", _count[0], "an integer >= 0 (0: every video)"),
  ("evaluation.tious", _thresholds, "a non-empty tuple of tIoU thresholds in (0, 1]"),
  ("evaluation.protocol", *_choice(d.PROTOCOLS)),
  ("evaluation.st_ious", _thresholds, "a non-empty tuple of IoU thresholds in (0, 1]"),
  ("evaluation.workers", *_pos_int),
  ("evaluation.group_size", *_pos_int),
  ("evaluation.report_videos", *_count),
)


def _get(config: Mapping[str, Any], key: str) -> Any:
  for part in key.split("."):
    config = config[part]
  return config


def _apply(config: Mapping[str, Any], rules: tuple[Rule, ...], prefix: str) -> None:
  for key, ok, expected in rules:
    value = _get(config, key)
    if not ok(value):
      raise ConfigError(f"{prefix}{key} must be {expected}, got {value!r}")


def _key_diff(config: Any, schema: Any, prefix: str) -> tuple[list[str], list[str]]:
  """(missing, unknown) dotted keys of ``config`` against ``schema``, at any depth."""
  missing, unknown = [], []
  for key in schema.keys():
    if key not in config:
      missing.append(f"{prefix}{key}")
  for key in config.keys():
    if key not in schema:
      unknown.append(f"{prefix}{key}")
    elif isinstance(schema[key], _DICTS) and isinstance(config[key], _DICTS):
      m, u = _key_diff(config[key], schema[key], f"{prefix}{key}.")
      missing, unknown = missing + m, unknown + u
  return missing, unknown


def _check_keys(config: Mapping[str, Any], schema: Mapping[str, Any], prefix: str, what: str):
  missing, unknown = _key_diff(config, schema, prefix)
  if unknown:
    raise ConfigError(
      f"unknown config keys {unknown}; see segtube_jax/schema/defaults.py for the schema"
    )
  if missing:
    raise ConfigError(f"{what} is missing keys {missing}")


def validate_model(model: Mapping[str, Any], prefix: str = "model.") -> None:
  """Checks a ``model`` section (:func:`schema.defaults.model_config`).

  Raises:
    ConfigError: naming the first missing, unknown or invalid key and what was expected.
  """
  _check_keys(model, d.model_config(), prefix, "model config")
  _apply(model, MODEL_RULES, prefix)
  if model["pretrained_c3d"]:  # The PyTorch C3D has neither per-conv norms nor a 6-channel conv1.
    if model["conv_norm"] != "none":
      raise ConfigError(
        f"{prefix}pretrained_c3d needs {prefix}conv_norm='none' (the Sports-1M C3D has no "
        f"normalisation layers), got {model['conv_norm']!r}"
      )
    if model["input_diff"]:
      raise ConfigError(
        f"{prefix}pretrained_c3d needs {prefix}input_diff=False (the Sports-1M C3D's conv1 "
        "reads 3 RGB channels)"
      )


def validate_segmentation(seg: Mapping[str, Any], prefix: str = "segmentation.") -> None:
  """Checks a ``segmentation`` section (:func:`schema.defaults.segmentation_config`)."""
  _check_keys(seg, d.segmentation_config(), prefix, "segmentation config")
  _apply(seg, SEGMENTATION_RULES, prefix)
  if seg["graph_height"] > seg["work_height"]:
    raise ConfigError(
      f"{prefix}graph_height ({seg['graph_height']}) must be at most {prefix}work_height "
      f"({seg['work_height']})"
    )


def validate_detector(config: Mapping[str, Any]) -> None:
  """Checks ``config.detector`` (Eqs. (1)-(4) and the loop of Sec. 2.3)."""
  if config["detector"].get("class_assignment") == "video":
    raise ConfigError(
      "config.detector.class_assignment='video' was removed: use 'paper' (the paper's rule: one "
      "class k' per video and Eq. (3) over the windows labelled k') or 'segment' (several classes "
      "per video)"
    )
  _apply(config["detector"], DETECTOR_RULES, "config.detector.")


def _cross_checks(config: Mapping[str, Any], num_devices: int | None) -> None:
  """Rules that relate two keys, or a key and the machine."""
  clips, model, train = config["clips"], config["model"], config["train"]
  if not clips["background_coverage"] < clips["positive_coverage"]:
    raise ConfigError(
      f"config.clips.background_coverage ({clips['background_coverage']}) must be below "
      f"config.clips.positive_coverage ({clips['positive_coverage']})"
    )
  crop = tuple(model["clip_shape"][1:])
  resize = clips["resize"]
  if resize and (resize[0] < crop[0] or resize[1] < crop[1]):
    raise ConfigError(
      f"config.clips.resize {tuple(resize)} must be at least the clip size {crop} "
      "(config.model.clip_shape[1:])"
    )
  if clips["mask_source"] == "saliency" and not config["dataset"]["frame_size"]:
    raise ConfigError(
      "config.clips.mask_source='saliency' needs config.dataset.frame_size (the B_o cache "
      "stores masks at the packed frame size)"
    )
  if clips["mask_source"] == "folder" and not clips["mask_dir"]:
    raise ConfigError("config.clips.mask_source='folder' needs config.clips.mask_dir")
  batch, micro = train["global_batch_size"], train["microbatch_size"]
  if num_devices is not None and batch % num_devices:
    raise ConfigError(
      f"config.train.global_batch_size={batch} must be a positive multiple of the "
      f"{num_devices} device(s)"
    )
  per_device = batch // (num_devices or 1)
  if 0 < micro < per_device and per_device % micro:
    raise ConfigError(
      f"config.train.microbatch_size must be 0 (no split) or an integer that divides the "
      f"{per_device} sequences per device (global_batch_size {batch} / {num_devices or 1} "
      f"device(s)), got {micro!r}"
    )


def validate(config: Mapping[str, Any], num_devices: int | None = None) -> None:
  """Checks a whole experiment config before any work; every entry point calls it first.

  Args:
    config: an experiment config (``configs/*.py``, or a workdir's saved experiment).
    num_devices: devices over all processes when training (the global batch must divide
      evenly among them); None skips that check (evaluation, detection).

  Raises:
    ConfigError: naming the first unknown, missing or impossible key and what was expected.
  """
  _check_keys(config, d.experiment_config(), "config.", "config")
  shape = config["model"]["clip_shape"]
  if _ints(shape, 1, 3) and shape[0] != 16:  # Windows are sampled to 16 frames (clips.py).
    raise ConfigError(
      f"config.model.clip_shape[0] (clip length) must be 16 as in C3D, got {shape[0]}"
    )
  validate_model(config["model"], "config.model.")
  _apply(config, EXPERIMENT_RULES, "config.")
  validate_detector(config)
  validate_segmentation(config["segmentation"], "config.segmentation.")
  _cross_checks(config, num_devices)
