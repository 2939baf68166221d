"""Tests of the PyTorch C3D -> C3D param converter against a NumPy NCTHW reference forward."""

import importlib.util
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from segtube_jax.errors import CheckpointError
from segtube_jax.models import (
  C3D,
  ClipSequenceNetwork,
  c3d_pool5_shape,
  conv_widths,
  convert_torch_c3d,
  insert_c3d_params,
  load_pretrained_c3d,
  load_torch_c3d_state_dict,
)
from segtube_jax.training import steps
from tests.conftest import PROJECT_ROOT, cached_env, tiny_training_config

WIDTH, FC = 1 / 16, 24  # conv widths 4, 8, 16, 16, 32, 32, 32, 32.
# Non-square clip so a wrong fc6 permutation cannot hide: pool5 grid (T5, H5, W5) = (2, 1, 3).
CLIP = (32, 16, 80)
NAMES = ("conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b")
WIDTHS = (4, 8, 16, 16, 32, 32, 32, 32)


def _random_state_dict(seed=0, fc8=True):
  """Random weights with the PyTorch C3D key names and layouts."""
  rng = np.random.default_rng(seed)
  sd, cin = {}, 3
  for name, cout in zip(NAMES, WIDTHS):
    sd[f"{name}.weight"] = rng.normal(size=(cout, cin, 3, 3, 3)) * np.sqrt(2 / (27 * cin))
    sd[f"{name}.bias"] = rng.normal(size=cout) * 0.1
    cin = cout
  flat = 32 * 2 * 1 * 3
  sd["fc6.weight"] = rng.normal(size=(FC, flat)) * np.sqrt(2 / flat)
  sd["fc6.bias"] = rng.normal(size=FC) * 0.1
  sd["fc7.weight"] = rng.normal(size=(FC, FC)) * np.sqrt(2 / FC)
  sd["fc7.bias"] = rng.normal(size=FC) * 0.1
  if fc8:
    sd["fc8.weight"], sd["fc8.bias"] = rng.normal(size=(487, FC)), rng.normal(size=487)
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
        patch = xp[:, :, dt : dt + t, dh : dh + h, dw : dw + wd]
        out += np.einsum("ncthw,oc->nothw", patch, w[:, :, dt, dh, dw])
  return out + b[None, :, None, None, None]


def _np_maxpool3d(x, k, pad=(0, 0, 0)):
  """nn.MaxPool3d(k, stride=k, padding=pad), floor mode, -inf padding on both sides."""
  x = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad), constant_values=-np.inf)
  n, c = x.shape[:2]
  outs = [(s - kk) // kk + 1 for s, kk in zip(x.shape[2:], k)]
  x = x[:, :, : outs[0] * k[0], : outs[1] * k[1], : outs[2] * k[2]]
  x = x.reshape(n, c, outs[0], k[0], outs[1], k[1], outs[2], k[2])
  return x.max(axis=(3, 5, 7))


def _np_c3d_fc7(sd, clips_ncthw):
  relu = lambda v: np.maximum(v, 0)
  x = clips_ncthw.astype(np.float64)
  pools = {
    "conv1": ((1, 2, 2), (0, 0, 0)),
    "conv2": ((2, 2, 2), (0, 0, 0)),
    "conv3b": ((2, 2, 2), (0, 0, 0)),
    "conv4b": ((2, 2, 2), (0, 0, 0)),
    "conv5b": ((2, 2, 2), (0, 1, 1)),
  }
  for name in NAMES:
    x = relu(_np_conv3d(x, sd[f"{name}.weight"], sd[f"{name}.bias"]))
    if name in pools:
      x = _np_maxpool3d(x, *pools[name])
  x = x.reshape(x.shape[0], -1)  # PyTorch's view(-1, 8192): (C, T, H, W) order.
  x = relu(x @ sd["fc6.weight"].T + sd["fc6.bias"])
  return relu(x @ sd["fc7.weight"].T + sd["fc7.bias"])


# ----------------------------------------------------------------------------------------------


def _key(seed: int) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


def _c3d_shapes():
  return jax.eval_shape(
    C3D(WIDTH, FC).init, _key(0), jax.ShapeDtypeStruct((1,) + CLIP + (3,), jnp.float32)
  )["params"]


def test_converted_fc7_matches_numpy_pytorch_reference():
  sd = _random_state_dict()
  params = convert_torch_c3d(sd, clip_shape=CLIP, expected_params=_c3d_shapes())
  clips = np.random.default_rng(1).normal(size=(2,) + CLIP + (3,)).astype(np.float32)
  got = jax.jit(C3D(WIDTH, FC).apply)({"params": params}, jnp.asarray(clips))
  want = _np_c3d_fc7(sd, clips.transpose(0, 4, 1, 2, 3))
  assert np.abs(want).max() > 0.1  # a non-degenerate comparison.
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_layouts():
  sd = _random_state_dict()
  params = convert_torch_c3d(sd, clip_shape=CLIP)
  assert set(params) == set(NAMES) | {"fc6", "fc7"}  # fc8 dropped.
  np.testing.assert_array_equal(
    params["conv2"]["kernel"][0, 1, 2, 3, 5], sd["conv2.weight"][5, 3, 0, 1, 2]
  )
  # fc6 input (t, h, w, c) = (1, 0, 2, 7) is PyTorch input c*6 + t*3 + h*3 + w.
  assert params["fc6"]["kernel"].shape == (192, FC)
  np.testing.assert_array_equal(
    params["fc6"]["kernel"][((1 * 1 + 0) * 3 + 2) * 32 + 7, 4],
    sd["fc6.weight"][4, 7 * 6 + 1 * 3 + 0 * 3 + 2],
  )
  np.testing.assert_array_equal(params["fc7"]["kernel"], sd["fc7.weight"].T)


def test_shape_errors_name_key_expected_and_given():
  sd = _random_state_dict()
  sd["conv3b.weight"] = sd["conv3b.weight"][:, :8]
  with pytest.raises(
    CheckpointError,
    match=r"conv3b.weight: expected shape \(16, 16, 3, 3, 3\), "
    r"got \(16, 8, 3, 3, 3\)",
  ):
    convert_torch_c3d(sd, clip_shape=CLIP)
  sd = _random_state_dict()
  with pytest.raises(
    CheckpointError,
    match=r"fc6.weight: expected shape \(24, 512\), "
    r"got \(24, 192\)",
  ):
    convert_torch_c3d(sd, clip_shape=(16, 112, 112))  # 1x4x4 pool5 grid.
  del sd["fc7.bias"]
  with pytest.raises(CheckpointError, match="missing key 'fc7.bias'"):
    convert_torch_c3d(sd, clip_shape=CLIP)
  sd = _random_state_dict()
  sd["conv6.weight"] = np.zeros(3)
  with pytest.raises(CheckpointError, match="unexpected keys.*conv6.weight"):
    convert_torch_c3d(sd, clip_shape=CLIP)


def test_expected_params_mismatch():
  wider = jax.eval_shape(
    C3D(1 / 8, FC).init, _key(0), jax.ShapeDtypeStruct((1,) + CLIP + (3,), jnp.float32)
  )["params"]
  with pytest.raises(
    CheckpointError,
    match=r"conv1.weight: expected shape \(8, 3, 3, 3, 3\) \(the model's "
    r"c3d/conv1/kernel \(3, 3, 3, 3, 8\)\), got \(4, 3, 3, 3, 3\)",
  ):
    convert_torch_c3d(_random_state_dict(), clip_shape=CLIP, expected_params=wider)


def test_npz_round_trip_and_insert_into_network(tmp_path):
  sd = _random_state_dict()
  path = tmp_path / "c3d.npz"
  np.savez(path, **sd)
  loaded = load_torch_c3d_state_dict(path)
  assert set(loaded) == set(sd)
  params = load_pretrained_c3d(path, clip_shape=CLIP)
  net = ClipSequenceNetwork(num_outputs=2, width_multiplier=WIDTH, fc_dim=FC, lstm_features=4)
  net_shapes = jax.eval_shape(
    net.init, _key(0), jax.ShapeDtypeStruct((1, 1) + CLIP + (3,), jnp.float32)
  )["params"]
  merged = insert_c3d_params(net_shapes, params)
  assert merged["c3d"]["fc6"]["kernel"] is params["fc6"]["kernel"]
  assert merged["head"] is net_shapes["head"]
  small = convert_torch_c3d(sd, clip_shape=(32, 16, 80))
  small["fc7"] = {"kernel": np.zeros((FC, 5)), "bias": np.zeros(5)}
  with pytest.raises(CheckpointError, match=r"c3d/fc7/bias: expected shape \(24,\), got \(5,\)"):
    insert_c3d_params(net_shapes, small)


def test_loader_errors(tmp_path):
  with pytest.raises(CheckpointError, match="not found"):
    load_torch_c3d_state_dict(tmp_path / "missing.npz")
  bad = tmp_path / "c3d.h5"
  bad.write_bytes(b"x")
  with pytest.raises(CheckpointError, match="unknown C3D checkpoint format"):
    load_torch_c3d_state_dict(bad)
  pth = tmp_path / "c3d.pickle.pth"
  pth.write_bytes(b"x")
  if importlib.util.find_spec("torch") is None:
    with pytest.raises(CheckpointError, match="needs PyTorch"):
      load_torch_c3d_state_dict(pth)
  npz = tmp_path / "c3d.npz"
  npz.write_bytes(b"not an npz")
  with pytest.raises(CheckpointError, match="c3d.npz: not a readable .npz"):
    load_torch_c3d_state_dict(npz)
  np.save(tmp_path / "single.npy", np.zeros(3))
  (tmp_path / "single.npy").rename(npz)
  with pytest.raises(CheckpointError, match="c3d.npz: not an .npz archive"):
    load_torch_c3d_state_dict(npz)


# --- model.pretrained_c3d: the tiny training model, the CLI --------------------------------------


def _tiny_model_config():
  """The C3D of tests/conftest.py tiny_training_config, as Sports-1M weights need it."""
  cfg = tiny_training_config("unused").model
  cfg.conv_norm, cfg.input_diff, cfg.input_norm = "none", False, "c3d_sports1m"
  return cfg


def tiny_torch_state_dict(model_config, seed=0, fc8=True):
  """Random weights in the PyTorch C3D layout (NCTHW) for the trunk a model config builds.

  Shapes come from the config (conv_widths, c3d_pool5_shape), not from the converter.
  """
  rng = np.random.default_rng(seed)
  sd, cin = {}, model_config.in_channels
  for name, cout in zip(NAMES, conv_widths(model_config.width_multiplier)):
    sd[f"{name}.weight"] = rng.normal(size=(cout, cin, 3, 3, 3)) * np.sqrt(2 / (27 * cin))
    sd[f"{name}.bias"] = rng.normal(size=cout) * 0.1
    cin = cout
  flat = cin * int(np.prod(c3d_pool5_shape(model_config.clip_shape, model_config.pool5_padding)))
  fc = model_config.fc_dim
  sd["fc6.weight"], sd["fc6.bias"] = (
    rng.normal(size=(fc, flat)) * np.sqrt(2 / flat),
    rng.normal(size=fc) * 0.1,
  )
  sd["fc7.weight"], sd["fc7.bias"] = (
    rng.normal(size=(fc, fc)) * np.sqrt(2 / fc),
    rng.normal(size=fc) * 0.1,
  )
  if fc8:
    sd["fc8.weight"], sd["fc8.bias"] = rng.normal(size=(7, fc)), rng.normal(size=7)
  return {k: v.astype(np.float32) for k, v in sd.items()}


def _assert_converted(params, sd, clip_shape, pool5_padding="torch"):
  """``params`` (a C3D subtree) holds ``sd`` under our layouts (checked by explicit transposes)."""
  assert set(params) == set(NAMES) | {"fc6", "fc7"}
  for name in NAMES:
    np.testing.assert_array_equal(
      np.asarray(params[name]["kernel"]), sd[f"{name}.weight"].transpose(2, 3, 4, 1, 0)
    )
    np.testing.assert_array_equal(np.asarray(params[name]["bias"]), sd[f"{name}.bias"])
  t5, h5, w5 = c3d_pool5_shape(clip_shape, pool5_padding)
  fc6 = sd["fc6.weight"]
  cin = fc6.shape[1] // (t5 * h5 * w5)
  want = fc6.reshape(-1, cin, t5, h5, w5).transpose(2, 3, 4, 1, 0).reshape(-1, fc6.shape[0])
  np.testing.assert_array_equal(np.asarray(params["fc6"]["kernel"]), want)
  np.testing.assert_array_equal(np.asarray(params["fc7"]["kernel"]), sd["fc7.weight"].T)
  np.testing.assert_array_equal(np.asarray(params["fc7"]["bias"]), sd["fc7.bias"])


def test_pretrained_c3d_tiny_npz_round_trip(tmp_path):
  cfg = _tiny_model_config()
  sd = tiny_torch_state_dict(cfg)
  path = tmp_path / "sports1m.npz"
  np.savez(path, **sd)
  loaded = load_torch_c3d_state_dict(path)
  assert set(loaded) == set(sd)
  for key in sd:
    np.testing.assert_array_equal(loaded[key], sd[key])
  cfg.pretrained_c3d = str(path)
  params = steps.load_pretrained_c3d(cfg)  # Checked against the tiny training model's trunk.
  _assert_converted(params, sd, cfg.clip_shape)
  shapes = steps.c3d_param_shapes(cfg)
  jax.tree.map(lambda p, s: np.testing.assert_equal(np.shape(p), s.shape), params, shapes)


def test_pretrained_c3d_loads_a_pickle_of_numpy_arrays_without_torch(tmp_path):
  sd = tiny_torch_state_dict(_tiny_model_config())
  for protocol in (2, 5):
    path = tmp_path / f"c3d_{protocol}.pickle"
    with open(path, "wb") as f:
      pickle.dump({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, f, protocol=protocol)
    loaded = load_torch_c3d_state_dict(path)
    assert set(loaded) == set(sd)
    for key in sd:
      np.testing.assert_array_equal(loaded[key], sd[key])


@pytest.mark.skipif(
  importlib.util.find_spec("torch") is not None,
  reason="PyTorch is installed: a torch pickle is then read with torch.load",
)
def test_pretrained_c3d_torch_files_without_torch_name_the_conversion(tmp_path):
  # What torch.save writes refers to torch globals (legacy pickles) or is a zip archive.
  legacy = tmp_path / "c3d.pickle"
  legacy.write_bytes(b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00.")
  with pytest.raises(
    CheckpointError,
    match=r"c3d.pickle: a pickle that refers to torch._utils._rebuild_tensor_v2; "
    r"reading a PyTorch state dict needs PyTorch.*python -m segtube_jax.models.convert "
    r"--torch .*c3d.pickle --out c3d.npz",
  ):
    load_torch_c3d_state_dict(legacy)
  archive = tmp_path / "c3d.pth"
  archive.write_bytes(b"PK\x03\x04rest")
  with pytest.raises(
    CheckpointError, match="a torch.save zip archive; reading a PyTorch state dict needs PyTorch"
  ):
    load_torch_c3d_state_dict(archive)


def _run_cli(*args):
  return subprocess.run(
    [sys.executable, "-m", "segtube_jax.models.convert", *map(str, args)],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env=cached_env(),
  )


def test_pretrained_c3d_cli_writes_the_npz(tmp_path):
  cfg = _tiny_model_config()
  sd = tiny_torch_state_dict(cfg)
  source = tmp_path / "c3d.pickle"
  with open(source, "wb") as f:
    pickle.dump(sd, f)
  out = tmp_path / "out" / "c3d.npz"
  done = _run_cli("--torch", source, "--out", out, "--clip_shape", "16,16,16")
  assert done.returncode == 0, done.stderr[-2000:]
  assert f"wrote {len(sd)} arrays" in done.stdout
  assert "RuntimeWarning" not in done.stderr
  with np.load(out) as data:
    assert set(data.files) == set(sd)
    for key in sd:
      assert data[key].dtype == np.float32
      np.testing.assert_array_equal(data[key], sd[key])
  cfg.pretrained_c3d = str(out)
  _assert_converted(steps.load_pretrained_c3d(cfg), sd, cfg.clip_shape)
  # Checked before writing: the default clip shape (16x112x112) does not fit this fc6.
  done = _run_cli("--torch", source, "--out", tmp_path / "big.npz")
  assert done.returncode == 2 and "fc6.weight: expected shape" in done.stderr
  assert not (tmp_path / "big.npz").exists()
  del sd["conv2.bias"]
  with open(source, "wb") as f:
    pickle.dump(sd, f)
  done = _run_cli("--torch", source, "--out", tmp_path / "bad.npz", "--clip_shape", "16,16,16")
  assert done.returncode == 2 and "missing key 'conv2.bias'" in done.stderr, done.stderr
  assert not (tmp_path / "bad.npz").exists()


def test_pretrained_c3d_cli_reads_a_torch_save_file(tmp_path):
  torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not installed (the project does not require it); "
    "reading a torch.save state dict needs it",
  )
  sd = tiny_torch_state_dict(_tiny_model_config())
  source = tmp_path / "c3d.pth"
  torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, source)
  out = tmp_path / "c3d.npz"
  done = _run_cli("--torch", source, "--out", out, "--clip_shape", "16,16,16")
  assert done.returncode == 0, done.stderr[-2000:]
  with np.load(out) as data:
    for key in sd:
      np.testing.assert_array_equal(data[key], sd[key])
