"""``train_and_evaluate(config, workdir)``: data-parallel training of the proposal and classification networks.

The workdir is the experiment: rerunning the same command resumes from its latest checkpoint
(parameters, optimizer state, step, RNG and data position), so an interrupted run ends with the
parameters of an uninterrupted one. ``config.init_from`` loads weights without resuming.

Initial weights of a new run (no checkpoint in the workdir), in this order:

1. random initialisation;
2. ``config.model.pretrained_c3d`` (Sports-1M C3D weights): replaces the C3D trunk of both
   networks (or the shared trunk); read and checked against the model before anything compiles;
3. ``config.init_from`` (a workdir or checkpoints folder): copies every parameter of its
   checkpoint whose path and shape match, so with both set, init_from wins wherever it has the
   parameter (normally the whole trunk) and pretrained_c3d only fills what init_from lacks.

A run that resumes from its workdir's own checkpoint ignores both (one log line each).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import threading
import time
from typing import Any

from absl import logging
import flax
from flax import jax_utils
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from segtube_jax import io_utils, models, schema
from segtube_jax.data import pipeline as chunk_pipeline
from segtube_jax.errors import CheckpointError
from segtube_jax.io_utils import write_json_atomic
from segtube_jax.training import checkpointing, distributed, input_pipeline, steps

EXPERIMENT_FILE = "experiment.json"  # {"config": ..., "classes": [...]}, written by process 0.


def _merged(base: ml_collections.ConfigDict, saved: dict[str, Any]) -> ml_collections.ConfigDict:
  for key, value in saved.items():
    if isinstance(value, dict) and isinstance(base.get(key), ml_collections.ConfigDict):
      _merged(base[key], value)
    elif key in base and isinstance(base[key], tuple) and isinstance(value, list):
      base[key] = tuple(value)  # JSON has no tuples.
    else:
      base[key] = value
  return base


def load_experiment(workdir: str | os.PathLike) -> tuple[ml_collections.ConfigDict, list[str]]:
  """The config and class names a training run saved in ``workdir``.

  Raises:
    CheckpointError: the file is missing or unreadable.
  """
  path = pathlib.Path(workdir) / EXPERIMENT_FILE
  try:
    data = json.loads(path.read_text())
    # Keys added to the schema after the run was trained take their defaults.
    config = _merged(schema.experiment_config(), data["config"])
    classes = [str(c) for c in data["classes"]]
  except FileNotFoundError:
    raise CheckpointError(
      f"{path}: not found; is {workdir} a training workdir (python train.py ... --workdir)?"
    ) from None
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{path}: unreadable experiment file ({type(e).__name__}: {e})") from None
  return config, classes


class MetricWriter:
  """JSON lines in ``<workdir>/metrics.jsonl`` and TensorBoard events in ``<workdir>/tensorboard``.

  Only process 0 writes. TensorBoard files come from tensorboardX, which needs no TensorFlow.
  """

  def __init__(self, workdir: pathlib.Path):
    self.path = workdir / "metrics.jsonl"
    self.enabled = jax.process_index() == 0
    self._tb = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel

      self._tb = SummaryWriter(str(workdir / "tensorboard"))

  def resume_at(self, step: int) -> None:
    """Drops the rows logged after ``step``: a killed run logged steps that its resume repeats."""
    if not self.enabled or not self.path.exists():
      return
    lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _row_step(line) <= step]
    if len(kept) < len(lines):
      io_utils.write_text_atomic(self.path, "".join(kept), what="metrics log")

  def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {
      "step": int(step),
      "split": split,
      "time": time.time(),
      **{k: float(v) for k, v in metrics.items()},
    }
    io_utils.append_text(
      self.path, json.dumps(row) + "\n", what="metrics log"
    )  # Never a torn line.
    for k, v in metrics.items():
      self._tb.add_scalar(f"{split}/{k}", float(v), int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _row_step(line: str) -> float:
  """The step of a metrics.jsonl row (unreadable rows sort last, so a resume drops them)."""
  try:
    return float(json.loads(line)["step"])
  except (ValueError, KeyError, TypeError):
    return math.inf


class _StopRequest:
  """Turns SIGTERM / SIGINT into a flag the loop checks between steps (save, then exit cleanly)."""

  def __init__(self):
    self.signal: int | None = None
    self._old: dict[int, Any] = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.signal = signum

  def __exit__(self, *exc):
    for sig, handler in self._old.items():
      signal.signal(sig, handler)


class TrainingStopped(Exception):
  """Raised after a signal-triggered checkpoint, so the CLI exits with a clear message."""


class NonFiniteLossError(Exception):
  """Training produced a NaN or infinite loss; the last good checkpoint was kept."""


def _host(tree: Any) -> Any:
  return jax.device_get(jax_utils.unreplicate(tree))


def _merge_init_from(params: Any, path: str) -> Any:
  """Copies every parameter of a checkpoint whose path and shape match ours (config.init_from)."""
  loaded = flax.traverse_util.flatten_dict(checkpointing.restore_params(path), sep="/")
  ours = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  matched = [k for k in ours if k in loaded and np.shape(loaded[k]) == np.shape(ours[k])]
  if not matched:
    raise CheckpointError(
      f"config.init_from={path}: no parameter matches this model (different config?)"
    )
  for k in matched:
    ours[k] = jnp.asarray(loaded[k], ours[k].dtype)
  logging.info("init_from %s: loaded %d of %d parameter arrays", path, len(matched), len(ours))
  return flax.traverse_util.unflatten_dict(ours, sep="/")


def evaluate_windows(
  config: ml_collections.ConfigDict,
  p_eval_step,
  params_repl: Any,
  data_dir: pathlib.Path,
  name: str,
  split: str,
  batch_per_process: int,
) -> dict[str, float]:
  """Proposal and classification accuracy over every labelled window of ``split``."""
  totals: dict[str, dict[str, float]] = {}
  for batch in input_pipeline.eval_batches(config, data_dir, name, split, batch_per_process):
    sums = jax.device_get(
      p_eval_step(params_repl, input_pipeline.shard(batch, jax.local_device_count()))
    )
    for net, s in sums.items():
      acc = totals.setdefault(net, {"loss_sum": 0.0, "correct": 0.0, "count": 0.0})
      for k in acc:
        acc[k] += float(np.asarray(s[k])[0])
  out = {}
  for net, acc in totals.items():
    n = max(acc["count"], 1.0)
    out[f"{net}_loss"] = acc["loss_sum"] / n
    out[f"{net}_accuracy"] = acc["correct"] / n
    out[f"{net}_windows"] = acc["count"]
  return out


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> dict[str, float]:
  """Trains both networks of Sec. 2.1 and evaluates them on the validation windows.

  Several processes (``config.distributed``, see ``distributed.py``) run the same call with the
  same workdir: each feeds its local devices its share of every global batch, and process 0
  alone writes checkpoints (orbax coordinates them), metrics and experiment.json.

  Args:
    config: an experiment config (see ``configs/``).
    workdir: the experiment folder: checkpoints, metrics.jsonl, packed data.

  Returns:
    The final validation metrics (proposal / classification / action-window accuracy).
  """
  distributed.initialize(config.get("distributed", "auto"))  # Before anything touches a device.
  workdir = pathlib.Path(workdir)
  schema.validate(config, jax.local_device_count() * jax.process_count())
  io_utils.ensure_writable_dir(workdir, "training workdir")  # Now, not after packing the data.
  pretrained_c3d = _read_pretrained_c3d(config, workdir)
  batch_per_process = config.train.global_batch_size // jax.process_count()
  data_dir, name = input_pipeline.ensure_built(config, workdir)
  train_ds, num_classes = input_pipeline.train_dataset(config, data_dir, name, batch_per_process)
  _write_experiment(config, workdir, data_dir, name)
  state, model, schedule = steps.create_train_state(
    config, num_classes, steps.make_rng(config.seed), config.train.num_steps
  )
  manager = checkpointing.make_manager(
    workdir, config.train.keep_checkpoints, config.train.async_checkpoints
  )
  train_iter = iter(train_ds)
  state = _initial_state(config, state, manager, train_iter, pretrained_c3d)
  del pretrained_c3d  # The host copy of the trunk; the state holds it now.
  dtype = models.DTYPES[config.model.dtype]
  p_train_step = jax.pmap(
    steps.make_train_step(model, schedule, dtype, config.train.microbatch_size),
    axis_name="batch",
    donate_argnums=(0,),
  )
  writer = MetricWriter(workdir)
  writer.resume_at(int(state.step))
  try:
    state_repl = _train_steps(config, state, p_train_step, train_iter, manager, writer)
  finally:
    train_iter.close()  # Stops the input worker processes, also when training fails.
  p_eval_step = jax.pmap(steps.make_eval_step(model, dtype), axis_name="batch")
  result = evaluate_windows(
    config, p_eval_step, state_repl.params, data_dir, name, "validation", batch_per_process
  )
  writer.write(config.train.num_steps, "validation", result)
  writer.close()
  logging.info("validation: %s", " ".join(f"{k}={v:.4f}" for k, v in sorted(result.items())))
  return result


def _read_pretrained_c3d(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> Any:
  """model.pretrained_c3d for a new run, read and checked before the data is packed and
  anything compiles; None when unset or when the workdir resumes."""
  if not config.model.pretrained_c3d:
    return None
  resume_step = checkpointing.latest_step(workdir)
  if resume_step is not None:
    logging.info(
      "Resuming from checkpoint step %d in %s: model.pretrained_c3d=%s is ignored",
      resume_step,
      workdir / "checkpoints",
      config.model.pretrained_c3d,
    )
    return None
  if config.model.input_norm != "c3d_sports1m":
    logging.warning(
      "model.pretrained_c3d with model.input_norm=%r: the Sports-1M C3D weights expect "
      "'c3d_sports1m' input (BGR, 0..255 minus the Sports-1M mean)",
      config.model.input_norm,
    )
  return steps.load_pretrained_c3d(config.model)


def _write_experiment(
  config: ml_collections.ConfigDict, workdir: pathlib.Path, data_dir: str, name: str
) -> None:
  """experiment.json (process 0): what evaluate.py and detect need besides the weights."""
  if jax.process_index() == 0:
    source = chunk_pipeline.open_chunk_source(data_dir, name, "training")
    write_json_atomic(
      workdir / EXPERIMENT_FILE,
      {"config": json.loads(config.to_json()), "classes": list(source.classes)},
    )


def _initial_state(
  config: ml_collections.ConfigDict, state: Any, manager, train_iter, pretrained_c3d: Any
) -> Any:
  """The workdir's latest checkpoint (and data position), or a new run's initial weights:
  random, then model.pretrained_c3d's trunk, then config.init_from's parameters."""
  restored = checkpointing.restore(manager, state)
  if restored is not None:
    _, state, data_state = restored
    train_iter.set_state(data_state)
    if config.init_from:
      logging.info(
        "Resumed from this workdir's checkpoint: config.init_from=%s is ignored", config.init_from
      )
    return state
  if pretrained_c3d is not None:
    state = state.replace(params=steps.insert_pretrained_c3d(state.params, pretrained_c3d))
    logging.info(
      "model.pretrained_c3d %s: C3D trunk of %s",
      config.model.pretrained_c3d,
      "the shared network" if config.model.shared_trunk else "both networks",
    )
  if config.init_from:
    state = state.replace(params=_merge_init_from(state.params, config.init_from))
  return state


def _train_steps(
  config: ml_collections.ConfigDict, state: Any, p_train_step, train_iter, manager, writer
) -> Any:
  """Runs the steps left, logging, checkpointing and stopping on a signal; returns the
  replicated final state. Closes ``manager``."""
  num_steps, num_devices = config.train.num_steps, jax.local_device_count()
  start_step = int(state.step)
  # Through an identity pmap, the replicated state has the sharding the step's outputs have, so
  # the step compiles once instead of once for the first call and again for the rest.
  state_repl = jax.pmap(lambda t: t, axis_name="batch")(jax_utils.replicate(state))
  clips_per_step = config.train.global_batch_size * config.clips.seq_len
  if start_step < num_steps:
    logging.info(
      "Training steps %d..%d on %d device(s) (%d process(es)), %d clips per step",
      start_step,
      num_steps,
      num_devices,
      jax.process_count(),
      clips_per_step,
    )

  def save(step: int, metrics: dict[str, Any] | None) -> None:
    # Never checkpoint a state produced by a non-finite step: the last good one must survive.
    if metrics is not None and not math.isfinite(float(np.asarray(metrics["loss"])[0])):
      raise NonFiniteLossError(
        f"loss is {float(np.asarray(metrics['loss'])[0])} at step {step}; "
        f"kept the last good checkpoint (step {manager.latest_step()}) in {manager.directory}"
      )
    checkpointing.save(manager, step, _host(state_repl), train_iter.get_state())

  step, pending, t_log, steps_since_log = start_step, None, time.perf_counter(), 0
  with _StopRequest() as stop:
    try:
      while step < num_steps:
        batch = input_pipeline.shard(next(train_iter), num_devices)
        state_repl, metrics = p_train_step(state_repl, batch)
        step += 1
        steps_since_log += 1
        if pending is not None:  # Checked one step late so the host never stalls the device.
          _check_finite(*pending, manager)
        pending = (step, metrics)
        logged = step % config.train.log_every == 0 or step == num_steps
        if logged:
          _check_finite(step, metrics, manager)
          _log_train_metrics(
            writer, step, num_steps, metrics, t_log, steps_since_log, clips_per_step
          )
          t_log, steps_since_log = time.perf_counter(), 0
        saved = step % config.train.checkpoint_every == 0 or step == num_steps
        if saved:
          save(step, metrics)
        if _stop_agreed(stop, logged=logged):
          if not saved:  # Saving a step twice is an orbax error.
            save(step, metrics)
          manager.wait_until_finished()
          why = (
            f"received signal {stop.signal}"
            if stop.signal is not None
            else "another process received a signal"
          )
          raise TrainingStopped(
            f"{why}; saved checkpoint step {step} in {manager.directory}; "
            "rerun the same command to resume"
          )
      if pending is not None:
        _check_finite(*pending, manager)
    finally:
      manager.wait_until_finished()
      manager.close()
  return state_repl


def _log_train_metrics(
  writer,
  step: int,
  num_steps: int,
  metrics: dict[str, Any],
  t_log: float,
  steps: int,
  clips_per_step: int,
) -> None:
  """One metrics.jsonl row and one console line for the steps since the last log."""
  host = {k: float(np.asarray(v)[0]) for k, v in jax.device_get(metrics).items()}
  elapsed = time.perf_counter() - t_log
  host["step_time"] = elapsed / steps
  host["clips_per_second"] = clips_per_step * steps / elapsed
  writer.write(step, "train", host)
  eta = (num_steps - step) * host["step_time"]
  logging.info(
    "step %d/%d loss %.4f pro_acc %.3f cla_acc %.3f lr %.2e %.1f clips/s ETA %.0fs",
    step,
    num_steps,
    host["loss"],
    host["proposal_accuracy"],
    host["classification_accuracy"],
    host["learning_rate"],
    host["clips_per_second"],
    eta,
  )


def _stop_agreed(stop: _StopRequest, logged: bool) -> bool:
  """Whether to checkpoint and stop after this step.

  With several processes all must stop at the same step (the save is collective), and a signal
  may reach them between different steps; they agree at logged steps, where the host already
  waits for the device, by a max over processes.
  """
  if jax.process_count() == 1:
    return stop.signal is not None
  if not logged:
    return False
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

  return bool(np.max(multihost_utils.process_allgather(np.int32(stop.signal is not None))))


def _check_finite(step: int, metrics: dict[str, Any], manager) -> None:
  loss = float(np.asarray(jax.device_get(metrics["loss"]))[0])
  if not math.isfinite(loss):
    raise NonFiniteLossError(
      f"loss is {loss} at step {step}; stopped and kept the last good checkpoint "
      f"(step {manager.latest_step()}) in {manager.directory}"
    )
