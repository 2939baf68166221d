"""Orbax checkpointing of everything needed to resume exactly: params, optimizer, step, RNG, data position."""

from __future__ import annotations

import os
import pathlib
from typing import Any

from absl import logging
import orbax.checkpoint as ocp

from segtube_jax import io_utils
from segtube_jax.errors import CheckpointError


def make_manager(
  workdir: str | os.PathLike, keep: int = 3, async_save: bool = True, read_only: bool = False
) -> ocp.CheckpointManager:
  """A CheckpointManager over ``<workdir>/checkpoints`` keeping the last ``keep`` steps.

  Orbax writes each step into ``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` when
  complete (the rename is the commit), so a run killed during a save (SIGKILL, power cut) leaves
  the previous checkpoints intact, and restore and ``latest_step`` only see renamed folders. The
  temporary folders such a kill leaves are removed when a writable manager opens (Orbax would
  otherwise only replace the one of a step it saves again). tests/test_faults.py kills runs
  during saves and checks that each restart resumes from the newest complete step.
  """
  directory = pathlib.Path(workdir).absolute() / "checkpoints"
  if not read_only:  # A clear OutputError: Orbax would fail later, in a background thread.
    io_utils.ensure_writable_dir(directory, "checkpoint folder")
  options = ocp.CheckpointManagerOptions(
    preservation_policy=ocp.checkpoint_managers.LatestN(keep),
    enable_async_checkpointing=async_save,
    read_only=read_only,
    create=not read_only,
    cleanup_tmp_directories=not read_only,
  )
  return ocp.CheckpointManager(directory, options=options, item_names=("state", "data"))


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_state: dict[str, Any]) -> None:
  """Saves the (host-local, unreplicated) train state and the input pipeline position.

  Raises:
    OutputError: the checkpoint folder cannot be written (an asynchronous save reports a full
      disk later, from ``manager.wait_until_finished()`` or the next save).
  """
  try:
    manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
      ),
      force=True,
    )
  except OSError as e:
    raise io_utils.output_error(manager.directory, e, f"checkpoint step {step}") from e


def restore(
  manager: ocp.CheckpointManager, template: Any, step: int | None = None
) -> tuple[int, Any, dict[str, Any]] | None:
  """Restores the latest (or given) step into the structure of ``template``; None when there is none."""
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  try:
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(template), data=ocp.args.JsonRestore()
      ),
    )
  except Exception as e:  # Orbax raises many types for missing/corrupt/mismatched trees.
    raise CheckpointError(
      f"{manager.directory}: cannot restore step {step} ({type(e).__name__}: {e}). "
      "Was it written by a different config? Use a new --workdir or config.init_from."
    ) from None
  logging.info("Restored checkpoint step %d from %s", step, manager.directory)
  return step, restored["state"], restored["data"]


def latest_step(workdir: str | os.PathLike) -> int | None:
  """The newest complete checkpoint step in ``<workdir>/checkpoints`` (None: none), read-only.

  What ``restore`` will resume from; lets training decide before building anything whether it
  is a new run (e.g. whether to read model.pretrained_c3d).
  """
  directory = pathlib.Path(workdir).absolute() / "checkpoints"
  if not directory.is_dir():
    return None
  # Not read_only: that mode logs two warnings, and a manager that never saves writes nothing.
  manager = ocp.CheckpointManager(
    directory,
    options=ocp.CheckpointManagerOptions(create=False),
    item_names=("state", "data"),
  )
  try:
    return manager.latest_step()
  finally:
    manager.close()


def restore_params(path: str | os.PathLike) -> dict[str, Any]:
  """Loads only the parameters of a checkpoint (config.init_from): a workdir or a checkpoints folder.

  Returns the raw restored ``params`` tree; the caller merges what matches its model.
  """
  return latest_params(path)[1]


def latest_params(path: str | os.PathLike) -> tuple[int, dict[str, Any]]:
  """(step, params) of the latest checkpoint under a workdir or checkpoints folder."""
  path = pathlib.Path(path)
  root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
  if not root.is_dir():
    raise CheckpointError(f"config.init_from: {path} is neither a workdir nor a checkpoints folder")
  manager = ocp.CheckpointManager(
    root.absolute(),
    options=ocp.CheckpointManagerOptions(read_only=True, create=False),
    item_names=("state", "data"),
  )
  step = manager.latest_step()
  if step is None:
    raise CheckpointError(f"config.init_from: no checkpoint under {root}")
  try:
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  except Exception as e:
    raise CheckpointError(
      f"config.init_from: cannot read step {step} under {root} ({type(e).__name__}: {e})"
    ) from None
  finally:
    manager.close()
  state = restored["state"]
  params = state.get("params") if isinstance(state, dict) else getattr(state, "params", None)
  if params is None:
    raise CheckpointError(f"config.init_from: checkpoint step {step} under {root} has no params")
  return step, params
