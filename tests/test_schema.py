"""The one defaults home (schema.defaults) and the one validator (schema.validate)."""

import ast

import ml_collections
import pytest

from configs import actseg, default, mixed, synthetic, thumos14
from segtube_jax import schema
from segtube_jax.errors import ConfigError
from segtube_jax.schema import checks
from tests.conftest import PROJECT_ROOT


def _leaves(config, prefix=""):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def _rule_keys():
  keys = {k for k, _, _ in checks.EXPERIMENT_RULES}
  keys |= {f"model.{k}" for k, _, _ in checks.MODEL_RULES}
  keys |= {f"detector.{k}" for k, _, _ in checks.DETECTOR_RULES}
  keys |= {f"segmentation.{k}" for k, _, _ in checks.SEGMENTATION_RULES}
  return keys


def test_every_default_has_a_rule_and_every_rule_a_default():
  leaves = set(_leaves(schema.experiment_config()))
  assert leaves - _rule_keys() == set(), "keys without a rule in schema/checks.py"
  assert _rule_keys() - leaves == set(), "rules for keys the schema does not have"


@pytest.mark.parametrize("module", [default, synthetic, thumos14, actseg, mixed])
def test_every_experiment_config_builds_on_the_schema_and_validates(module):
  config = module.get_config()
  assert set(_leaves(config)) == set(_leaves(schema.experiment_config()))
  config.dataset.root = config.dataset.root or "data"
  schema.validate(config, 1)


def test_no_config_default_outside_the_schema():
  # Only schema/defaults.py creates ConfigDicts with settings in the package: one defaults home.
  owners = []
  for path in sorted((PROJECT_ROOT / "segtube_jax").rglob("*.py")):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
      if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "ConfigDict":
        if not node.args and not node.keywords:
          owners.append(str(path.relative_to(PROJECT_ROOT)))
  assert set(owners) == {"segtube_jax/schema/defaults.py"}, owners


def _config(**overrides):
  c = synthetic.get_config()
  for key, value in overrides.items():
    node = c
    *path, last = key.split(".")
    for part in path:
      node = node[part]
    node[last] = value
  return c


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("seed", -1, r"config.seed must be an integer in \[0, 2\*\*32\)"),
    ("dataset.root", "", "config.dataset.root must be a dataset folder"),
    ("dataset.encoding", "webp", "config.dataset.encoding must be one of"),
    ("clips.window_lengths", (8,), "config.clips.window_lengths must be"),
    ("model.fc_dim", 0, "config.model.fc_dim must be a positive integer"),
    ("model.clip_shape", (16, 8, 8), "config.model.clip_shape must be at least"),
    ("optimizer.learning_rate", float("nan"), "config.optimizer.learning_rate"),
    ("detector.gamma", 1.0, r"config.detector.gamma must be in \[0, 1\)"),
    ("detector.batch_size", 0, "config.detector.batch_size must be a positive integer"),
    ("evaluation.protocol", "voc", "config.evaluation.protocol must be one of"),
    ("evaluation.tious", (), "config.evaluation.tious must be"),
    ("evaluation.workers", 0, "config.evaluation.workers"),
    ("segmentation.beta", 1.5, r"config.segmentation.beta must be a number in \[0, 1\]"),
    ("segmentation.graph_height", 400, "graph_height .* at most .*work_height"),
    ("segmentation.threads", -1, "segmentation.threads must be an integer >= 0"),
    ("segmentation.flow.finest_scale", -1, "flow.finest_scale must be an integer >= 0"),
    ("clips.background_coverage", 0.9, "must be below"),
    ("clips.resize", (20, 20), "at least the clip size"),
    ("train.microbatch_size", 3, "microbatch_size must be 0"),
  ],
)
def test_validate_names_the_key(key, value, match):
  with pytest.raises(ConfigError, match=match):
    schema.validate(_config(**{key: value}), 1)


def test_validate_unknown_and_missing_keys():
  c = _config()
  with c.unlocked():
    c.train.num_stpes = 10
  with pytest.raises(ConfigError, match=r"unknown config keys \['config.train.num_stpes'\]"):
    schema.validate(c)
  c = _config()
  del c.segmentation.refine["band"]
  with pytest.raises(ConfigError, match=r"missing keys \['config.segmentation.refine.band'\]"):
    schema.validate(c)


def test_validate_checks_the_device_count_only_when_given():
  c = _config(**{"train.global_batch_size": 6, "train.microbatch_size": 0})
  schema.validate(c)
  with pytest.raises(ConfigError, match="multiple of the 4 device"):
    schema.validate(c, 4)


def test_schema_module_imports_only_the_bottom_layer():
  for name in ("defaults.py", "checks.py"):
    tree = ast.parse((PROJECT_ROOT / "segtube_jax/schema" / name).read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
      a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    project = {m for m in mods if m.startswith("segtube_jax")}
    assert project <= {"segtube_jax.errors", "segtube_jax.schema", "segtube_jax.schema.defaults"}
