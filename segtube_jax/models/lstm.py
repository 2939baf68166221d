"""Peephole LSTM (Gers & Schmidhuber) used on top of C3D features (Sec. 2.1).

The paper uses "a two-layer LSTM [5] using the Peephole implementation (with 256 hidden states
in each layer)". Flax has no peephole cell, so :class:`PeepholeLSTMCell` implements

  i  = sig(W_xi x + W_hi h + w_ci * c  + b_i)
  f  = sig(W_xf x + W_hf h + w_cf * c  + b_f)
  c' = f * c + i * tanh(W_xc x + W_hc h + b_c)
  o  = sig(W_xo x + W_ho h + w_co * c' + b_o)
  h' = o * tanh(c')

with per-unit peephole vectors w_c*. It is an ``nn.RNNCellBase`` so ``nn.RNN`` scans it.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from segtube_jax.errors import ConfigError

Array = jax.Array
Carry = tuple[Array, Array]

# Column blocks of the fused kernels and bias, in this order.
GATE_ORDER = ("i", "f", "c", "o")


class PeepholeLSTMCell(nn.RNNCellBase):
  """Peephole LSTM cell; carry is (c, h) like ``nn.LSTMCell``.

  Parameters: ``input_kernel`` [Din, 4H] and ``recurrent_kernel`` [H, 4H] (column blocks in
  ``GATE_ORDER`` i, f, c, o, i.e. W_x* and W_h* transposed), ``bias`` [4H] and the peepholes
  ``peephole_i``, ``peephole_f``, ``peephole_o`` [H] (w_ci, w_cf, w_co).

  Attributes:
    features: hidden units H.
    forget_bias: initial value of b_f (1.0 keeps the cell memory open early in training).
    dtype: dtype of the input/recurrent matmuls (None: inferred from inputs and params).
    param_dtype: parameter and carry dtype.
  """

  features: int
  forget_bias: float = 1.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def _bias_init(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    del key
    h = self.features
    return jnp.zeros(shape, dtype).at[h : 2 * h].set(self.forget_bias)

  @nn.compact
  def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
    """One step: ((c, h), x) -> ((c', h'), h'), Eqs. of the class docstring."""
    c, h = carry
    n = self.features
    w_x = self.param(
      "input_kernel", nn.initializers.lecun_normal(), (inputs.shape[-1], 4 * n), self.param_dtype
    )
    w_h = self.param(
      "recurrent_kernel", nn.initializers.orthogonal(column_axis=-1), (n, 4 * n), self.param_dtype
    )
    b = self.param("bias", self._bias_init, (4 * n,), self.param_dtype)
    w_ci, w_cf, w_co = (
      self.param(f"peephole_{g}", nn.initializers.zeros_init(), (n,), self.param_dtype)
      for g in ("i", "f", "o")
    )
    # Only the matmuls run in `dtype`; the cell state path stays in the carry's dtype
    # (param_dtype) so nn.RNN's scan carry keeps one dtype and c does not drift over time.
    x_, h_, w_x, w_h, b = nn.dtypes.promote_dtype(inputs, h, w_x, w_h, b, dtype=self.dtype)
    # One fused matmul per operand; the gates are column blocks of it.
    z = (x_ @ w_x + h_ @ w_h + b).astype(c.dtype)
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    i = nn.sigmoid(z_i + w_ci * c)
    f = nn.sigmoid(z_f + w_cf * c)
    new_c = f * c + i * jnp.tanh(z_c)
    o = nn.sigmoid(z_o + w_co * new_c)  # The output gate peeks at the NEW cell state.
    new_h = o * jnp.tanh(new_c)
    return (new_c, new_h), new_h

  @nn.nowrap
  def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
    """Zero (c, h), each shaped batch_dims + (features,), for inputs of ``input_shape``."""
    del rng
    shape = tuple(input_shape[:-1]) + (self.features,)
    return (jnp.zeros(shape, self.param_dtype), jnp.zeros(shape, self.param_dtype))

  @property
  def num_feature_axes(self) -> int:
    return 1


class StackedPeepholeLSTM(nn.Module):
  """``num_layers`` peephole LSTM layers, each an ``nn.RNN`` scan over axis 1 (time).

  Attributes:
    features: hidden units per layer (256 in the paper).
    num_layers: number of layers (2 in the paper).
    dtype: computation dtype of the cells.
    param_dtype: parameter dtype.
  """

  features: int = 256
  num_layers: int = 2
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """Hidden states of the top layer [B, S, features] for inputs [B, S, Din]."""
    if self.num_layers < 1:
      raise ConfigError(f"lstm num_layers must be >= 1, got {self.num_layers}")
    x = inputs
    for layer in range(self.num_layers):
      # parent=None: the cell must belong to its nn.RNN (params at layer{i}/cell), not to us.
      cell = PeepholeLSTMCell(
        self.features, dtype=self.dtype, param_dtype=self.param_dtype, parent=None
      )
      x = nn.RNN(cell, name=f"layer{layer}")(x)
    return x
