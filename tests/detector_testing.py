"""Trained tiny workdirs shared by the detector tests (one training run per pytest session).

``trained_workdir`` is a one-step ``train_and_evaluate`` run of the tiny config. ``biased_workdir``
is a copy whose latest checkpoint has the output layers of both networks replaced by constants, so
every window is flagged as an action of one class: the detector then localizes (and segments) the
whole video, which a one-step model never does.
"""

import pathlib
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp

from tests.conftest import tiny_training_config

_CACHE: dict[tuple[str, str], pathlib.Path] = {}


def fast_overrides(**extra):
  """Config overrides that keep the detector quick on the tiny dataset."""
  return {
    "evaluation.max_videos": 1,
    "evaluation.workers": 1,
    "evaluation.report_videos": 1,
    "detector.max_iterations": 2,
    **extra,
  }


def trained_workdir(root: pathlib.Path, tmp_path_factory) -> pathlib.Path:
  """A one-step trained tiny workdir (checkpoint step 1, experiment.json); do not write into it."""
  key = (str(root), "trained")
  if key not in _CACHE:
    from segtube_jax.training import train_and_evaluate  # pylint: disable=import-outside-toplevel

    workdir = tmp_path_factory.mktemp("trained") / "w"
    train_and_evaluate(tiny_training_config(root, **fast_overrides()), workdir)
    _CACHE[key] = workdir
  return _CACHE[key]


def biased_workdir(root: pathlib.Path, tmp_path_factory, class_index: int = 0) -> pathlib.Path:
  """A copy of :func:`trained_workdir` whose step-2 checkpoint flags every window as ``class_index``.

  Its experiment.json (that of the training run) holds the settings of :func:`fast_overrides`. Do not write into it.
  """
  key = (str(root), f"biased{class_index}")
  if key not in _CACHE:
    source = trained_workdir(root, tmp_path_factory)
    workdir = tmp_path_factory.mktemp("biased") / "w"
    shutil.copytree(source / "checkpoints", workdir / "checkpoints")
    shutil.copy(source / "experiment.json", workdir / "experiment.json")
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    manager = ocp.CheckpointManager(
      (workdir / "checkpoints").absolute(), options=options, item_names=("state", "data")
    )
    restored = manager.restore(
      1, args=ocp.args.Composite(state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore())
    )
    state = jax.tree.map(np.asarray, restored["state"])
    params = state["params"]
    heads = (
      {net: params[net]["head"] for net in ("proposal", "classification")}
      if "proposal" in params
      else {net: params["shared"][f"{net}_head"] for net in ("proposal", "classification")}
    )  # Shared trunk.
    for net, bias in (("proposal", [-6.0, 6.0]), ("classification", None)):
      head = heads[net]
      for name in [
        n for n in head if n.endswith("logits")
      ]:  # 'logits' and, with feature_skip, 'skip_logits'.
        head[name] = {k: np.zeros_like(v) for k, v in head[name].items()}
      if bias is None:
        bias = np.zeros(head["logits"]["bias"].shape, np.float32)
        bias[class_index + 1] = 12.0
      head["logits"]["bias"] = np.asarray(bias, head["logits"]["bias"].dtype)
    manager.save(
      2,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(restored["data"])
      ),
      force=True,
    )
    manager.wait_until_finished()
    manager.close()
    _CACHE[key] = workdir
  return _CACHE[key]


def copy_workdir(workdir: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
  """A writable copy of a shared workdir (checkpoints and experiment.json)."""
  shutil.copytree(workdir / "checkpoints", dest / "checkpoints")
  shutil.copy(workdir / "experiment.json", dest / "experiment.json")
  return dest


def _flat(node, prefix=""):
  out = {}
  for key, value in node.items():
    if hasattr(value, "items"):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def cli_overrides(config) -> list[str]:
  """``--config.key=value`` flags turning configs/synthetic.py into ``config`` on the command line."""
  from configs import synthetic as synthetic_config  # pylint: disable=import-outside-toplevel

  base, wanted = _flat(synthetic_config.get_config()), _flat(config)
  flags = []
  for key, value in sorted(wanted.items()):
    if base.get(key) != value:
      flags.append(f"--config.{key}={tuple(value) if isinstance(value, (tuple, list)) else value}")
  return flags
