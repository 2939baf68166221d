"""Tests of the PyTorch C3D -> C3D param converter against a NumPy NCTHW reference forward."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from segtube_jax.errors import CheckpointError
from segtube_jax.models import (C3D, ClipSequenceNetwork, convert_torch_c3d, insert_c3d_params,
                                load_pretrained_c3d, load_torch_c3d_state_dict)

WIDTH, FC = 1 / 16, 24  # conv widths 4, 8, 16, 16, 32, 32, 32, 32.
# Non-square clip so a wrong fc6 permutation cannot hide: pool5 grid (T5, H5, W5) = (2, 1, 3).
CLIP = (32, 16, 80)
NAMES = ('conv1', 'conv2', 'conv3a', 'conv3b', 'conv4a', 'conv4b', 'conv5a', 'conv5b')
WIDTHS = (4, 8, 16, 16, 32, 32, 32, 32)


def _random_state_dict(seed=0, fc8=True):
  """Random weights with the PyTorch C3D key names and layouts."""
  rng = np.random.default_rng(seed)
  sd, cin = {}, 3
  for name, cout in zip(NAMES, WIDTHS):
    sd[f'{name}.weight'] = rng.normal(size=(cout, cin, 3, 3, 3)) * np.sqrt(2 / (27 * cin))
    sd[f'{name}.bias'] = rng.normal(size=cout) * 0.1
    cin = cout
  flat = 32 * 2 * 1 * 3
  sd['fc6.weight'] = rng.normal(size=(FC, flat)) * np.sqrt(2 / flat)
  sd['fc6.bias'] = rng.normal(size=FC) * 0.1
  sd['fc7.weight'] = rng.normal(size=(FC, FC)) * np.sqrt(2 / FC)
  sd['fc7.bias'] = rng.normal(size=FC) * 0.1
  if fc8:
    sd['fc8.weight'], sd['fc8.bias'] = rng.normal(size=(487, FC)), rng.normal(size=487)
  return {k: v.astype(np.float32) for k, v in sd.items()}


# --- Independent NumPy reference in PyTorch's NCTHW layout ------------------------------------


def _np_conv3d(x, w, b):
  """nn.Conv3d(kernel 3, padding 1): x [N, C, T, H, W], w [O, C, 3, 3, 3]."""
  n, c, t, h, wd = x.shape
  xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1), (1, 1)))
  out = np.zeros((n, w.shape[0], t, h, wd), np.float64)
  for dt in range(3):
    for dh in range(3):
      for dw in range(3):
        patch = xp[:, :, dt:dt + t, dh:dh + h, dw:dw + wd]
        out += np.einsum('ncthw,oc->nothw', patch, w[:, :, dt, dh, dw])
  return out + b[None, :, None, None, None]


def _np_maxpool3d(x, k, pad=(0, 0, 0)):
  """nn.MaxPool3d(k, stride=k, padding=pad), floor mode, -inf padding on both sides."""
  x = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad), constant_values=-np.inf)
  n, c = x.shape[:2]
  outs = [(s - kk) // kk + 1 for s, kk in zip(x.shape[2:], k)]
  x = x[:, :, :outs[0] * k[0], :outs[1] * k[1], :outs[2] * k[2]]
  x = x.reshape(n, c, outs[0], k[0], outs[1], k[1], outs[2], k[2])
  return x.max(axis=(3, 5, 7))


def _np_c3d_fc7(sd, clips_ncthw):
  relu = lambda v: np.maximum(v, 0)
  x = clips_ncthw.astype(np.float64)
  pools = {'conv1': ((1, 2, 2), (0, 0, 0)), 'conv2': ((2, 2, 2), (0, 0, 0)),
           'conv3b': ((2, 2, 2), (0, 0, 0)), 'conv4b': ((2, 2, 2), (0, 0, 0)),
           'conv5b': ((2, 2, 2), (0, 1, 1))}
  for name in NAMES:
    x = relu(_np_conv3d(x, sd[f'{name}.weight'], sd[f'{name}.bias']))
    if name in pools:
      x = _np_maxpool3d(x, *pools[name])
  x = x.reshape(x.shape[0], -1)  # PyTorch's view(-1, 8192): (C, T, H, W) order.
  x = relu(x @ sd['fc6.weight'].T + sd['fc6.bias'])
  return relu(x @ sd['fc7.weight'].T + sd['fc7.bias'])


# ----------------------------------------------------------------------------------------------


def _key(seed: int) -> jax.Array:
  return jax.random.key(seed, impl='rbg')


def _c3d_shapes():
  return jax.eval_shape(C3D(WIDTH, FC).init, _key(0),
                        jax.ShapeDtypeStruct((1,) + CLIP + (3,), jnp.float32))['params']


def test_converted_fc7_matches_numpy_pytorch_reference():
  sd = _random_state_dict()
  params = convert_torch_c3d(sd, clip_shape=CLIP, expected_params=_c3d_shapes())
  clips = np.random.default_rng(1).normal(size=(2,) + CLIP + (3,)).astype(np.float32)
  got = jax.jit(C3D(WIDTH, FC).apply)({'params': params}, jnp.asarray(clips))
  want = _np_c3d_fc7(sd, clips.transpose(0, 4, 1, 2, 3))
  assert np.abs(want).max() > 0.1  # a non-degenerate comparison.
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_layouts():
  sd = _random_state_dict()
  params = convert_torch_c3d(sd, clip_shape=CLIP)
  assert set(params) == set(NAMES) | {'fc6', 'fc7'}  # fc8 dropped.
  np.testing.assert_array_equal(params['conv2']['kernel'][0, 1, 2, 3, 5],
                                sd['conv2.weight'][5, 3, 0, 1, 2])
  # fc6 input (t, h, w, c) = (1, 0, 2, 7) is PyTorch input c*6 + t*3 + h*3 + w.
  assert params['fc6']['kernel'].shape == (192, FC)
  np.testing.assert_array_equal(params['fc6']['kernel'][((1 * 1 + 0) * 3 + 2) * 32 + 7, 4],
                                sd['fc6.weight'][4, 7 * 6 + 1 * 3 + 0 * 3 + 2])
  np.testing.assert_array_equal(params['fc7']['kernel'], sd['fc7.weight'].T)


def test_shape_errors_name_key_expected_and_given():
  sd = _random_state_dict()
  sd['conv3b.weight'] = sd['conv3b.weight'][:, :8]
  with pytest.raises(CheckpointError, match=r'conv3b.weight: expected shape \(16, 16, 3, 3, 3\), '
                     r'got \(16, 8, 3, 3, 3\)'):
    convert_torch_c3d(sd, clip_shape=CLIP)
  sd = _random_state_dict()
  with pytest.raises(CheckpointError, match=r'fc6.weight: expected shape \(24, 512\), '
                     r'got \(24, 192\)'):
    convert_torch_c3d(sd, clip_shape=(16, 112, 112))  # 1x4x4 pool5 grid.
  del sd['fc7.bias']
  with pytest.raises(CheckpointError, match="missing key 'fc7.bias'"):
    convert_torch_c3d(sd, clip_shape=CLIP)
  sd = _random_state_dict()
  sd['conv6.weight'] = np.zeros(3)
  with pytest.raises(CheckpointError, match='unexpected keys.*conv6.weight'):
    convert_torch_c3d(sd, clip_shape=CLIP)


def test_expected_params_mismatch():
  wider = jax.eval_shape(C3D(1 / 8, FC).init, _key(0),
                         jax.ShapeDtypeStruct((1,) + CLIP + (3,), jnp.float32))['params']
  with pytest.raises(CheckpointError, match=r'conv1/bias: expected shape \(8,\), got \(4,\)'):
    convert_torch_c3d(_random_state_dict(), clip_shape=CLIP, expected_params=wider)


def test_npz_round_trip_and_insert_into_network(tmp_path):
  sd = _random_state_dict()
  path = tmp_path / 'c3d.npz'
  np.savez(path, **sd)
  loaded = load_torch_c3d_state_dict(path)
  assert set(loaded) == set(sd)
  params = load_pretrained_c3d(path, clip_shape=CLIP)
  net = ClipSequenceNetwork(num_outputs=2, width_multiplier=WIDTH, fc_dim=FC, lstm_features=4)
  net_shapes = jax.eval_shape(net.init, _key(0),
                              jax.ShapeDtypeStruct((1, 1) + CLIP + (3,), jnp.float32))['params']
  merged = insert_c3d_params(net_shapes, params)
  assert merged['c3d']['fc6']['kernel'] is params['fc6']['kernel']
  assert merged['head'] is net_shapes['head']
  small = convert_torch_c3d(sd, clip_shape=(32, 16, 80))
  small['fc7'] = {'kernel': np.zeros((FC, 5)), 'bias': np.zeros(5)}
  with pytest.raises(CheckpointError, match=r'c3d/fc7/bias: expected shape \(24,\), got \(5,\)'):
    insert_c3d_params(net_shapes, small)


def test_loader_errors(tmp_path):
  with pytest.raises(CheckpointError, match='not found'):
    load_torch_c3d_state_dict(tmp_path / 'missing.npz')
  bad = tmp_path / 'c3d.h5'
  bad.write_bytes(b'x')
  with pytest.raises(CheckpointError, match='unknown C3D checkpoint format'):
    load_torch_c3d_state_dict(bad)
  pth = tmp_path / 'c3d.pickle.pth'
  pth.write_bytes(b'x')
  if importlib.util.find_spec('torch') is None:
    with pytest.raises(CheckpointError, match='needs PyTorch'):
      load_torch_c3d_state_dict(pth)
