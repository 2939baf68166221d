"""Tests of segtube_jax.training: end-to-end train_and_evaluate, exact resume, pmap, microbatches, errors.

A non-finite loss (NaN in the input clips) is tested in test_faults.py.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from segtube_jax.data import pipeline as chunk_pipeline
from segtube_jax.errors import CheckpointError, ConfigError, DatasetError
from segtube_jax.training import (
  TrainingStopped,
  checkpointing,
  input_pipeline,
  train_and_evaluate,
  trainer,
)
from tests.conftest import PROJECT_ROOT, cached_env, tiny_training_config


def _params(workdir):
  step, params = checkpointing.latest_params(workdir)
  return params, step


def test_one_step_end_to_end(tiny_synthetic, tmp_path):
  config = tiny_training_config(tiny_synthetic)
  result = train_and_evaluate(config, tmp_path / "w")
  for key in ("proposal_accuracy", "classification_accuracy", "action_accuracy"):
    assert 0.0 <= result[key] <= 1.0
  assert result["proposal_windows"] > 0
  rows = [json.loads(l) for l in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
  assert [r["split"] for r in rows] == ["train", "validation"]
  assert np.isfinite(rows[0]["loss"]) and rows[0]["clips_per_second"] > 0
  assert list((tmp_path / "w" / "tensorboard").glob("events.out.tfevents.*"))
  params, step = _params(tmp_path / "w")
  assert step == 1 and set(params) == {"proposal", "classification"}


def _stop_after(monkeypatch, step):
  """Sends this process SIGTERM right after the loop logs the train metrics of ``step``.

  Deterministic: the signal is raised synchronously in the main thread while step ``step`` is
  being logged (tiny configs log every step), so the loop sees it before it checks for a stop
  at that same step, saves and stops there.
  """
  write = trainer.MetricWriter.write

  def write_then_signal(self, at, split, metrics):
    write(self, at, split, metrics)
    if split == "train" and at == step:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(trainer.MetricWriter, "write", write_then_signal)


def test_interrupted_run_resumes_bit_exact(tiny_synthetic, tmp_path, monkeypatch):
  config = tiny_training_config(
    tiny_synthetic, **{"train.num_steps": 5, "train.checkpoint_every": 10}
  )
  train_and_evaluate(config, tmp_path / "straight")
  _stop_after(monkeypatch, 2)
  with pytest.raises(
    TrainingStopped,
    match=r"received signal 15; saved checkpoint step 2 in .*checkpoints; rerun the same command",
  ):
    train_and_evaluate(config, tmp_path / "resumed")
  monkeypatch.undo()
  _, stopped_at = _params(tmp_path / "resumed")
  assert stopped_at == 2
  train_and_evaluate(config, tmp_path / "resumed")  # The same command, rerun.
  a, step_a = _params(tmp_path / "straight")
  b, step_b = _params(tmp_path / "resumed")
  assert step_a == step_b == 5
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_sigterm_at_a_checkpoint_step_saves_it_once_then_resumes(
  tiny_synthetic, tmp_path, monkeypatch
):
  # The stop lands at step 2, which the loop checkpoints anyway (checkpoint_every 2): one save.
  config = tiny_training_config(
    tiny_synthetic, **{"train.num_steps": 4, "train.checkpoint_every": 2}
  )
  _stop_after(monkeypatch, 2)
  with pytest.raises(
    TrainingStopped, match=r"received signal 15; saved checkpoint step 2 in .*checkpoints; rerun"
  ):
    train_and_evaluate(config, tmp_path / "w")
  monkeypatch.undo()
  assert sorted(p.name for p in (tmp_path / "w" / "checkpoints").iterdir()) == ["2"]
  _, stopped_at = _params(tmp_path / "w")
  assert stopped_at == 2
  train_and_evaluate(config, tmp_path / "w")
  _, step = _params(tmp_path / "w")
  assert step == 4
  rows = [json.loads(l) for l in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["split"]) for r in rows] == [
    (1, "train"),
    (2, "train"),
    (3, "train"),
    (4, "train"),
    (4, "validation"),
  ]


def _pretrained_config(tiny_synthetic, npz, **overrides):
  # warmup from 0: step 1's learning rate is 0, so the checkpoint holds the initial weights.
  return tiny_training_config(
    tiny_synthetic,
    **{
      "model.pretrained_c3d": str(npz),
      "model.input_norm": "c3d_sports1m",
      "model.conv_norm": "none",
      "model.input_diff": False,
      "optimizer.warmup_steps": 2,
      **overrides,
    },
  )


def test_train_starts_from_pretrained_c3d_npz(tiny_synthetic, tmp_path):
  from tests.test_models_convert import _assert_converted, tiny_torch_state_dict

  config = _pretrained_config(tiny_synthetic, tmp_path / "c3d.npz")
  sd = tiny_torch_state_dict(config.model, seed=3)
  np.savez(tmp_path / "c3d.npz", **sd)
  train_and_evaluate(config, tmp_path / "pre")
  pre, step = _params(tmp_path / "pre")
  assert step == 1
  for net in ("proposal", "classification"):  # Both of the paper's networks get the trunk.
    _assert_converted(jax.tree.map(np.asarray, pre[net]["c3d"]), sd, config.model.clip_shape)
  # Only the trunk differs from the random initialisation of the same seed: the heads keep it.
  from segtube_jax.training import steps  # pylint: disable=import-outside-toplevel

  _, classes = trainer.load_experiment(tmp_path / "pre")
  init, _, _ = steps.create_train_state(config, len(classes), steps.make_rng(config.seed), 1)
  scratch = jax.tree.map(np.asarray, init.params)
  for net in ("proposal", "classification"):
    assert not np.array_equal(
      pre[net]["c3d"]["conv1"]["kernel"], scratch[net]["c3d"]["conv1"]["kernel"]
    )
    rest = lambda p: {k: v for k, v in p[net].items() if k != "c3d"}
    jax.tree.map(np.testing.assert_array_equal, rest(pre), rest(scratch))


def test_pretrained_c3d_malformed_file_fails_before_compiling(
  tiny_synthetic, tmp_path, monkeypatch
):
  from tests.test_models_convert import tiny_torch_state_dict

  def no_work(*args, **kwargs):
    raise AssertionError("reached the data pipeline / compilation with bad weights")

  monkeypatch.setattr(input_pipeline, "ensure_built", no_work)
  monkeypatch.setattr(jax, "pmap", no_work)
  npz = tmp_path / "c3d.npz"
  config = _pretrained_config(tiny_synthetic, npz)
  with pytest.raises(
    CheckpointError, match=r"model.pretrained_c3d=.*c3d.npz: C3D checkpoint not found"
  ):
    train_and_evaluate(config, tmp_path / "missing")
  npz.write_bytes(b"not a zip archive")
  with pytest.raises(
    CheckpointError, match=r"model.pretrained_c3d=.*c3d.npz: .*not a readable .npz"
  ):
    train_and_evaluate(config, tmp_path / "corrupt")
  sd = tiny_torch_state_dict(config.model)
  del sd["conv3b.bias"]
  np.savez(npz, **sd)
  with pytest.raises(CheckpointError, match=r"model.pretrained_c3d=.*missing key 'conv3b.bias'"):
    train_and_evaluate(config, tmp_path / "missing_key")
  sd = tiny_torch_state_dict(config.model)
  sd["conv2.weight"] = sd["conv2.weight"][:, :, :2]
  np.savez(npz, **sd)
  with pytest.raises(CheckpointError, match=r"model.pretrained_c3d=.*conv2.weight: expected shape"):
    train_and_evaluate(config, tmp_path / "shape")


def test_shared_trunk_and_init_from(tiny_synthetic, tmp_path):
  config = tiny_training_config(tiny_synthetic, **{"model.shared_trunk": True})
  train_and_evaluate(config, tmp_path / "shared")
  params, _ = _params(tmp_path / "shared")
  assert set(params["shared"]) == {"c3d", "proposal_head", "classification_head"}
  warm = tiny_training_config(
    tiny_synthetic,
    **{
      "model.shared_trunk": True,
      "init_from": str(tmp_path / "shared"),
      "optimizer.learning_rate": 1e-12,
    },
  )
  train_and_evaluate(warm, tmp_path / "warm")
  loaded, step = _params(tmp_path / "warm")
  assert step == 1  # A new run (no resume), starting from the loaded weights.
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), params, loaded)


@pytest.mark.parametrize(
  "overrides, message",
  [
    ({"model.clip_shape": (8, 16, 16)}, "clip length\\) must be 16"),
    ({"train.global_batch_size": 0}, "global_batch_size must be a positive integer, got 0"),
    ({"optimizer.learning_rate": -1.0}, "learning_rate must be > 0"),
    ({"clips.mask_source": "magic"}, "mask_source must be one of"),
    ({"dataset.encoding": "gif"}, r"dataset.encoding must be one of \('png', 'jpeg'\)"),
    (
      {"train.global_batch_size": 4, "train.microbatch_size": 3},
      "microbatch_size must be 0 .* divides the 4",
    ),
    ({"train.microbatch_size": -1}, "microbatch_size must be 0"),
  ],
)
def test_config_errors(tiny_synthetic, tmp_path, overrides, message):
  with pytest.raises(ConfigError, match=message):
    train_and_evaluate(tiny_training_config(tiny_synthetic, **overrides), tmp_path / "w")


def test_unknown_key_and_bad_dataset(tiny_synthetic, tmp_path):
  config = tiny_training_config(tiny_synthetic)
  config.train.num_stepz = 3
  with pytest.raises(ConfigError, match=r"unknown config keys \['config.train.num_stepz'\]"):
    train_and_evaluate(config, tmp_path / "w")
  with pytest.raises(DatasetError, match="dataset folder not found"):
    train_and_evaluate(tiny_training_config(tmp_path / "missing"), tmp_path / "w2")


_PMAP_SCRIPT = r"""
import os, sys, json
sys.path.insert(0, {root!r})
import jax, jax.numpy as jnp, numpy as np
from flax import jax_utils
from tests.conftest import tiny_training_config
from segtube_jax.training import steps
# SGD: Adam's first step is ~lr * sign(g), which turns float reduction-order noise in tiny
# gradients into full-size differences; SGD keeps the comparison about the gradients.
config = tiny_training_config("unused", **{{"model.dropout_rate": 0.0, "optimizer.name": "sgd"}})
state, model, schedule = steps.create_train_state(config, 5, steps.make_rng(0), 10)
rng = np.random.default_rng(0)
batch = {{"clips": rng.integers(0, 255, (4, 2, 16, 16, 16, 3), dtype=np.uint8),
          "proposal_labels": np.array([[1, 0], [0, -1], [1, 1], [0, 0]], np.int32),
          "class_labels": np.array([[2, 0], [-1, -1], [3, 3], [0, -1]], np.int32)}}
n = jax.local_device_count()
out = {{"devices": n}}
np.savez(f"{{sys.argv[1]}}_init.npz", *[np.asarray(x) for x in jax.tree.leaves(state.params)])
for micro in [int(m) for m in sys.argv[2].split(",")]:
  step = jax.pmap(steps.make_train_step(model, schedule, microbatch_size=micro), axis_name="batch")
  new, metrics = step(jax_utils.replicate(state, jax.local_devices()[:n]),
                      jax.tree.map(lambda x: x.reshape((n, -1) + x.shape[1:]), batch))
  leaves = [np.asarray(x) for x in jax.tree.leaves(new.params)]
  same = all(np.array_equal(x[0], x[i]) for x in leaves for i in range(n))
  np.savez(f"{{sys.argv[1]}}_{{micro}}.npz", *[x[0] for x in leaves])
  per_device = jax.tree.map(lambda x: x[:len(x) // n], batch)
  out[micro] = {{"replicas_identical": bool(same), "metrics": {{k: float(v[0]) for k, v in metrics.items()}},
                "microbatches": steps._microbatches(per_device, micro)[0]}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_pmap_two_devices_and_microbatches_equal_one_whole_batch(tmp_path):
  # 1 device, whole batch of 4 sequences vs 2 devices, each splitting its 2 sequences into 2
  # microbatches of 1 (train.microbatch_size): the same update. (One comparison covers both the
  # device split and the microbatch split; each compile of the step costs ~12 s here.)
  script = tmp_path / "step.py"
  script.write_text(_PMAP_SCRIPT.format(root=str(PROJECT_ROOT)))
  params, metrics = {}, {}
  for n, micros in ((1, "0"), (2, "1")):
    env = cached_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
    out = subprocess.run(
      [sys.executable, str(script), str(tmp_path / f"p{n}"), micros],
      env=env,
      cwd=PROJECT_ROOT,
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["devices"] == n
    for micro in micros.split(","):
      assert info[micro]["replicas_identical"] and info[micro]["microbatches"] == (
        2 if micro == "1" else 1
      )
      params[n, micro] = np.load(tmp_path / f"p{n}_{micro}.npz")
      metrics[n, micro] = info[micro]["metrics"]
  reference = (1, "0")
  assert (
    metrics[reference]["classification_windows"] == 5
    and metrics[reference]["proposal_windows"] == 7
  )
  for key in params[reference].files:
    np.testing.assert_allclose(params[reference][key], params[2, "1"][key], rtol=1e-5, atol=1e-6)
  for key, value in metrics[reference].items():
    assert metrics[2, "1"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
  initial = np.load(tmp_path / "p1_init.npz")
  assert any(not np.allclose(initial[k], params[reference][k]) for k in initial.files)


def _cli_overrides(config) -> list[str]:
  """--config.key=value flags reproducing the tiny test config on the command line."""
  from tests.detector_testing import cli_overrides  # pylint: disable=import-outside-toplevel

  return cli_overrides(config)


@pytest.mark.slow
def test_cli_killed_after_checkpoint_resumes_and_finishes(tiny_synthetic, tmp_path):
  config = tiny_training_config(
    tiny_synthetic, **{"train.num_steps": 6, "train.checkpoint_every": 2}
  )
  cmd = [
    sys.executable,
    "train.py",
    "--config",
    "configs/synthetic.py",
    "--workdir",
    str(tmp_path / "w"),
    *_cli_overrides(config),
  ]
  proc = subprocess.Popen(
    cmd,
    cwd=PROJECT_ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
    env=cached_env(),
  )
  deadline = time.time() + 240
  while (
    not (tmp_path / "w" / "checkpoints" / "2").is_dir()
    and proc.poll() is None
    and time.time() < deadline
  ):
    time.sleep(0.05)
  proc.kill()  # SIGKILL: no chance to save anything more.
  proc.wait()
  assert (tmp_path / "w" / "checkpoints" / "2").is_dir()
  done = subprocess.run(
    cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=cached_env()
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Restored checkpoint step" in done.stderr
  # A quiet console: the project's progress lines, none of orbax's INFO pages.
  assert "trainer.py" in done.stderr and "checkpoint_manager.py" not in done.stderr
  _, step = _params(tmp_path / "w")
  assert step == 6
  train_and_evaluate(config, tmp_path / "straight")
  a, _ = _params(tmp_path / "straight")
  b, _ = _params(tmp_path / "w")
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_color_augment_permutes_or_inverts_the_channels_of_training_clips_only(
  tiny_synthetic, tmp_path
):
  config = tiny_training_config(tiny_synthetic)
  source = chunk_pipeline.open_chunk_source(
    *input_pipeline.ensure_built(config, tmp_path), "training"
  )
  seq = input_pipeline.build_sequences(source, config.clips, balance_seed=None)[3]
  shape = tuple(config.model.clip_shape)
  plain_cfg, augment_cfg = (
    config.clips.copy_and_resolve_references(),
    config.clips.copy_and_resolve_references(),
  )
  plain_cfg.color_augment, augment_cfg.color_augment = False, True
  plain = input_pipeline.LoadClips(source, plain_cfg, shape, train=True)
  augment = input_pipeline.LoadClips(source, augment_cfg, shape, train=True)
  seen = set()
  for seed in range(12):
    # The same seed crops the same way; augmentation then recolours the whole sequence at once.
    base = plain(seq, np.random.default_rng(seed))["clips"]
    out = augment(seq, np.random.default_rng(seed))["clips"]
    valid = seq.valid
    matches = [
      (p, inv)
      for p in itertools.permutations(range(3))
      for inv in (False, True)
      if np.array_equal(
        out[valid], (255 - base[valid][..., list(p)]) if inv else base[valid][..., list(p)]
      )
    ]
    assert len(matches) == 1, seed
    seen.add(matches[0])
  assert len(seen) >= 4 and any(inv for _, inv in seen) and any(not inv for _, inv in seen)
  evaluation = input_pipeline.LoadClips(
    source, augment_cfg, shape, train=False
  )  # Never recoloured.
  np.testing.assert_array_equal(
    evaluation(seq)["clips"],
    input_pipeline.LoadClips(source, plain_cfg, shape, train=False)(seq)["clips"],
  )


@pytest.mark.parametrize("name", ["thumos14", "actseg", "mixed"])
def test_paper_configs_run_the_paper_method_from_pretrained_c3d(name, tmp_path, monkeypatch):
  import importlib

  sys.path.insert(0, str(PROJECT_ROOT))
  config = importlib.import_module(f"configs.{name}").get_config()
  assert config.clips.mask_source == "saliency"
  assert config.detector.class_assignment == "paper"
  assert config.model.pretrained_c3d and config.model.input_norm == "c3d_sports1m"
  m = config.model
  assert (m.feature_norm, m.conv_norm, m.input_diff, m.feature_skip) == (
    False,
    "none",
    False,
    False,
  )
  # The trunk the Sports-1M weights fix, fed 112x112 crops of 128x171 frames.
  assert (m.width_multiplier, m.fc_dim, m.in_channels, tuple(m.clip_shape)) == (
    1.0,
    4096,
    3,
    (16, 112, 112),
  )
  assert tuple(config.dataset.frame_size) == (128, 171) and tuple(config.clips.resize) == (128, 171)
  # The weights are the user's to supply: missing, train.py stops before any work, naming them.
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(input_pipeline, "ensure_built", lambda *a, **k: pytest.fail("packed data"))
  with pytest.raises(
    CheckpointError,
    match=r"model.pretrained_c3d=pretrained/c3d_sports1m.npz: C3D checkpoint "
    r"not found .*python -m segtube_jax.models.convert --torch c3d.pickle",
  ):
    train_and_evaluate(config, tmp_path / "w")
