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
* ``'im2col'``: the 27 shifted copies of the input stacked on the channel axis, then one
  matmul with the [27*Cin, Cout] kernel. 27x the input's memory, so only for tiny frames.
* ``'auto'``: ``'temporal_stack'``, except ``'im2col'`` for frames of at most
  ``IM2COL_MAX_PIXELS`` pixels (conv5a/b of 32x32 clips), where a conv call's fixed cost
  dominates.

``bench/conv3d.py`` measures them in the whole network; the default is the fastest on CPU.
It is also the fastest measured on a GPU: the paper-size train step on one H200 in bfloat16 ran
944 clips/s with ``'auto'`` (``'temporal_stack'`` at that size) against 549 with ``'conv3d'``
(cuDNN), ``bench/accelerator.py``.
"""

from collections.abc import Callable, Sequence
import functools
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from segtube_jax.errors import ConfigError
from segtube_jax.schema.defaults import CONV_IMPLS, DEFAULT_CONV_IMPL, POOL5_PADDINGS

Array = jax.Array

# DEFAULT_CONV_IMPL is fastest in bench/conv3d.py (whole tiny network, fwd+bwd+SGD, 8 clips, 2-core CPU): 86 vs 27
# clips/s for conv3d at 16x32x32 and 9.1 vs 4.1 at 16x64x64 (sum2d 42/5.4, out_stack 58/8.1).
# 'auto' adds im2col for the 2x2 frames of conv5a/b: the demo train step (both networks, 32
# clips, shared 2-core CPU) ran 48.7 vs 45.3 clips/s, median of 8 interleaved repeats (all 8
# faster); see bench/train_step.py.
# Frames of at most this many pixels use 'im2col' under 'auto'. A 2x2 conv5 layer (32 clips x
# 2 frames x 64 channels) ran fwd+bwd in 2.3 ms as im2col vs 8.6 ms as temporal_stack; at 4x4
# im2col was already slower (12.4 vs 7.9 ms).
IM2COL_MAX_PIXELS = 4

_DN_2D = ("NHWC", "HWIO", "NHWC")
_DN_3D = ("NDHWC", "DHWIO", "NDHWC")


def _check_impl(conv_impl: str) -> None:
  if conv_impl not in CONV_IMPLS:
    raise ConfigError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")


def _conv2d_frames(frames: Array, kernel2d: Array, precision: Any) -> Array:
  """SAME 3x3 2D conv of [B, T, H, W, C] frames, batched over B*T."""
  b, t, h, w, c = frames.shape
  y = lax.conv_general_dilated(
    frames.reshape(b * t, h, w, c),
    kernel2d,
    (1, 1),
    "SAME",
    dimension_numbers=_DN_2D,
    precision=precision,
  )
  return y.reshape(b, t, h, w, y.shape[-1])


def _pad_time(x: Array) -> Array:
  """Zero-pads axis 1 (time) by one frame on each side."""
  return jnp.pad(x, ((0, 0), (1, 1)) + ((0, 0),) * (x.ndim - 2))


def conv3x3x3(
  x: Array, kernel: Array, conv_impl: str = DEFAULT_CONV_IMPL, precision: Any = None
) -> Array:
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
    raise ValueError(
      f"conv3x3x3 expects x [B,T,H,W,C] and kernel [3,3,3,C,Cout], got {x.shape} and {kernel.shape}"
    )
  t = x.shape[1]
  cin, cout = kernel.shape[3], kernel.shape[4]
  if conv_impl == "conv3d":
    return lax.conv_general_dilated(
      x, kernel, (1, 1, 1), "SAME", dimension_numbers=_DN_3D, precision=precision
    )
  if conv_impl == "auto":
    conv_impl = "im2col" if x.shape[2] * x.shape[3] <= IM2COL_MAX_PIXELS else "temporal_stack"
  if conv_impl == "im2col":
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[2:4]
    # Channel index ((dt*3 + dh)*3 + dw)*Cin + c matches the row-major kernel reshape below.
    patches = jnp.concatenate(
      [
        xp[:, dt : dt + t, dh : dh + h, dw : dw + w]
        for dt in range(3)
        for dh in range(3)
        for dw in range(3)
      ],
      axis=-1,
    )
    return lax.dot_general(
      patches, kernel.reshape(27 * cin, cout), (((4,), (0,)), ((), ())), precision=precision
    )
  if conv_impl == "temporal_stack":
    xp = _pad_time(x)
    # Channel index dt*Cin + c matches the (t, in) -> t*Cin + in reshape of the kernel below.
    stacked = jnp.concatenate([xp[:, dt : dt + t] for dt in range(3)], axis=-1)
    kernel2d = kernel.transpose(1, 2, 0, 3, 4).reshape(3, 3, 3 * cin, cout)
    return _conv2d_frames(stacked, kernel2d, precision)
  if conv_impl == "sum2d":
    xp = _pad_time(x)
    return sum(_conv2d_frames(xp[:, dt : dt + t], kernel[dt], precision) for dt in range(3))
  # out_stack: taps on the output axis; output frame t sums tap dt of input frame t + dt - 1.
  kernel2d = kernel.transpose(1, 2, 3, 0, 4).reshape(3, 3, cin, 3 * cout)
  z = _conv2d_frames(x, kernel2d, precision)
  z = _pad_time(z.reshape(*z.shape[:4], 3, cout))
  return sum(z[:, dt : dt + t, :, :, dt] for dt in range(3))


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
    kernel = self.param(
      "kernel", self.kernel_init, (3, 3, 3, x.shape[-1], self.features), self.param_dtype
    )
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
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
  if pool5_padding == "torch":
    return (1, 1)
  if pool5_padding == "caffe":
    out = -(-max(size - 2, 0) // 2) + 1
    return (0, max((out - 1) * 2 + 2 - size, 0))
  raise ConfigError(f"pool5_padding must be one of {POOL5_PADDINGS}, got {pool5_padding!r}")


def _pool_windows(x: Array, window: tuple[int, ...], padding: tuple[tuple[int, int], ...]) -> Array:
  """[B, T, H, W, C] -> [B, T', kt, H', kh, W', kw, C]: the pool windows as separate axes.

  Pads with -inf (so pads never win the max, as in PyTorch) and drops the cells past the last
  full window (floor mode), like ``reduce_window`` with stride == window.
  """
  b, c = x.shape[0], x.shape[-1]
  out = [pool_output_size(s, k, p) for s, k, p in zip(x.shape[1:4], window, padding)]
  x = jnp.pad(x, ((0, 0),) + padding + ((0, 0),), constant_values=-jnp.inf)
  x = x[:, : out[0] * window[0], : out[1] * window[1], : out[2] * window[2]]
  return x.reshape(b, out[0], window[0], out[1], window[1], out[2], window[2], c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool_nonoverlapping(
  x: Array, window: tuple[int, ...], padding: tuple[tuple[int, int], ...]
) -> Array:
  return _pool_windows(x, window, padding).max(axis=(2, 4, 6))


def _max_pool_fwd(
  x: Array, window: tuple[int, ...], padding: tuple[tuple[int, int], ...]
) -> tuple[Array, tuple[Array, Array]]:
  y = _max_pool_nonoverlapping(x, window, padding)
  return y, (x, y)


def _max_pool_bwd(
  window: tuple[int, ...], padding: tuple[tuple[int, int], ...], res: tuple[Array, Array], g: Array
) -> tuple[Array]:
  """Routes each output gradient to the FIRST maximum of its window (row-major order).

  That is exactly what XLA's select_and_scatter (the autodiff of reduce_window max) does, so
  gradients are bit-identical to ``nn.max_pool``'s, including ties (e.g. equal activations).
  XLA:CPU lowers select_and_scatter through full-size int32 iota index tensors, which made the
  pool backward ~40% of the whole tiny-model train step; this is a handful of fused
  elementwise passes instead.
  """
  x, y = res
  view = _pool_windows(x, window, padding)
  taken = jnp.zeros(y.shape, bool)
  taps = []
  for i in range(window[0]):
    for j in range(window[1]):
      for k in range(window[2]):
        hit = view[:, :, i, :, j, :, k, :] == y
        taps.append(jnp.where(hit & ~taken, g, jnp.zeros_like(g)))
        taken = taken | hit
  b, (t5, h5, w5), c = y.shape[0], y.shape[1:4], y.shape[-1]
  dview = jnp.stack(taps, axis=0).reshape(*window, b, t5, h5, w5, c)
  dview = dview.transpose(3, 4, 0, 5, 1, 6, 2, 7)
  dx = dview.reshape(b, t5 * window[0], h5 * window[1], w5 * window[2], c)
  # Cells cut off by floor mode get zero gradient; then drop the padding again.
  padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[1:4], padding)]
  dx = jnp.pad(dx, ((0, 0),) + tuple((0, p - d) for p, d in zip(padded, dx.shape[1:4])) + ((0, 0),))
  dx = dx[
    :,
    padding[0][0] : padding[0][0] + x.shape[1],
    padding[1][0] : padding[1][0] + x.shape[2],
    padding[2][0] : padding[2][0] + x.shape[3],
  ]
  return (dx,)


_max_pool_nonoverlapping.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool3d(
  x: Array, window: Sequence[int], padding: Sequence[tuple[int, int]] = ((0, 0), (0, 0), (0, 0))
) -> Array:
  """Max-pool [B, T, H, W, C] with stride == window; padding cells are -inf (as PyTorch).

  Same values and gradients as ``nn.max_pool(x, window, strides=window, padding=padding)``,
  computed with reshapes instead of reduce_window / select_and_scatter (see _max_pool_bwd).
  """
  window = tuple(int(k) for k in window)
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if x.ndim != 5 or len(window) != 3 or len(padding) != 3:
    raise ValueError(
      f"max_pool3d expects x [B,T,H,W,C], a 3D window and padding, got "
      f"{x.shape}, {window}, {padding}"
    )
  return _max_pool_nonoverlapping(x, window, padding)
