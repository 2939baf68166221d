"""Converts the widely used PyTorch C3D Sports-1M state dict to :class:`C3D` params.

The PyTorch C3D (keys conv1, conv2, conv3a, conv3b, conv4a, conv4b, conv5a, conv5b, fc6,
fc7, fc8; ``.weight``/``.bias``) works in NCTHW: Conv3d weights are [out, in, t, h, w], Linear
weights [out, in], and pool5 (``MaxPool3d(2, 2, padding=(0, 1, 1))``) is flattened in
(C, T, H, W) order. Our C3D is channels-last and flattens pool5 in (T, H, W, C) order, so the
conversion transposes conv kernels to [t, h, w, in, out], transposes fc kernels to [in, out]
and permutes fc6's input axis. fc8 (the Sports-1M classifier) is not part of the trunk and is
dropped. Use the result with ``pool5_padding='torch'`` (the default).

The converter is size-agnostic: it reads channel counts from the arrays and the pool5 grid
from ``clip_shape``.
"""

from collections.abc import Mapping, Sequence
import os
from typing import Any

import numpy as np

from segtube_jax.errors import CheckpointError
from segtube_jax.models.c3d import CONV_NAMES, FC_NAMES, c3d_pool5_shape

_IGNORED_PREFIXES = ('fc8.',)


def _get(state_dict: Mapping[str, Any], key: str) -> np.ndarray:
  if key not in state_dict:
    raise CheckpointError(f'PyTorch C3D state dict is missing key {key!r}')
  return np.asarray(state_dict[key], dtype=np.float32)


def _expect_shape(key: str, array: np.ndarray, expected: Sequence[int]) -> None:
  if tuple(array.shape) != tuple(expected):
    raise CheckpointError(f'{key}: expected shape {tuple(expected)}, got {tuple(array.shape)}')


def convert_torch_c3d(state_dict: Mapping[str, Any],
                      clip_shape: Sequence[int] = (16, 112, 112),
                      pool5_padding: str = 'torch',
                      expected_params: Mapping[str, Any] | None = None
                      ) -> dict[str, dict[str, np.ndarray]]:
  """PyTorch C3D state dict -> params of :class:`C3D` (the ``c3d`` subtree of a network).

  Args:
    state_dict: key -> numpy (or array-like) weights, PyTorch layout; fc8.* is ignored.
    clip_shape: (T, H, W) of the clips the weights will see; fixes pool5's grid, which
      fc6's input size must equal (16x112x112 -> 1x4x4).
    pool5_padding: pool5 mode of the target C3D (see ``conv.pool5_pad``).
    expected_params: optional param tree (arrays or ``jax.ShapeDtypeStruct``, e.g. from
      ``jax.eval_shape(C3D(...).init, ...)['params']``) whose shapes the result must match.

  Returns:
    {'conv1': {'kernel': [3,3,3,Cin,Cout], 'bias': [Cout]}, ..., 'fc7': {...}} as float32.

  Raises:
    CheckpointError: on missing/unexpected keys or shape mismatches (key, expected, given).
  """
  known = {f'{n}.{p}' for n in CONV_NAMES + FC_NAMES for p in ('weight', 'bias')}
  unexpected = sorted(k for k in state_dict
                      if k not in known and not k.startswith(_IGNORED_PREFIXES))
  if unexpected:
    raise CheckpointError(f'unexpected keys in PyTorch C3D state dict: {unexpected}')

  params: dict[str, dict[str, np.ndarray]] = {}
  cin = None
  for name in CONV_NAMES:
    w, b = _get(state_dict, f'{name}.weight'), _get(state_dict, f'{name}.bias')
    if w.ndim != 5 or w.shape[2:] != (3, 3, 3):
      raise CheckpointError(f'{name}.weight: expected shape (out, in, 3, 3, 3), '
                            f'got {tuple(w.shape)}')
    if cin is not None:
      _expect_shape(f'{name}.weight', w, (w.shape[0], cin, 3, 3, 3))
    _expect_shape(f'{name}.bias', b, (w.shape[0],))
    params[name] = {'kernel': np.ascontiguousarray(w.transpose(2, 3, 4, 1, 0)), 'bias': b}
    cin = w.shape[0]

  t5, h5, w5 = c3d_pool5_shape(clip_shape, pool5_padding)
  fc6_w, fc6_b = _get(state_dict, 'fc6.weight'), _get(state_dict, 'fc6.bias')
  fc_dim = fc6_w.shape[0]
  _expect_shape('fc6.weight', fc6_w, (fc_dim, cin * t5 * h5 * w5))
  _expect_shape('fc6.bias', fc6_b, (fc_dim,))
  # Input index c*T5*H5*W5 + t*H5*W5 + h*W5 + w  ->  ((t*H5 + h)*W5 + w)*C + c.
  fc6_k = fc6_w.reshape(fc_dim, cin, t5, h5, w5).transpose(2, 3, 4, 1, 0)
  params['fc6'] = {'kernel': np.ascontiguousarray(fc6_k.reshape(-1, fc_dim)), 'bias': fc6_b}
  fc7_w, fc7_b = _get(state_dict, 'fc7.weight'), _get(state_dict, 'fc7.bias')
  _expect_shape('fc7.weight', fc7_w, (fc7_w.shape[0], fc_dim))
  _expect_shape('fc7.bias', fc7_b, (fc7_w.shape[0],))
  params['fc7'] = {'kernel': np.ascontiguousarray(fc7_w.T), 'bias': fc7_b}

  if expected_params is not None:
    check_param_shapes(params, expected_params)
  return params


def check_param_shapes(params: Mapping[str, Any], expected: Mapping[str, Any],
                       prefix: str = '') -> None:
  """Raises CheckpointError naming the first key whose presence or shape differs."""
  for key in sorted(set(params) | set(expected)):
    path = f'{prefix}{key}'
    if key not in params or key not in expected:
      where = 'converted params' if key not in params else 'target params'
      raise CheckpointError(f'{path}: missing from the {where}')
    got, want = params[key], expected[key]
    if isinstance(want, Mapping) or isinstance(got, Mapping):
      if not (isinstance(want, Mapping) and isinstance(got, Mapping)):
        raise CheckpointError(f'{path}: one side is a sub-tree, the other an array')
      check_param_shapes(got, want, f'{path}/')
    elif tuple(np.shape(got)) != tuple(want.shape):
      raise CheckpointError(f'{path}: expected shape {tuple(want.shape)}, '
                            f'got {tuple(np.shape(got))}')


def insert_c3d_params(params: Mapping[str, Any], c3d_params: Mapping[str, Any],
                      key: str = 'c3d') -> dict[str, Any]:
  """A copy of a network's ``params`` with its ``key`` subtree replaced (shapes checked)."""
  if key not in params:
    raise CheckpointError(f'network params have no {key!r} subtree; keys: {sorted(params)}')
  check_param_shapes(c3d_params, params[key], prefix=f'{key}/')
  out = dict(params)
  out[key] = {n: dict(v) for n, v in c3d_params.items()}
  return out


def load_torch_c3d_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch C3D state dict from .npz (no torch needed) or .pth/.pt (needs torch).

  A .pth is read with ``torch.load(map_location='cpu')``; a {'state_dict': ...} wrapper and
  DataParallel 'module.' prefixes are unwrapped. To avoid PyTorch here, convert once where it is
  installed: ``np.savez(out, **{k: v.numpy() for k, v in torch.load(p).items()})``.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f'C3D checkpoint not found: {path}')
  if path.endswith('.npz'):
    try:
      with np.load(path) as data:
        return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
      raise CheckpointError(f'cannot read C3D .npz {path}: {e}') from e
  if path.endswith(('.pth', '.pt')):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise CheckpointError(
          f'reading {path} needs PyTorch, which is not installed; convert it to .npz where '
          'torch is available (see load_torch_c3d_state_dict docstring)') from None
    state = torch.load(path, map_location='cpu')
    if isinstance(state, Mapping) and 'state_dict' in state:
      state = state['state_dict']
    return {k.removeprefix('module.'): v.detach().cpu().numpy() for k, v in state.items()}
  raise CheckpointError(f'unknown C3D checkpoint format {path!r}: expected .npz, .pth or .pt')


def load_pretrained_c3d(path: str | os.PathLike, clip_shape: Sequence[int] = (16, 112, 112),
                        pool5_padding: str = 'torch',
                        expected_params: Mapping[str, Any] | None = None
                        ) -> dict[str, dict[str, np.ndarray]]:
  """Loads and converts a PyTorch C3D checkpoint (.npz, or .pth with torch) to C3D params."""
  return convert_torch_c3d(load_torch_c3d_state_dict(path), clip_shape, pool5_padding,
                           expected_params)
