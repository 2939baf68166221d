"""Model configs (ml_collections) and constructors for the Sec. 2.1 networks.

``default_model_config()`` is the paper-size model (C3D 64..512 filters, fc 4096, 2x256
peephole LSTM, 16x112x112 clips); ``tiny_model_config()`` a CPU-size variant for demos and
tests. ``build_model(cfg, num_outputs)`` validates the config and returns the network.
"""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_collections

from segtube_jax.errors import ConfigError
from segtube_jax.models.c3d import c3d_pool5_shape
from segtube_jax.models.conv import CONV_IMPLS, DEFAULT_CONV_IMPL, POOL5_PADDINGS
from segtube_jax.models.networks import ClipSequenceNetwork, TwoHeadNetwork

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
INPUT_NORMS = ("kinetics", "c3d_sports1m")  # As training.steps.normalize_clips.


def default_model_config() -> ml_collections.ConfigDict:
  """Paper-size model config (Sec. 2.1).

  Fields:
    width_multiplier: C3D conv width scale (1.0: 64, 128, 256, 256, 512 x4).
    fc_dim: fc6/fc7 width (4096).
    lstm_features: hidden units per peephole LSTM layer (256).
    lstm_layers: LSTM depth (2).
    dropout_rate: after fc6 and fc7 (0.5).
    dtype: trunk computation dtype, 'float32' or 'bfloat16' (params always float32).
    conv_impl: 3x3x3 conv implementation, one of ``conv.CONV_IMPLS`` (speed only).
    pool5_padding: 'torch' (PyTorch C3D, needed for its Sports-1M weights) or 'caffe'.
    clip_shape: (frames, height, width) of one input clip (16, 112, 112).
    in_channels: input channels (3, RGB).
    shared_trunk: use one C3D for both proposal and classification heads (TwoHeadNetwork)
      instead of two separate networks as in the paper.
    conv_norm: 'none' (original C3D, needed for Sports-1M weights) or 'group' (GroupNorm
      after every conv: lets a C3D trained from scratch learn; see C3D).
    feature_norm: layer-normalise the fc7 features before the LSTM. Without it, fc7
      activations of a C3D trained from scratch grow to hundreds within a few hundred steps,
      saturate the LSTM gates and the networks collapse to a constant prediction.
    input_diff: append frame differences to the RGB input (6 input channels to conv1), see
      ``networks.frame_differences``. Not compatible with Sports-1M C3D weights.
    feature_skip: add a linear path from the (normalised) fc7 feature to the logits beside
      the LSTM's (see ``networks._SequenceHead``); False is the paper's head.
    input_norm: how uint8 RGB clips become network input (``training.steps.normalize_clips``):
      'kinetics' (RGB / 255, minus the Kinetics mean, divided by its std) or 'c3d_sports1m'
      (BGR, 0..255 minus the Sports-1M channel means, unscaled: what the Sports-1M C3D
      weights expect, see ``pretrained_c3d``).
    pretrained_c3d: '' or a path to Sports-1M C3D weights that initialise the C3D trunk of both
      networks (the shared trunk with ``shared_trunk``) of a new training run: a PyTorch state
      dict (DavideA/c3d-pytorch's ``c3d.pickle`` layout: conv1..conv5b, fc6, fc7, fc8
      ``.weight``/``.bias``; ``.pickle``/``.pkl``/``.pth``/``.pt``, read with torch, which the
      project does not require) or an ``.npz`` of the same arrays under the same keys, written
      without torch by ``python -m segtube_jax.models.convert --torch c3d.pickle --out
      c3d.npz`` on a machine with torch. fc8 is ignored. A run resuming from its workdir's own
      checkpoint ignores it; with ``init_from`` as well, the trunk is loaded first and
      ``init_from`` then overwrites every parameter it has (see training/trainer.py).
      The weights fix the trunk: width_multiplier 1.0, fc_dim 4096, in_channels 3,
      clip_shape (16, 112, 112), pool5_padding 'torch', conv_norm 'none', input_diff False
      (checked before anything compiles). Their input (models/convert.py has the sources):
      16 frames resized to 128x171 and cropped to 112x112 (dataset.frame_size and clips.resize
      (128, 171), the defaults), BGR, values 0..255 minus the Sports-1M mean (B 90.25,
      G 97.66, R 101.41), not rescaled: set ``input_norm='c3d_sports1m'`` with them.
  """
  cfg = ml_collections.ConfigDict()
  cfg.width_multiplier = 1.0
  cfg.fc_dim = 4096
  cfg.lstm_features = 256
  cfg.lstm_layers = 2
  cfg.dropout_rate = 0.5
  cfg.dtype = "float32"
  cfg.conv_impl = DEFAULT_CONV_IMPL
  cfg.pool5_padding = "torch"
  cfg.clip_shape = (16, 112, 112)
  cfg.in_channels = 3
  cfg.shared_trunk = False
  cfg.feature_norm = True
  cfg.conv_norm = "none"
  cfg.input_diff = False
  cfg.feature_skip = False
  cfg.input_norm = "kinetics"
  cfg.pretrained_c3d = ""
  return cfg


def tiny_model_config() -> ml_collections.ConfigDict:
  """CPU-size variant: conv widths / 8 (8..64), fc 512, LSTM 64, 16x32x32 clips."""
  cfg = default_model_config()
  cfg.width_multiplier = 0.125
  cfg.fc_dim = 512
  cfg.lstm_features = 64
  cfg.clip_shape = (16, 32, 32)
  return cfg


def _positive_int(cfg: Mapping[str, Any], key: str) -> int:
  value = cfg[key]
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")
  return value


def _choice(cfg: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
  if cfg[key] not in choices:
    raise ConfigError(f"model.{key} must be one of {choices}, got {cfg[key]!r}")
  return cfg[key]


def validate_model_config(cfg: Mapping[str, Any]) -> None:
  """Checks every field of a model config (see ``default_model_config``).

  Raises:
    ConfigError: naming the first missing, unknown or invalid key and what was expected.
  """
  known = set(default_model_config().keys())
  given = set(cfg.keys())
  if known - given:
    raise ConfigError(f"model config is missing keys {sorted(known - given)}")
  if given - known:
    raise ConfigError(
      f"model config has unknown keys {sorted(given - known)}; known keys: {sorted(known)}"
    )
  wm = cfg["width_multiplier"]
  if isinstance(wm, bool) or not isinstance(wm, (int, float)) or not 0 < wm < float("inf"):
    raise ConfigError(f"model.width_multiplier must be a number > 0 (finite), got {wm!r}")
  for key in ("fc_dim", "lstm_features", "lstm_layers", "in_channels"):
    _positive_int(cfg, key)
  rate = cfg["dropout_rate"]
  if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
    raise ConfigError(f"model.dropout_rate must be in [0, 1), got {rate!r}")
  _choice(cfg, "dtype", tuple(DTYPES))
  _choice(cfg, "conv_impl", CONV_IMPLS)
  _choice(cfg, "pool5_padding", POOL5_PADDINGS)
  _choice(cfg, "conv_norm", ("none", "group"))
  shape = cfg["clip_shape"]
  if (
    not isinstance(shape, (tuple, list))
    or len(shape) != 3
    or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
  ):
    raise ConfigError(
      f"model.clip_shape must be 3 positive ints (frames, height, width), got {shape!r}"
    )
  try:
    c3d_pool5_shape(shape, cfg["pool5_padding"])
  except ConfigError as e:
    raise ConfigError(f"model.clip_shape: {e}") from None
  for key in ("shared_trunk", "feature_norm", "input_diff", "feature_skip"):
    if not isinstance(cfg[key], bool):
      raise ConfigError(f"model.{key} must be a bool, got {cfg[key]!r}")
  _choice(cfg, "input_norm", INPUT_NORMS)
  if not isinstance(cfg["pretrained_c3d"], str):
    raise ConfigError(
      f"model.pretrained_c3d must be a path string ('' for none), got {cfg['pretrained_c3d']!r}"
    )
  if cfg["pretrained_c3d"]:
    # The PyTorch C3D has neither per-conv norms nor a 6-channel conv1.
    if cfg["conv_norm"] != "none":
      raise ConfigError(
        f"model.pretrained_c3d needs model.conv_norm='none' (the Sports-1M C3D "
        f"has no normalisation layers), got {cfg['conv_norm']!r}"
      )
    if cfg["input_diff"]:
      raise ConfigError(
        "model.pretrained_c3d needs model.input_diff=False (the Sports-1M "
        "C3D's conv1 reads 3 RGB channels)"
      )


def _trunk_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
  validate_model_config(cfg)
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
