"""The networks of Sec. 2.1 built from a ``config.model`` section: the one place that reads it.

The section's defaults are :func:`segtube_jax.schema.model_config` (paper size) and
``schema.tiny_model_config`` (CPU size); ``build_model(cfg, num_outputs)`` validates the section
(``schema.validate_model``) and returns the network.
"""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from segtube_jax import schema
from segtube_jax.errors import ConfigError
from segtube_jax.models.networks import ClipSequenceNetwork, TwoHeadNetwork

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  # Keys: schema.defaults.DTYPES.


def _trunk_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
  schema.validate_model(cfg)
  return dict(
    width_multiplier=float(cfg["width_multiplier"]),
    fc_dim=cfg["fc_dim"],
    lstm_features=cfg["lstm_features"],
    lstm_layers=cfg["lstm_layers"],
    dropout_rate=float(cfg["dropout_rate"]),
    conv_impl=cfg["conv_impl"],
    pool5_padding=cfg["pool5_padding"],
    feature_norm=cfg["feature_norm"],
    input_diff=cfg["input_diff"],
    feature_skip=cfg["feature_skip"],
    conv_norm=cfg["conv_norm"],
    dtype=None if cfg["dtype"] == "float32" else DTYPES[cfg["dtype"]],
  )


def build_model(model_config: Mapping[str, Any], num_outputs: int) -> ClipSequenceNetwork:
  """A validated :class:`ClipSequenceNetwork` with ``num_outputs`` logits per clip."""
  if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 2:
    raise ConfigError(f"num_outputs must be an integer >= 2, got {num_outputs!r}")
  return ClipSequenceNetwork(num_outputs=num_outputs, **_trunk_kwargs(model_config))


def build_proposal_network(model_config: Mapping[str, Any]) -> ClipSequenceNetwork:
  """Class-agnostic proposal network, 2 outputs [no action, action] (Eq. (1))."""
  return build_model(model_config, 2)


def build_classification_network(
  model_config: Mapping[str, Any], num_classes: int
) -> ClipSequenceNetwork:
  """Classification network over K = num_classes actions + background 0 (Eq. (2))."""
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
  return build_model(model_config, num_classes + 1)


def build_two_head_network(model_config: Mapping[str, Any], num_classes: int) -> TwoHeadNetwork:
  """Shared-trunk network returning (proposal_logits, class_logits); for shared_trunk=True."""
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
  return TwoHeadNetwork(num_classes=num_classes, **_trunk_kwargs(model_config))


def input_shape(model_config: Mapping[str, Any], batch_size: int, seq_len: int) -> tuple[int, ...]:
  """Network input shape [B, S, T, H, W, C] for a config (e.g. for init with zeros)."""
  t, h, w = model_config["clip_shape"]
  return (batch_size, seq_len, t, h, w, model_config["in_channels"])
