"""Tests of the proposal/classification networks, Eq. (1)/(2) helpers and model configs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from segtube_jax.errors import ConfigError
from segtube_jax.models import (
  ClassificationNetwork,
  ClipSequenceNetwork,
  ProposalNetwork,
  TwoHeadNetwork,
  build_classification_network,
  build_model,
  build_proposal_network,
  build_two_head_network,
  input_shape,
)
from segtube_jax.models.networks import frame_differences
from segtube_jax.schema import model_config, tiny_model_config, validate_model

# Smallest sensible trunk for CPU tests: widths 4..32, fc 16, 16x16x16 clips.
SMALL = dict(width_multiplier=1 / 16, fc_dim=16, lstm_features=8)
B, S, CLIP = 2, 3, (16, 16, 16, 3)


def _key(seed: int) -> jax.Array:
  # XLA CPU compiles threefry initialisers slowly (~1-3 s each); rbg keys compile ~3x faster.
  return jax.random.key(seed, impl="rbg")


def _count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def clips():
  return jnp.asarray(np.random.default_rng(0).normal(size=(B, S) + CLIP), jnp.float32)


@pytest.fixture(scope="module")
def classifier(clips):
  model = ClassificationNetwork(4, **SMALL)
  return model, jax.jit(model.init)(_key(0), clips)


def test_classification_network_shapes_and_features(classifier, clips):
  model, params = classifier
  assert isinstance(model, ClipSequenceNetwork) and model.num_outputs == 5
  assert set(params["params"]) == {"c3d", "head"}
  assert set(params["params"]["head"]) == {"feature_norm", "lstm", "logits"}
  logits, feats = model.apply(params, clips, return_features=True)
  assert logits.shape == (B, S, 5) and feats.shape == (B, S, 16)
  np.testing.assert_allclose(model.apply(params, clips), logits, atol=1e-6)


def test_lstm_runs_causally_across_the_clip_sequence(classifier, clips):
  # Changing the last clip must leave earlier clips' logits untouched but change its own.
  model, params = classifier
  logits = model.apply(params, clips)
  changed = model.apply(params, clips.at[:, -1].multiply(-3.0))
  np.testing.assert_allclose(changed[:, :-1], logits[:, :-1], atol=1e-6)
  assert not np.allclose(changed[:, -1], logits[:, -1])
  # ...and changing the first clip changes later clips through the recurrence.
  changed = model.apply(params, clips.at[:, 0].multiply(-3.0))
  assert not np.allclose(changed[:, -1], logits[:, -1])


def test_dropout_only_in_training(classifier, clips):
  model, params = classifier
  a = model.apply(params, clips, train=True, rngs={"dropout": _key(1)})
  b = model.apply(params, clips, train=True, rngs={"dropout": _key(2)})
  assert a.shape == (B, S, 5) and not np.allclose(a, b)


def test_proposal_network_and_two_head_network(clips):
  proposal = ProposalNetwork(**SMALL)
  assert proposal.num_outputs == 2
  two = TwoHeadNetwork(num_classes=3, **SMALL)
  params = jax.jit(two.init)(_key(0), clips)["params"]
  assert set(params) == {"c3d", "proposal_head", "classification_head"}
  pro, cla, feats = two.apply({"params": params}, clips, return_features=True)
  assert pro.shape == (B, S, 2) and cla.shape == (B, S, 4) and feats.shape == (B, S, 16)


def test_frame_differences():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 4, 5, 5, 3)), jnp.float32)
  out = frame_differences(x)
  assert out.shape == (2, 3, 4, 5, 5, 6)
  np.testing.assert_array_equal(out[..., :3], x)
  np.testing.assert_array_equal(out[..., 0, :, :, 3:], 0.0)  # No previous frame: 0.
  np.testing.assert_allclose(
    out[..., 1:, :, :, 3:], x[..., 1:, :, :, :] - x[..., :-1, :, :, :], atol=1e-6
  )
  static = jnp.broadcast_to(x[..., :1, :, :, :], x.shape)
  np.testing.assert_array_equal(frame_differences(static)[..., 3:], 0.0)


def test_input_diff_feeds_rgb_and_differences_to_conv1(clips):
  plain = ClipSequenceNetwork(num_outputs=3, **SMALL)
  diff = ClipSequenceNetwork(num_outputs=3, input_diff=True, **SMALL)
  params = jax.jit(diff.init)(_key(0), clips)
  kernel = params["params"]["c3d"]["conv1"]["kernel"]
  assert kernel.shape[-2] == 6
  assert (
    jax.eval_shape(plain.init, _key(0), clips)["params"]["c3d"]["conv1"]["kernel"].shape[-2] == 3
  )
  # With the difference channels' weights zeroed, the network is the RGB network with the RGB weights.
  rgb_only = jax.tree.map(lambda x: x, params)
  rgb_only["params"]["c3d"]["conv1"]["kernel"] = kernel.at[..., 3:, :].set(0.0)
  rgb = jax.tree.map(lambda x: x, params)
  rgb["params"]["c3d"]["conv1"]["kernel"] = kernel[..., :3, :]
  np.testing.assert_allclose(
    diff.apply(rgb_only, clips), plain.apply(rgb, clips), rtol=1e-5, atol=1e-5
  )
  # ... and with them, the output depends on the motion.
  assert not np.allclose(diff.apply(params, clips), plain.apply(rgb, clips), atol=1e-4)
  cfg = tiny_model_config()
  cfg.input_diff = True
  assert build_model(cfg, 2).input_diff
  cfg = cfg.to_dict()
  cfg["input_diff"] = "yes"
  with pytest.raises(ConfigError, match="model.input_diff must be a bool"):
    build_model(cfg, 2)


def test_networks_reject_unbatched_clips(clips):
  with pytest.raises(ConfigError, match=r"\[B, S, T, H, W, C\]"):
    ProposalNetwork(**SMALL).init(_key(0), clips[0])


def test_paper_size_network_parameter_counts():
  cfg = model_config()
  model = build_classification_network(cfg, 20)
  shapes = jax.eval_shape(
    model.init, jax.random.key(0), jax.ShapeDtypeStruct(input_shape(cfg, 1, 2), jnp.float32)
  )["params"]
  assert _count(shapes["c3d"]) == 77_995_776
  # Peephole LSTM: [x, h] -> 4 gates + bias + 3 peephole vectors per layer.
  lstm0 = 4096 * 1024 + 256 * 1024 + 1024 + 3 * 256
  lstm1 = 256 * 1024 + 256 * 1024 + 1024 + 3 * 256
  assert _count(shapes["head"]["lstm"]) == lstm0 + lstm1
  assert shapes["head"]["logits"]["kernel"].shape == (256, 21)


def test_build_model_from_tiny_config():
  cfg = tiny_model_config()
  validate_model(cfg)
  model = build_model(cfg, 3)
  assert model.num_outputs == 3 and model.fc_dim == 512 and model.width_multiplier == 0.125
  assert build_proposal_network(cfg).num_outputs == 2
  assert build_two_head_network(cfg, 5).num_classes == 5
  cfg.dtype = "bfloat16"
  assert build_model(cfg, 2).dtype == jnp.bfloat16
  shapes = jax.eval_shape(
    model.init, jax.random.key(0), jax.ShapeDtypeStruct(input_shape(cfg, 1, 1), jnp.float32)
  )["params"]
  # 16x32x32 clips -> pool5 1x2x2 x 64 channels.
  assert shapes["c3d"]["fc6"]["kernel"].shape == (256, 512)


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("width_multiplier", -0.5, "width_multiplier must be a number > 0"),
    ("fc_dim", 0, "fc_dim must be a positive integer"),
    ("lstm_layers", 0, "lstm_layers must be a positive integer"),
    ("dropout_rate", 1.0, r"dropout_rate must be in \[0, 1\)"),
    ("dtype", "float16", "dtype must be one of"),
    ("conv_impl", "fft", "conv_impl must be one of"),
    ("pool5_padding", "same", "pool5_padding must be one of"),
    ("clip_shape", (8, 112, 112), "clip_shape.*too small"),
    ("clip_shape", (16, 112), "clip_shape must be 3 positive ints"),
  ],
)
def test_config_validation_names_key(key, value, match):
  cfg = model_config().to_dict()
  cfg[key] = value
  with pytest.raises(ConfigError, match=match):
    build_model(cfg, 2)


def test_config_missing_and_unknown_keys():
  cfg = model_config().to_dict()
  del cfg["fc_dim"]
  with pytest.raises(ConfigError, match="missing keys.*fc_dim"):
    validate_model(cfg)
  cfg = model_config().to_dict()
  cfg["lstm_units"] = 3
  with pytest.raises(ConfigError, match="unknown config keys.*lstm_units"):
    validate_model(cfg)
  with pytest.raises(ConfigError, match="num_outputs"):
    build_model(model_config(), 1)
  with pytest.raises(ConfigError, match="num_classes"):
    build_classification_network(model_config(), 0)
