"""The C3D 3D ConvNet trunk of the cascaded 3D ConvNets + LSTM networks (Sec. 2.1).

"The 3D ConvNets consists of eight 3D convolution layers, five 3D pooling layers, and two
fully connected layers. The fully-connected 7th layer activation feature is used to represent
the video clip." Layer sizes follow Tran et al.'s C3D (conv1 64, conv2 128, conv3a/b 256,
conv4a/b 512, conv5a/b 512, fc6/fc7 4096); layer names match the PyTorch C3D state dict so
that :mod:`segtube_jax.models.convert` is a rename plus a transpose.

Layout is channels-last: clips are [B, T, H, W, C].
"""

from collections.abc import Sequence
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from segtube_jax.errors import ConfigError
from segtube_jax.models.conv import (
  DEFAULT_CONV_IMPL,
  C3DConv,
  max_pool3d,
  pool5_pad,
  pool_output_size,
)

Array = jax.Array

PAPER_CONV_WIDTHS = (64, 128, 256, 256, 512, 512, 512, 512)
CONV_NAMES = ("conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b")
FC_NAMES = ("fc6", "fc7")
# Pool windows (t, h, w): pool1 keeps time so early layers see motion over all 16 frames.
POOL_WINDOWS = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))
# Index of the last conv before each pool (pools follow conv1, conv2, conv3b, conv4b, conv5b).
POOL_AFTER = {0: 0, 1: 1, 3: 2, 5: 3, 7: 4}


def conv_widths(width_multiplier: float) -> tuple[int, ...]:
  """Conv filter counts for a width multiplier (1.0 is the paper's C3D)."""
  if not width_multiplier > 0:
    raise ConfigError(f"width_multiplier must be > 0, got {width_multiplier!r}")
  return tuple(max(1, int(round(w * width_multiplier))) for w in PAPER_CONV_WIDTHS)


def pool_paddings(
  thw: Sequence[int], pool5_padding: str = "torch"
) -> list[tuple[tuple[int, int], ...]]:
  """Per-pool (t, h, w) padding pairs for an input of ``thw`` frames x height x width."""
  sizes = list(thw)
  pads = []
  for i, window in enumerate(POOL_WINDOWS):
    if i < 4:
      pad = ((0, 0), (0, 0), (0, 0))
    else:  # pool5 pads space only, see conv.pool5_pad.
      pad = ((0, 0), pool5_pad(sizes[1], pool5_padding), pool5_pad(sizes[2], pool5_padding))
    pads.append(pad)
    sizes = [pool_output_size(s, k, p) for s, k, p in zip(sizes, window, pad)]
  return pads


def c3d_pool5_shape(
  clip_shape: Sequence[int], pool5_padding: str = "torch"
) -> tuple[int, int, int]:
  """(T5, H5, W5) of pool5 for clips of ``clip_shape`` = (T, H, W).

  Raises:
    ConfigError: when a clip is too small for the five pools (e.g. fewer than 16 frames).
  """
  if len(clip_shape) != 3:
    raise ConfigError(f"clip_shape must be (frames, height, width), got {tuple(clip_shape)}")
  sizes = [int(s) for s in clip_shape]
  for window, pad in zip(POOL_WINDOWS, pool_paddings(clip_shape, pool5_padding)):
    sizes = [pool_output_size(s, k, p) for s, k, p in zip(sizes, window, pad)]
    if min(sizes) < 1:
      raise ConfigError(
        f"clip_shape {tuple(clip_shape)} is too small for C3D: the five pools need at least "
        "16 frames and 16x16 pixels"
      )
  return tuple(sizes)


class C3D(nn.Module):
  """C3D trunk up to fc7; returns the fc7 activation (ReLU, before dropout) as clip feature.

  At width_multiplier=1, fc_dim=4096 and 16x112x112x3 clips it has exactly 77,995,776
  parameters and pool5 is 1x4x4x512 = 8192 values; fc6's input size follows the actual pool5
  output, so smaller widths and clip sizes give CPU-size variants.

  Attributes:
    width_multiplier: scales the conv widths 64..512.
    fc_dim: width of fc6 and fc7 (4096 in the paper).
    dropout_rate: dropout after fc6 (the caller applies it after fc7, see ``__call__``).
    conv_impl: see ``segtube_jax.models.conv.CONV_IMPLS``.
    pool5_padding: 'torch' or 'caffe', see ``conv.pool5_pad``.
    conv_norm: 'none' (the original C3D) or 'group': GroupNorm after every conv. A plain
      8-conv C3D trained from scratch (no Sports-1M weights) did not learn the synthetic task
      in 600 steps; with GroupNorm the same network trains in minutes on CPU.
    dtype: computation dtype (e.g. jnp.bfloat16); None computes in float32.
    param_dtype: parameter dtype.
  """

  width_multiplier: float = 1.0
  fc_dim: int = 4096
  dropout_rate: float = 0.5
  conv_impl: str = DEFAULT_CONV_IMPL
  pool5_padding: str = "torch"
  conv_norm: str = "none"
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, clips: Array, *, train: bool = False) -> Array:
    """Clip features [B, fc_dim] from clips [B, T, H, W, C].

    Dropout after fc7 is left to the caller so the returned feature is the fc7 activation
    itself; in eval mode (``train=False``) that is all the same.
    """
    if clips.ndim != 5:
      raise ConfigError(f"C3D expects clips [B, T, H, W, C], got shape {clips.shape}")
    pads = pool_paddings(clips.shape[1:4], self.pool5_padding)
    c3d_pool5_shape(clips.shape[1:4], self.pool5_padding)  # raises on too-small clips.
    x = clips.astype(self.dtype or jnp.float32)
    for i, (name, width) in enumerate(zip(CONV_NAMES, conv_widths(self.width_multiplier))):
      x = C3DConv(
        width, conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype, name=name
      )(x)
      if self.conv_norm == "group":
        x = nn.GroupNorm(
          num_groups=max(1, min(32, width // 4)),
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name=f"{name}_norm",
        )(x)
      x = nn.relu(x)
      if i in POOL_AFTER:
        p = POOL_AFTER[i]
        x = max_pool3d(x, POOL_WINDOWS[p], pads[p])
    # Channels-last flatten: (T, H, W, C) order (the converter permutes PyTorch's (C, T, H, W)).
    x = x.reshape(x.shape[0], -1)
    dense = functools.partial(
      nn.Dense,
      self.fc_dim,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      kernel_init=nn.initializers.he_normal(),
    )
    x = nn.relu(dense(name="fc6")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.relu(dense(name="fc7")(x))
