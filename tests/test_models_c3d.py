"""Tests of the C3D trunk and its conv implementations (segtube_jax.models.c3d / conv)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from segtube_jax.errors import ConfigError
from segtube_jax.models import (
  C3D,
  CONV_IMPLS,
  C3DConv,
  c3d_pool5_shape,
  conv3x3x3,
  conv_widths,
  max_pool3d,
)

PAPER_C3D_PARAMS = 77_995_776


def _key(seed: int) -> jax.Array:
  # XLA CPU compiles threefry initialisers slowly (~1-3 s each); rbg keys compile ~3x faster.
  return jax.random.key(seed, impl="rbg")


def _count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def test_paper_size_parameter_count_via_eval_shape():
  shapes = jax.eval_shape(
    C3D().init, jax.random.key(0), jax.ShapeDtypeStruct((1, 16, 112, 112, 3), jnp.float32)
  )["params"]
  assert _count(shapes) == PAPER_C3D_PARAMS
  # pool5 is 1x4x4x512 = 8192 values for 16x112x112 clips.
  assert shapes["fc6"]["kernel"].shape == (8192, 4096)
  assert shapes["fc7"]["kernel"].shape == (4096, 4096)
  assert shapes["conv1"]["kernel"].shape == (3, 3, 3, 3, 64)
  assert shapes["conv5b"]["kernel"].shape == (3, 3, 3, 512, 512)
  assert all(shapes[n]["kernel"].dtype == jnp.float32 for n in shapes)


@pytest.mark.parametrize("mode", ["torch", "caffe"])
def test_pool5_grid(mode):
  assert c3d_pool5_shape((16, 112, 112), mode) == (1, 4, 4)
  assert c3d_pool5_shape((32, 112, 112), mode) == (2, 4, 4)


def test_pool5_grid_small_clips():
  assert c3d_pool5_shape((16, 32, 32), "torch") == (1, 2, 2)
  assert c3d_pool5_shape((16, 32, 32), "caffe") == (1, 1, 1)
  with pytest.raises(ConfigError, match="too small"):
    c3d_pool5_shape((8, 112, 112))
  with pytest.raises(ConfigError, match="pool5_padding"):
    c3d_pool5_shape((16, 112, 112), "same")


def test_conv_widths():
  assert conv_widths(1.0) == (64, 128, 256, 256, 512, 512, 512, 512)
  assert conv_widths(0.125) == (8, 16, 32, 32, 64, 64, 64, 64)
  with pytest.raises(ConfigError, match="width_multiplier"):
    conv_widths(-1.0)


def _random_conv_problem(seed=0, shape=(2, 5, 7, 6, 3), cout=4):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(
    rng.normal(size=(3, 3, 3, shape[-1], cout)) / np.sqrt(27 * shape[-1]), jnp.float32
  )
  g = jnp.asarray(rng.normal(size=shape[:-1] + (cout,)), jnp.float32)
  return x, k, g


@pytest.mark.parametrize("impl", [i for i in CONV_IMPLS if i != "conv3d"])
def test_conv_impls_match_conv3d_forward_and_grads(impl):
  x, k, g = _random_conv_problem()
  loss = lambda impl: lambda x, k: jnp.sum(conv3x3x3(x, k, impl) * g)
  np.testing.assert_allclose(conv3x3x3(x, k, impl), conv3x3x3(x, k, "conv3d"), atol=1e-5, rtol=1e-5)
  got = jax.grad(loss(impl), argnums=(0, 1))(x, k)
  want = jax.grad(loss("conv3d"), argnums=(0, 1))(x, k)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_conv3d_is_cross_correlation_with_zero_padding():
  # A single tap at (t, h, w) = (0, 1, 2) reads x[t - 1, h, w + 1] (zero outside).
  x, _, _ = _random_conv_problem(shape=(1, 4, 5, 5, 1), cout=1)
  k = jnp.zeros((3, 3, 3, 1, 1)).at[0, 1, 2, 0, 0].set(1.0)
  for impl in CONV_IMPLS:
    y = np.asarray(conv3x3x3(x, k, impl))[0, ..., 0]
    want = np.zeros_like(y)
    want[1:, :, :-1] = np.asarray(x)[0, :-1, :, 1:, 0]
    np.testing.assert_allclose(y, want, atol=1e-6, err_msg=impl)


def test_conv_module_param_layout_is_impl_independent():
  x, _, _ = _random_conv_problem(shape=(1, 3, 4, 4, 2))
  params = C3DConv(5, conv_impl="conv3d").init(_key(0), x)
  assert jax.tree.map(jnp.shape, params) == {"params": {"kernel": (3, 3, 3, 2, 5), "bias": (5,)}}
  ref = C3DConv(5, conv_impl="conv3d").apply(params, x)
  for impl in CONV_IMPLS:
    module = C3DConv(5, conv_impl=impl)
    assert jax.tree.map(jnp.shape, module.init(_key(1), x)) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(module.apply(params, x), ref, atol=1e-5)


def test_unknown_conv_impl():
  x, k, _ = _random_conv_problem()
  with pytest.raises(ConfigError, match="conv_impl"):
    conv3x3x3(x, k, "fft")


def test_max_pool3d_pads_with_minus_inf():
  # All-negative input: a zero pad would win the max; PyTorch pads with -inf.
  x = -1.0 - jnp.arange(3 * 3, dtype=jnp.float32).reshape(1, 1, 3, 3, 1)
  y = max_pool3d(x, (1, 2, 2), ((0, 0), (1, 1), (1, 1)))
  # Torch windows along an axis of 3 with pad (1, 1): [pad, 0], [1, 2].
  want = np.array([[-1.0, -2.0], [-4.0, -5.0]])
  np.testing.assert_array_equal(np.asarray(y)[0, 0, :, :, 0], want)


@pytest.fixture(scope="module")
def tiny_c3d():
  model = C3D(width_multiplier=1 / 16, fc_dim=32)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 32, 32, 3)), jnp.float32)
  params = jax.jit(model.init)(_key(0), x)
  return model, params, x


def test_tiny_c3d_forward(tiny_c3d):
  model, params, x = tiny_c3d
  # fc6 input follows the real pool5 output: 1x2x2 grid x 32 channels.
  assert params["params"]["fc6"]["kernel"].shape == (1 * 2 * 2 * 32, 32)
  y = model.apply(params, x)
  assert y.shape == (2, 32) and y.dtype == jnp.float32
  assert np.all(np.asarray(y) >= 0)  # fc7 activation is post-ReLU.
  # Dropout is active in training mode only.
  y_train = model.apply(params, x, train=True, rngs={"dropout": _key(1)})
  assert y_train.shape == y.shape and not np.allclose(y_train, y)


def test_tiny_c3d_bfloat16_compute_float32_params(tiny_c3d):
  model, params, x = tiny_c3d
  bf16 = C3D(width_multiplier=1 / 16, fc_dim=32, dtype=jnp.bfloat16)
  params_bf16 = jax.eval_shape(bf16.init, _key(0), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params_bf16))
  y = bf16.apply(params, x)
  assert y.dtype == jnp.bfloat16
  ref = model.apply(params, x)
  np.testing.assert_allclose(np.asarray(y, np.float32), ref, atol=0.1 * float(jnp.max(ref)))


def test_c3d_rejects_bad_input():
  with pytest.raises(ConfigError, match=r"\[B, T, H, W, C\]"):
    C3D(width_multiplier=1 / 16, fc_dim=8).init(_key(0), jnp.zeros((16, 32, 32, 3)))
  with pytest.raises(ConfigError, match="too small"):
    C3D(width_multiplier=1 / 16, fc_dim=8).init(_key(0), jnp.zeros((1, 8, 32, 32, 3)))


def test_group_norm_option_adds_a_norm_after_every_conv():
  model = C3D(width_multiplier=0.0625, fc_dim=16, conv_norm="group")
  x = jnp.ones((2, 16, 16, 16, 3), jnp.float32)
  params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
  norms = sorted(k for k in params if k.endswith("_norm"))
  assert norms == sorted(
    f"{n}_norm"
    for n in ("conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b")
  )
  assert params["conv1_norm"]["scale"].shape == (4,)


@pytest.mark.parametrize(
  "shape, window, pad",
  [
    ((2, 16, 32, 32, 8), (1, 2, 2), ((0, 0),) * 3),
    ((2, 8, 8, 8, 4), (2, 2, 2), ((0, 0),) * 3),
    ((1, 3, 5, 7, 2), (2, 2, 2), ((0, 0), (1, 1), (1, 1))),
    ((1, 5, 7, 6, 3), (2, 2, 2), ((0, 0), (0, 1), (0, 0))),
  ],
)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool3d_and_its_gradient_equal_flax(shape, window, pad, ties):
  rng = np.random.default_rng(0)
  x = rng.normal(size=shape).astype(np.float32)
  if ties:  # Many exact ties: the custom gradient must route them as XLA's does.
    x = np.maximum(np.round(x), 0) * 0.5
  x = jnp.asarray(x)
  ref = lambda v: nn.max_pool(v, window, strides=window, padding=pad)
  new = lambda v: max_pool3d(v, window, pad)
  np.testing.assert_array_equal(jax.jit(ref)(x), jax.jit(new)(x))
  g = jnp.asarray(rng.normal(size=ref(x).shape).astype(np.float32))
  np.testing.assert_array_equal(jax.vjp(ref, x)[1](g)[0], jax.vjp(new, x)[1](g)[0])
