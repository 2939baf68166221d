"""Tests of the peephole LSTM against an independent NumPy implementation of its equations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from segtube_jax.models import PeepholeLSTMCell, StackedPeepholeLSTM


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _random_weights(rng, din, h):
  """Separate W_x*, W_h*, b_*, w_c* per gate, as in the equations."""
  w = {}
  for g in "ifco":
    w[f"W_x{g}"] = rng.normal(size=(h, din)) / np.sqrt(din)
    w[f"W_h{g}"] = rng.normal(size=(h, h)) / np.sqrt(h)
    w[f"b_{g}"] = rng.normal(size=h) * 0.5
  for g in "ifo":
    w[f"w_c{g}"] = rng.normal(size=h)
  return w


def _to_params(w):
  """Packs the per-gate weights into PeepholeLSTMCell's fused layout (gate order i, f, c, o)."""
  return {
    "input_kernel": np.concatenate([w[f"W_x{g}"].T for g in "ifco"], axis=1),
    "recurrent_kernel": np.concatenate([w[f"W_h{g}"].T for g in "ifco"], axis=1),
    "bias": np.concatenate([w[f"b_{g}"] for g in "ifco"]),
    "peephole_i": w["w_ci"],
    "peephole_f": w["w_cf"],
    "peephole_o": w["w_co"],
  }


def _numpy_lstm(w, xs, c, h):
  """Runs the peephole equations over xs [B, S, Din]; returns hs [B, S, H] and final (c, h)."""
  hs = []
  for s in range(xs.shape[1]):
    x = xs[:, s]
    i = _sigmoid(x @ w["W_xi"].T + h @ w["W_hi"].T + w["w_ci"] * c + w["b_i"])
    f = _sigmoid(x @ w["W_xf"].T + h @ w["W_hf"].T + w["w_cf"] * c + w["b_f"])
    c = f * c + i * np.tanh(x @ w["W_xc"].T + h @ w["W_hc"].T + w["b_c"])
    o = _sigmoid(x @ w["W_xo"].T + h @ w["W_ho"].T + w["w_co"] * c + w["b_o"])
    h = o * np.tanh(c)
    hs.append(h)
  return np.stack(hs, axis=1), (c, h)


def test_cell_single_step_matches_numpy():
  rng = np.random.default_rng(0)
  b, din, n = 3, 5, 4
  w = _random_weights(rng, din, n)
  x, c, h = rng.normal(size=(b, din)), rng.normal(size=(b, n)), rng.normal(size=(b, n))
  cell = PeepholeLSTMCell(n)
  (new_c, new_h), out = cell.apply(
    {"params": _to_params(w)},
    (jnp.asarray(c, jnp.float32), jnp.asarray(h, jnp.float32)),
    jnp.asarray(x, jnp.float32),
  )
  want_h, (want_c, _) = _numpy_lstm(w, x[:, None], c, h)
  np.testing.assert_allclose(new_c, want_c, atol=1e-5)
  np.testing.assert_allclose(new_h, want_h[:, 0], atol=1e-5)
  np.testing.assert_array_equal(out, new_h)


def test_cell_param_shapes_carry_and_forget_bias():
  cell = PeepholeLSTMCell(6)
  carry = cell.initialize_carry(jax.random.key(0), (2, 7, 5))
  assert [a.shape for a in carry] == [(2, 7, 6), (2, 7, 6)]
  assert all(np.all(np.asarray(a) == 0) for a in carry)
  assert cell.num_feature_axes == 1
  params = cell.init(jax.random.key(0), carry, jnp.zeros((2, 7, 5)))["params"]
  assert jax.tree.map(jnp.shape, params) == {
    "input_kernel": (5, 24),
    "recurrent_kernel": (6, 24),
    "bias": (24,),
    "peephole_i": (6,),
    "peephole_f": (6,),
    "peephole_o": (6,),
  }
  np.testing.assert_array_equal(params["bias"][6:12], 1.0)
  np.testing.assert_array_equal(params["bias"][:6], 0.0)


def test_rnn_scan_over_sequence_matches_numpy():
  rng = np.random.default_rng(1)
  b, s, din, n = 2, 7, 5, 4
  w = _random_weights(rng, din, n)
  xs = rng.normal(size=(b, s, din))
  rnn = nn.RNN(PeepholeLSTMCell(n), return_carry=True)
  (c, h), hs = rnn.apply({"params": {"cell": _to_params(w)}}, jnp.asarray(xs, jnp.float32))
  want_hs, (want_c, want_h) = _numpy_lstm(w, xs, np.zeros((b, n)), np.zeros((b, n)))
  np.testing.assert_allclose(hs, want_hs, atol=1e-5)
  np.testing.assert_allclose(c, want_c, atol=1e-5)
  np.testing.assert_allclose(h, want_h, atol=1e-5)


def test_two_layer_stack_matches_numpy():
  rng = np.random.default_rng(2)
  b, s, din, n = 2, 6, 5, 4
  w0, w1 = _random_weights(rng, din, n), _random_weights(rng, n, n)
  xs = rng.normal(size=(b, s, din))
  model = StackedPeepholeLSTM(features=n, num_layers=2)
  init = model.init(jax.random.key(0), jnp.zeros((b, s, din)))["params"]
  assert set(init) == {"layer0", "layer1"}
  params = {"layer0": {"cell": _to_params(w0)}, "layer1": {"cell": _to_params(w1)}}
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, init)
  got = model.apply({"params": params}, jnp.asarray(xs, jnp.float32))
  zeros = np.zeros((b, n))
  h0, _ = _numpy_lstm(w0, xs, zeros, zeros)
  want, _ = _numpy_lstm(w1, h0, zeros, zeros)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_grads_flow_into_peepholes():
  model = StackedPeepholeLSTM(features=3, num_layers=1)
  xs = jnp.asarray(np.random.default_rng(3).normal(size=(1, 4, 2)), jnp.float32)
  params = model.init(jax.random.key(0), xs)["params"]
  grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, xs)))(params)
  for g in ("i", "f", "o"):
    assert np.any(np.asarray(grads["layer0"]["cell"][f"peephole_{g}"]) != 0)


def test_bfloat16_matmuls_keep_float32_carry():
  xs = jnp.asarray(np.random.default_rng(4).normal(size=(2, 5, 3)), jnp.float32)
  ref_model = StackedPeepholeLSTM(features=4, num_layers=2)
  params = ref_model.init(jax.random.key(0), xs)
  bf16 = StackedPeepholeLSTM(features=4, num_layers=2, dtype=jnp.bfloat16)
  got = bf16.apply(params, xs)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, ref_model.apply(params, xs), atol=0.05)
