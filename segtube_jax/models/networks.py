"""Proposal and classification networks: C3D + 2-layer peephole LSTM + linear head (Sec. 2.1).

The LSTM runs across the clips of one video ordered by start frame, so networks take clip
batches [B, S, T, H, W, C] (B sequences of S consecutive clips) and return per-clip logits
[B, S, num_outputs]. The proposal network has 2 outputs (p_pro(1), p_pro(0) -> Eq. (1)); the
classification network has K+1 (class 0 is background -> Eq. (2)).

Logit column convention: column j holds the score of label j, so proposal column 1 is
"contains an action" and column 0 "no action"; classification column 0 is background.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from segtube_jax.errors import ConfigError
from segtube_jax.models.c3d import C3D
from segtube_jax.models.conv import DEFAULT_CONV_IMPL
from segtube_jax.models.lstm import StackedPeepholeLSTM

Array = jax.Array


def frame_differences(clips: Array) -> Array:
  """Appends temporal differences x_t - x_{t-1} (0 for the first frame) as extra channels.

  [..., T, H, W, C] -> [..., T, H, W, 2C]. An RGB-difference stream in the manner of TSN
  (Wang et al. 2016): it hands a from-scratch network the motion directly, so it cannot
  fall back on memorising appearance when classes differ only by how things move.
  """
  previous = jnp.concatenate([clips[..., :1, :, :, :], clips[..., :-1, :, :, :]], axis=-4)
  return jnp.concatenate([clips, clips - previous], axis=-1)


def _trunk_features(module: nn.Module, clips: Array, train: bool) -> Array:
  """Per-clip fc7 features [B, S, fc_dim] (float32) of the C3D trunk named 'c3d' in ``module``."""
  flat, b, s = _clips_to_batch(clips)
  if module.input_diff:
    flat = frame_differences(flat)
  feats = C3D(
    width_multiplier=module.width_multiplier,
    fc_dim=module.fc_dim,
    dropout_rate=module.dropout_rate,
    conv_impl=module.conv_impl,
    pool5_padding=module.pool5_padding,
    conv_norm=module.conv_norm,
    dtype=module.dtype,
    param_dtype=module.param_dtype,
    name="c3d",
  )(flat, train=train)
  return feats.astype(jnp.float32).reshape(b, s, -1)


def _clips_to_batch(clips: Array) -> tuple[Array, int, int]:
  if clips.ndim != 6:
    raise ConfigError(f"networks expect clips [B, S, T, H, W, C], got shape {clips.shape}")
  b, s = clips.shape[:2]
  return clips.reshape(b * s, *clips.shape[2:]), b, s


class _SequenceHead(nn.Module):
  """Dropout(fc7) -> stacked peephole LSTM -> Dense(num_outputs), in float32."""

  num_outputs: int
  lstm_features: int
  lstm_layers: int
  dropout_rate: float
  feature_norm: bool = True
  feature_skip: bool = False
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: Array, *, train: bool) -> Array:
    if self.feature_norm:
      # fc7 of a from-scratch C3D grows without bound; unnormalised it saturates the gates.
      features = nn.LayerNorm(param_dtype=self.param_dtype, name="feature_norm")(features)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    # The recurrence and logits stay float32 even with a bfloat16 trunk: they are cheap and
    # rounding would accumulate over the sequence.
    h = StackedPeepholeLSTM(
      self.lstm_features, self.lstm_layers, param_dtype=self.param_dtype, name="lstm"
    )(x.astype(jnp.float32))
    logits = nn.Dense(self.num_outputs, param_dtype=self.param_dtype, name="logits")(h)
    if self.feature_skip:
      # A linear path from the clip feature to the logits, beside the LSTM's: trained from
      # scratch, gated LSTM outputs start near zero and the whole network learned slowly or
      # not at all on CPU budgets; with the skip the LSTM only has to add temporal context.
      logits = logits + nn.Dense(
        self.num_outputs, param_dtype=self.param_dtype, name="skip_logits"
      )(x)
    return logits


class ClipSequenceNetwork(nn.Module):
  """C3D trunk + peephole LSTM over the clip sequence + (num_outputs)-way linear head.

  Parameters live under ``c3d`` (see :class:`C3D`) and ``head`` (``lstm/layer{i}/cell`` and
  ``logits``).

  Attributes:
    num_outputs: 2 for the proposal network, K+1 for the classification network.
    width_multiplier, fc_dim, conv_impl, pool5_padding, dtype: of the C3D trunk.
    lstm_features: hidden units per LSTM layer (256).
    lstm_layers: LSTM depth (2).
    dropout_rate: after fc6 and fc7 (0.5).
    input_diff: feed the trunk RGB plus frame differences (see :func:`frame_differences`).
    param_dtype: parameter dtype.
  """

  num_outputs: int
  width_multiplier: float = 1.0
  fc_dim: int = 4096
  lstm_features: int = 256
  lstm_layers: int = 2
  dropout_rate: float = 0.5
  conv_impl: str = DEFAULT_CONV_IMPL
  pool5_padding: str = "torch"
  conv_norm: str = "none"
  feature_norm: bool = True
  input_diff: bool = False
  feature_skip: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self, clips: Array, *, train: bool = False, return_features: bool = False
  ) -> Array | tuple[Array, Array]:
    """Logits [B, S, num_outputs] (and fc7 features [B, S, fc_dim] if return_features).

    Args:
      clips: [B, S, T, H, W, C], the S clips of each sequence ordered by start frame.
      train: enables dropout (needs a 'dropout' rng).
      return_features: also return the per-clip fc7 activations (float32).
    """
    feats = _trunk_features(self, clips, train)
    logits = _SequenceHead(
      self.num_outputs,
      self.lstm_features,
      self.lstm_layers,
      self.dropout_rate,
      self.feature_norm,
      self.feature_skip,
      self.param_dtype,
      name="head",
    )(feats, train=train)
    return (logits, feats) if return_features else logits


class TwoHeadNetwork(nn.Module):
  """Shared-trunk variant: one C3D feeding a proposal and a classification LSTM head.

  Parameters live under ``c3d``, ``proposal_head`` and ``classification_head``.

  Attributes:
    num_classes: K (the classification head has K+1 outputs, class 0 background).
    other attributes: as :class:`ClipSequenceNetwork`.
  """

  num_classes: int
  width_multiplier: float = 1.0
  fc_dim: int = 4096
  lstm_features: int = 256
  lstm_layers: int = 2
  dropout_rate: float = 0.5
  conv_impl: str = DEFAULT_CONV_IMPL
  pool5_padding: str = "torch"
  conv_norm: str = "none"
  feature_norm: bool = True
  input_diff: bool = False
  feature_skip: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self, clips: Array, *, train: bool = False, return_features: bool = False
  ) -> tuple[Array, Array] | tuple[Array, Array, Array]:
    """(proposal_logits [B,S,2], class_logits [B,S,K+1][, fc7 features [B,S,fc_dim]])."""
    feats = _trunk_features(self, clips, train)
    head = functools.partial(
      _SequenceHead,
      lstm_features=self.lstm_features,
      lstm_layers=self.lstm_layers,
      dropout_rate=self.dropout_rate,
      feature_norm=self.feature_norm,
      feature_skip=self.feature_skip,
      param_dtype=self.param_dtype,
    )
    proposal = head(2, name="proposal_head")(feats, train=train)
    classification = head(self.num_classes + 1, name="classification_head")(feats, train=train)
    if return_features:
      return proposal, classification, feats
    return proposal, classification


def ProposalNetwork(**kwargs: Any) -> ClipSequenceNetwork:  # pylint: disable=invalid-name
  """The class-agnostic proposal network: a ClipSequenceNetwork with 2 outputs (Eq. (1)).

  Args:
    **kwargs: ClipSequenceNetwork attributes other than num_outputs.
  """
  return ClipSequenceNetwork(num_outputs=2, **kwargs)


def ClassificationNetwork(
  num_classes: int,
  **kwargs: Any,  # pylint: disable=invalid-name
) -> ClipSequenceNetwork:
  """The classification network: K = num_classes actions + background 0 (Eq. (2)).

  Args:
    num_classes: K.
    **kwargs: ClipSequenceNetwork attributes other than num_outputs.
  """
  if num_classes < 1:
    raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
  return ClipSequenceNetwork(num_outputs=num_classes + 1, **kwargs)
