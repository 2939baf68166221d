"""3x3x3 convolution and max-pooling building blocks of the C3D trunk (Sec. 2.1).

XLA's CPU conv3d is slow, so the 3x3x3 / stride 1 / SAME convolution is offered in several
mathematically identical forms. All of them read the SAME parameters (``kernel`` shaped
[3, 3, 3, Cin, Cout] in (t, h, w, in, out) order and ``bias`` shaped [Cout]), so weights are
interchangeable and ``conv_impl`` is a pure speed knob:

* ``'conv3d'``: one ``lax.conv_general_dilated`` over NDHWC (the reference).
* ``'temporal_stack'``: the frames t-1, t, t+1 are stacked on the channel axis and one 2D
  3x3 conv with 3*Cin input channels runs over all B*T frames.
* ``'sum2d'``: three 2D 3x3 convs (one per temporal tap) over shifted frame stacks, summed.
* ``'out_stack'``: one 2D conv producing the three temporal taps as 3*Cout output channels,
  which are then shifted in time and summed.

``bench/conv3d.py`` measures them in the whole network; the default is the fastest on CPU.
GPUs have native 3D convs (cuDNN), so re-run the bench there before relying on the default.
"""

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from segtube_jax.errors import ConfigError

Array = jax.Array

CONV_IMPLS = ('conv3d', 'temporal_stack', 'sum2d', 'out_stack')
# Fastest in bench/conv3d.py (whole tiny network, fwd+bwd+SGD, 8 clips, 2-core CPU): 86 vs 27
# clips/s for conv3d at 16x32x32 and 9.1 vs 4.1 at 16x64x64 (sum2d 42/5.4, out_stack 58/8.1).
DEFAULT_CONV_IMPL = 'temporal_stack'
POOL5_PADDINGS = ('torch', 'caffe')

_DN_2D = ('NHWC', 'HWIO', 'NHWC')
_DN_3D = ('NDHWC', 'DHWIO', 'NDHWC')


def _check_impl(conv_impl: str) -> None:
  if conv_impl not in CONV_IMPLS:
    raise ConfigError(f'conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}')


def _conv2d_frames(frames: Array, kernel2d: Array, precision: Any) -> Array:
  """SAME 3x3 2D conv of [B, T, H, W, C] frames, batched over B*T."""
  b, t, h, w, c = frames.shape
  y = lax.conv_general_dilated(
      frames.reshape(b * t, h, w, c), kernel2d, (1, 1), 'SAME',
      dimension_numbers=_DN_2D, precision=precision)
  return y.reshape(b, t, h, w, y.shape[-1])


def _pad_time(x: Array) -> Array:
  """Zero-pads axis 1 (time) by one frame on each side."""
  return jnp.pad(x, ((0, 0), (1, 1)) + ((0, 0),) * (x.ndim - 2))


def conv3x3x3(x: Array, kernel: Array, conv_impl: str = DEFAULT_CONV_IMPL,
              precision: Any = None) -> Array:
  """3x3x3, stride 1, zero-padded SAME cross-correlation (no bias).

  Args:
    x: input [B, T, H, W, Cin].
    kernel: weights [3, 3, 3, Cin, Cout] in (t, h, w, in, out) order.
    conv_impl: one of ``CONV_IMPLS``; all give the same result up to float rounding.
    precision: forwarded to the XLA convolutions.

  Returns:
    The output [B, T, H, W, Cout].
  """
  _check_impl(conv_impl)
  if x.ndim != 5 or kernel.shape[:3] != (3, 3, 3) or kernel.shape[3] != x.shape[-1]:
    raise ValueError(f'conv3x3x3 expects x [B,T,H,W,C] and kernel [3,3,3,C,Cout], got '
                     f'{x.shape} and {kernel.shape}')
  t = x.shape[1]
  cin, cout = kernel.shape[3], kernel.shape[4]
  if conv_impl == 'conv3d':
    return lax.conv_general_dilated(x, kernel, (1, 1, 1), 'SAME', dimension_numbers=_DN_3D,
                                    precision=precision)
  if conv_impl == 'temporal_stack':
    xp = _pad_time(x)
    # Channel index dt*Cin + c matches the (t, in) -> t*Cin + in reshape of the kernel below.
    stacked = jnp.concatenate([xp[:, dt:dt + t] for dt in range(3)], axis=-1)
    kernel2d = kernel.transpose(1, 2, 0, 3, 4).reshape(3, 3, 3 * cin, cout)
    return _conv2d_frames(stacked, kernel2d, precision)
  if conv_impl == 'sum2d':
    xp = _pad_time(x)
    return sum(_conv2d_frames(xp[:, dt:dt + t], kernel[dt], precision) for dt in range(3))
  # out_stack: taps on the output axis; output frame t sums tap dt of input frame t + dt - 1.
  kernel2d = kernel.transpose(1, 2, 3, 0, 4).reshape(3, 3, cin, 3 * cout)
  z = _conv2d_frames(x, kernel2d, precision)
  z = _pad_time(z.reshape(*z.shape[:4], 3, cout))
  return sum(z[:, dt:dt + t, :, :, dt] for dt in range(3))


class C3DConv(nn.Module):
  """3x3x3 conv + bias with a selectable, parameter-compatible implementation.

  Attributes:
    features: number of output channels Cout.
    conv_impl: one of ``CONV_IMPLS``.
    dtype: computation dtype (None: float32 / input dtype); params stay ``param_dtype``.
    param_dtype: dtype of ``kernel`` [3, 3, 3, Cin, Cout] and ``bias`` [Cout].
    kernel_init: kernel initialiser (He normal: the layers are followed by ReLU).
    bias_init: bias initialiser.
  """

  features: int
  conv_impl: str = DEFAULT_CONV_IMPL
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable[..., Array] = nn.initializers.he_normal()
  bias_init: Callable[..., Array] = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Applies the convolution to x [B, T, H, W, Cin] -> [B, T, H, W, Cout]."""
    kernel = self.param('kernel', self.kernel_init, (3, 3, 3, x.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv3x3x3(x, kernel, self.conv_impl) + bias


def pool_output_size(size: int, window: int, pad: tuple[int, int]) -> int:
  """Floor-mode pooling output length (window == stride) after padding ``pad``."""
  return (size + pad[0] + pad[1] - window) // window + 1


def pool5_pad(size: int, pool5_padding: str) -> tuple[int, int]:
  """Spatial padding of pool5 (2x2 window, stride 2) along one axis of length ``size``.

  ``'torch'`` copies the widely used PyTorch C3D (``MaxPool3d(..., padding=(0, 1, 1))``: one
  -inf row on BOTH sides, floor mode; 7 -> 4 with windows [pad,0], [1,2], [3,4], [5,6]).
  ``'caffe'`` copies the original Caffe C3D (ceil mode, i.e. padding at the end only; 7 -> 4
  with windows [0,1], [2,3], [4,5], [6,pad]). Use ``'torch'`` with weights from the PyTorch
  port, since its fc6 was used with that alignment.
  """
  if pool5_padding == 'torch':
    return (1, 1)
  if pool5_padding == 'caffe':
    out = -(-max(size - 2, 0) // 2) + 1
    return (0, max((out - 1) * 2 + 2 - size, 0))
  raise ConfigError(f'pool5_padding must be one of {POOL5_PADDINGS}, got {pool5_padding!r}')


def max_pool3d(x: Array, window: Sequence[int],
               padding: Sequence[tuple[int, int]] = ((0, 0), (0, 0), (0, 0))) -> Array:
  """Max-pool [B, T, H, W, C] with stride == window; padding cells are -inf (as PyTorch)."""
  # nn.max_pool pads with the reduction's init value, -inf, so pads never win the max.
  return nn.max_pool(x, tuple(window), strides=tuple(window), padding=tuple(padding))
