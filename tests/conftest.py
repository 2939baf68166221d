"""Shared test fixtures."""

import importlib.util
import os
import pathlib
import sys
import types

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
  os.environ.get("SEGTUBE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)


def load_bench(name: str) -> types.ModuleType:
  """Imports ``bench/<name>.py`` (not a package) as module ``bench_<name>``."""
  spec = importlib.util.spec_from_file_location(
    f"bench_{name}", PROJECT_ROOT / "bench" / f"{name}.py"
  )
  module = importlib.util.module_from_spec(spec)
  # dataclasses resolve the module's annotations through sys.modules.
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


# The tests compile dozens of tiny programs and run each for a few steps: LLVM's optimisation
# passes cost more than they save there (the tiny train step compiles in 6 s instead of 10 s).
# Set before JAX is imported; every JAX subprocess of the tests gets it too (cached_env).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """The read-only real reference data (../shared/data); skips the test when absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"shared reference data not found at {SHARED_DATA} (set SEGTUBE_SHARED_DATA)")
  return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
  """Identical XLA programs (the tiny train step, compiled by many tests) compile once per session."""
  import jax

  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def cached_env(**extra: str) -> dict[str, str]:
  """The environment for a subprocess that runs JAX: it shares this session's compilation cache.

  Identical programs (the tiny train step, the localizer) then compile once per session, not
  once per subprocess.
  """
  import jax

  if "XLA_FLAGS" in extra:
    extra["XLA_FLAGS"] = f"{extra['XLA_FLAGS']} {TEST_XLA_FLAGS}"
  env = dict(os.environ, **extra)
  cache = jax.config.jax_compilation_cache_dir
  if cache:
    env.update(
      JAX_COMPILATION_CACHE_DIR=str(cache),
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
  return env


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> pathlib.Path:
  """A small synthetic dataset (9 videos of 150 frames at 32x32), generated once per session."""
  from segtube_jax.data import synthetic

  root = tmp_path_factory.mktemp("synthetic") / "data"
  synthetic.generate_dataset(
    root, 9, seed=0, size=32, min_frames=150, max_frames=150, num_classes=5
  )
  return root


def tiny_training_config(root, **overrides):
  """The synthetic config shrunk so one step compiles and runs in seconds on CPU."""
  import sys

  sys.path.insert(0, str(PROJECT_ROOT))
  from configs import synthetic as synthetic_config

  c = synthetic_config.get_config()
  c.dataset.root = str(root)
  c.dataset.tfds_dir = str(pathlib.Path(root).parent / "tfds")  # Packed once, shared by the tests.
  c.dataset.frame_size = (32, 32)
  c.clips.resize = (18, 18)
  c.clips.seq_len = 2
  c.model.width_multiplier = 0.0625
  c.model.fc_dim = 32
  c.model.lstm_features = 8
  c.model.clip_shape = (16, 16, 16)
  c.model.shared_trunk = False  # The paper's two networks; shared-trunk tests override it.
  c.train.global_batch_size = 2
  c.train.num_steps = 1
  c.train.log_every = 1
  c.train.checkpoint_every = 1
  c.train.async_checkpoints = False
  c.optimizer.warmup_steps = 0
  c.data_threads = 0
  c.data_prefetch = 0
  for key, value in overrides.items():
    node = c
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return c
