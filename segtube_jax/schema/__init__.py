"""The experiment config schema: every default (``defaults``) and the one validator (``checks``)."""

from segtube_jax.schema.checks import (
  validate,
  validate_detector,
  validate_model,
  validate_segmentation,
)
from segtube_jax.schema.defaults import (
  experiment_config,
  model_config,
  segmentation_config,
  tiny_model_config,
)

__all__ = [
  "experiment_config",
  "model_config",
  "segmentation_config",
  "tiny_model_config",
  "validate",
  "validate_detector",
  "validate_model",
  "validate_segmentation",
]
