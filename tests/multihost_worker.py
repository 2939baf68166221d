"""One process of a multi-process training job, launched by tests/test_multihost.py.

Usage: python tests/multihost_worker.py SPEC_JSON OUT_DIR

SPEC_JSON: {"dataset": ..., "overrides": {...}, "runs": [{"workdir", "num_steps", "resume_from"?}]}.
The runs go one after another in this process, each a ``train_and_evaluate`` call; the first
joins the job through ``config.distributed='auto'`` and the JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID environment the test sets. ``resume_from: [workdir, step]``
first makes ``workdir`` a copy of that workdir as it stood after ``step`` (later checkpoints
left out: what a run of ``step`` steps leaves), so the run restores it and goes on.

After run i this process writes ``OUT_DIR/run{i}_process{p}.npz``, the parameters it holds in
memory at its last checkpoint (not the checkpoint file, which process 0 alone writes), and
``.json`` with its validation metrics, data position and process layout.
"""

import faulthandler
import json
import logging as pylogging
import os
import pathlib
import shutil
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import logging  # pylint: disable=wrong-import-position
import jax  # pylint: disable=wrong-import-position
from jax.experimental import multihost_utils  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from segtube_jax.training import checkpointing, train_and_evaluate  # pylint: disable=wrong-import-position
from tests.conftest import tiny_training_config  # pylint: disable=wrong-import-position


def _copy_until(src: pathlib.Path, dst: pathlib.Path, step: int) -> None:
  """``dst`` = ``src`` without the checkpoints after ``step`` (process 0 copies, all wait)."""
  if jax.process_index() == 0:
    shutil.copytree(
      src,
      dst,
      ignore=lambda folder, names: [
        n
        for n in names
        if pathlib.Path(folder).name == "checkpoints" and n.isdigit() and int(n) > step
      ],
    )
  multihost_utils.sync_global_devices(f"copied {dst}")


def main(spec_path: str, out_dir: str) -> None:
  faulthandler.register(
    signal.SIGUSR1, all_threads=True
  )  # The test asks for stacks before killing a hung job.
  pylogging.basicConfig(format="%(asctime)s %(name)s %(message)s", force=True)
  logging.set_verbosity(logging.INFO)
  spec = json.loads(pathlib.Path(spec_path).read_text())
  out = pathlib.Path(out_dir)
  jax.config.update(
    "jax_cpu_collectives_implementation", "gloo"
  )  # The default in JAX 0.10; stated here.
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  saved = {}
  save = checkpointing.save

  def recording_save(manager, step, state, data_state):
    saved.update(step=step, params=state.params, data=data_state)
    return save(manager, step, state, data_state)

  checkpointing.save = recording_save
  for i, run in enumerate(spec["runs"]):
    config = tiny_training_config(
      spec["dataset"], **{**spec["overrides"], "train.num_steps": run["num_steps"]}
    )
    if run.get("resume_from"):
      _copy_until(
        pathlib.Path(run["resume_from"][0]), pathlib.Path(run["workdir"]), run["resume_from"][1]
      )
    saved.clear()
    result = train_and_evaluate(config, run["workdir"])
    leaves = jax.tree_util.tree_flatten_with_path(saved.get("params", {}))[0]
    p = jax.process_index()
    np.savez(
      out / f"run{i}_process{p}.npz", **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}
    )
    info = {
      "process_index": p,
      "process_count": jax.process_count(),
      "local_devices": jax.local_device_count(),
      "step": saved.get("step"),
      "data": saved.get("data"),
      "validation": result,
    }
    (out / f"run{i}_process{p}.json").write_text(json.dumps(info, default=str))


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
