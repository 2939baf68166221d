"""Multi-host start-up: ``jax.distributed.initialize`` when the job spans several processes.

``config.distributed`` chooses:

- ``'auto'`` (default): initialize when the environment names a multi-process launch: a
  coordinator in ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``),
  a SLURM step of several tasks (``srun``), an Open MPI launch of several ranks, or a TPU slice
  whose worker list (``TPU_WORKER_HOSTNAMES`` / ``TPU_PROCESS_ADDRESSES``) names several hosts.
  Otherwise one process, exactly as before.
- ``'on'``: always initialize; JAX's own detection (SLURM, Open MPI, Cloud TPU metadata,
  Kubernetes) fills in what the environment variables above do not give.
- ``'off'``: never.

It must run before anything touches a JAX device, which is why ``train_and_evaluate`` calls it
first. JAX 0.10 reads ``JAX_COORDINATOR_ADDRESS`` itself but not the process count and id, so
those two are read here.
"""

from __future__ import annotations

import os

from absl import logging
import jax

from segtube_jax.errors import ConfigError
from segtube_jax.schema.defaults import DISTRIBUTED_MODES


def _int_env(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError:
    raise ConfigError(f"environment variable {name}={value!r}: expected an integer") from None


def _several(name: str) -> bool:
  return (_int_env(name) or 1) > 1


def detect_launch() -> str | None:
  """The multi-process launcher the environment names ('jax', 'slurm', 'mpi', 'tpu'), else None."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return "jax"
  # The variables JAX's SLURM detection needs; srun sets them for each task of a step.
  if all(
    v in os.environ
    for v in ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID")
  ) and _several("SLURM_NTASKS"):
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in os.environ and _several("OMPI_COMM_WORLD_SIZE"):
    return "mpi"
  hosts = os.environ.get("TPU_PROCESS_ADDRESSES") or os.environ.get("TPU_WORKER_HOSTNAMES") or ""
  if len([h for h in hosts.split(",") if h.strip()]) > 1:
    return "tpu"
  return None


def initialize(mode: str = "auto") -> bool:
  """Joins this process to the job's other processes when ``mode`` says so.

  Args:
    mode: ``config.distributed``: 'auto', 'on' or 'off' (see the module docstring).

  Returns:
    True when the JAX distributed runtime is up after the call (now or from an earlier call).

  Raises:
    ConfigError: an unknown mode, a coordinator without a process count or id, or devices
      already in use (initialize must come before any JAX computation).
  """
  if mode not in DISTRIBUTED_MODES:
    raise ConfigError(f"config.distributed must be one of {DISTRIBUTED_MODES}, got {mode!r}")
  if jax.distributed.is_initialized():
    return True
  launch = detect_launch() if mode == "auto" else ("explicit" if mode == "on" else None)
  if launch is None:
    return False
  kwargs = {}
  num_processes, process_id = _int_env("JAX_NUM_PROCESSES"), _int_env("JAX_PROCESS_ID")
  if num_processes is not None:
    kwargs["num_processes"] = num_processes
  if process_id is not None:
    kwargs["process_id"] = process_id
  try:
    jax.distributed.initialize(**kwargs)
  except RuntimeError as e:  # E.g. devices already in use, or the coordinator never answered.
    raise ConfigError(
      f"config.distributed={mode!r} ({launch} launch): jax.distributed.initialize failed: {e} "
      "(it must run before any JAX computation; config.distributed='off' keeps one process)"
    ) from None
  except ValueError as e:  # JAX names the missing piece; say where it comes from.
    raise ConfigError(
      f"config.distributed={mode!r}: {e} Set JAX_COORDINATOR_ADDRESS (host:port of process 0), "
      "JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process, or launch with srun / mpirun "
      "or on a TPU slice"
    ) from None
  logging.info(
    "JAX distributed (%s launch): process %d of %d, %d local device(s) of %d",
    launch,
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )
  return True
