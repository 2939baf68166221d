"""Benchmark: training clips/s of the real train step (both networks, forward + backward + update).

The JAX side is the project's own step: ``steps.create_train_state`` + ``steps.make_train_step``
under ``jax.pmap`` on one device with the state donated, exactly as ``trainer.py`` runs it, on
a fixed random uint8 batch. ``--torch`` adds an equivalent PyTorch 2.x CPU implementation, run
side by side in the same process: per repeat both frameworks time ``--steps`` steps, in
alternating order, so background load hits both alike; the table reports medians over repeats.

PyTorch equivalent (per network; two separate networks, like ``SegtubeNetworks`` with
``shared_trunk=False``): the same C3D (widths, pools incl. the 'torch' pool5 padding, fc6/fc7,
dropout), NCTHW ``nn.Conv3d``; [LayerNorm if ``model.feature_norm``] -> dropout -> ``nn.LSTM``
(2 layers, batch_first) -> ``nn.Linear``.
Differences: ``nn.LSTM`` has no peepholes (3 x H fewer parameters and multiplies per layer,
negligible next to C3D) and separate input/hidden biases. Loss: masked cross entropy per
network; update: the config's optimizer (AdamW or SGD + momentum + weight decay) with per-network
global-norm clipping at ``grad_clip_norm``, one optimizer per network. The LR schedule is
constant on the PyTorch side (it does not affect speed). The uint8 -> float normalisation runs
inside both steps; the clips are NCTHW for PyTorch (the layout its data loader would produce).

Configs: ``demo`` is configs/synthetic.py (tiny C3D, 8 sequences x 4 clips of 16x32x32);
``paper`` is configs/thumos14.py (full C3D, 16x112x112, 2 x 256 LSTM) at a CPU-size batch
(``--paper-batch`` sequences x ``--paper-seq`` clips, default 1 x 2) and float32 (XLA CPU has
no fast bfloat16 convs), so its numbers are indicative only.

Usage:
  .venv/bin/python bench/train_step.py                        # demo, JAX only, quick
  .venv/bin/python bench/train_step.py --torch --config both --steps 5 --repeats 5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
import os
import pathlib
import statistics
import sys
import time
import types
from typing import Any

from absl import app, flags
from flax import jax_utils
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

# Runnable from a checkout without installing the package.
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import synthetic as synthetic_config
from configs import thumos14 as thumos14_config
from segtube_jax import cli, models
from segtube_jax.errors import SegtubeError
from segtube_jax.models import c3d
from segtube_jax.training import steps

# pylint: enable=g-import-not-at-top,wrong-import-position

# Class counts of the datasets the configs train on: the synthetic generator's default
# (segtube_jax.data.synthetic.Options.num_classes) and THUMOS14's 20 actions.
NUM_CLASSES = {"demo": 6, "tiny": 6, "paper": 20}

StepFn = Callable[[int], float]  # Runs n steps, returns the wall time in seconds.


@dataclasses.dataclass
class Row:
  """One line of the result table."""

  config: str
  framework: str
  clips_per_s: float
  all_clips_per_s: list[float]
  compile_s: float


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags on ``fv`` (when it runs, never at import: see parse_flags)."""
  flags.DEFINE_enum(
    "config",
    "demo",
    ("demo", "paper", "both", "tiny"),
    "tiny: a CI-size model (not a project config) for smoke tests.",
    flag_values=fv,
  )
  flags.DEFINE_integer("steps", 3, "Timed steps per repeat.", flag_values=fv)
  flags.DEFINE_integer("warmup", 1, "Untimed steps after compilation.", flag_values=fv)
  flags.DEFINE_integer(
    "repeats",
    1,
    "Timed rounds per framework (interleaved); the table shows the median.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "torch",
    False,
    "Also time the PyTorch equivalent (skipped if torch is not importable).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "threads",
    len(os.sched_getaffinity(0)),
    "torch.set_num_threads (XLA:CPU uses every core it may run on).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "demo-batch",
    None,
    "Sequences per step for demo (default: the config's global batch).",
    flag_values=fv,
  )
  flags.DEFINE_integer("paper-batch", 1, "Sequences per step for paper.", flag_values=fv)
  flags.DEFINE_integer("paper-seq", 2, "Clips per sequence for paper.", flag_values=fv)
  flags.DEFINE_enum(
    "conv-impl",
    None,
    models.CONV_IMPLS,
    "Override model.conv_impl (default: the config's).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "microbatch",
    None,
    "Override train.microbatch_size (sequences; 0: the whole batch at once).",
    flag_values=fv,
  )


def flag_args(fv: flags.FlagValues) -> types.SimpleNamespace:
  """This bench's flag values as attributes, '-' read as '_' (--paper-batch: args.paper_batch)."""
  return types.SimpleNamespace(
    **{f.name.replace("-", "_"): f.value for f in fv.get_flags_for_module(__name__)}
  )


def parse_flags(argv: Sequence[str]) -> types.SimpleNamespace:
  """``argv`` (flags only, no program name) parsed into a private FlagValues.

  Private, so main() can run many times in one process (the tests) next to other modules' flags;
  a bad value raises SystemExit naming the flag, as the command line does.
  """
  try:
    fv = cli.parse_flags(define_flags, argv, "train_step.py")
  except (flags.Error, SegtubeError) as e:
    raise SystemExit(f"error: {e}") from e
  return flag_args(fv)


def experiment_config(name: str, args: types.SimpleNamespace) -> ml_collections.ConfigDict:
  """The config as trained, shrunk to a CPU-size batch for 'paper'."""
  if name in ("demo", "tiny"):
    c = synthetic_config.get_config()
    if args.demo_batch is not None:
      c.train.global_batch_size = args.demo_batch
    if name == "tiny":  # Compiles in a few seconds; same code paths as demo.
      c.model.width_multiplier = 0.0625
      c.model.fc_dim = 32
      c.model.lstm_features = 8
      c.model.clip_shape = (16, 16, 16)
      c.train.global_batch_size = 2
      c.clips.seq_len = 2
  else:
    c = thumos14_config.get_config()
    c.train.global_batch_size = args.paper_batch
    c.clips.seq_len = args.paper_seq
    c.model.dtype = "float32"  # bfloat16 convs are emulated (slow) on XLA:CPU.
  if args.conv_impl is not None:
    c.model.conv_impl = args.conv_impl
  if getattr(args, "microbatch", None) is not None:
    c.train.microbatch_size = args.microbatch
  return c


def random_batch(
  c: ml_collections.ConfigDict, num_classes: int, seed: int = 0
) -> dict[str, np.ndarray]:
  """A global batch as the input pipeline yields it: uint8 clips and int32 labels."""
  rng = np.random.default_rng(seed)
  shape = models.input_shape(c.model, c.train.global_batch_size, c.clips.seq_len)
  return {
    "clips": rng.integers(0, 256, size=shape, dtype=np.uint8),
    "proposal_labels": rng.integers(0, 2, size=shape[:2]).astype(np.int32),
    "class_labels": rng.integers(0, num_classes + 1, size=shape[:2]).astype(np.int32),
  }


def jax_step_fn(
  c: ml_collections.ConfigDict, num_classes: int, batch: dict[str, np.ndarray]
) -> tuple[StepFn, float]:
  """(run n steps -> seconds, compile + first step seconds) of the project's pmap train step."""
  state, model, schedule = steps.create_train_state(
    c, num_classes, steps.make_rng(0), c.train.num_steps
  )
  dtype = jnp.bfloat16 if c.model.dtype == "bfloat16" else jnp.float32
  p_step = jax.pmap(
    steps.make_train_step(model, schedule, dtype, c.train.microbatch_size),
    axis_name="batch",
    donate_argnums=(0,),
  )
  # jax_utils.replicate's arrays carry a different mesh than p_step's outputs, so the second
  # call would compile the step again (~17 s for demo); an identity pmap gives the state the
  # outputs' sharding and the step compiles once.
  to_device = jax.pmap(lambda tree: tree, axis_name="batch")
  holder = {"state": to_device(jax_utils.replicate(state))}
  # Put the batch on the device once (leading axis: 1 device), so only compute is timed.
  dev_batch = to_device(jax.tree.map(lambda x: x[None], batch))

  def run(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
      holder["state"], metrics = p_step(holder["state"], dev_batch)
    jax.block_until_ready((holder["state"], metrics))
    return time.perf_counter() - t0

  return run, run(1)


def _torch_net_class(m: ml_collections.ConfigDict) -> type:
  """The PyTorch C3D + dropout + LSTM + linear head network class for model config ``m``."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  widths = models.conv_widths(m.width_multiplier)
  t, h, w = m.clip_shape
  pool_pads = c3d.pool_paddings((t, h, w), m.pool5_padding)
  pool_after = c3d.POOL_AFTER

  class TorchNet(nn.Module):
    """C3D + dropout + nn.LSTM + linear head over [B, S, C, T, H, W] clips."""

    def __init__(self, num_outputs: int):
      super().__init__()
      layers, cin = [], m.in_channels
      for i, width in enumerate(widths):
        layers += [nn.Conv3d(cin, width, 3, padding=1), nn.ReLU()]
        if i in pool_after:
          p = pool_after[i]
          pads = pool_pads[p]
          if any(a != b for a, b in pads):
            raise NotImplementedError('asymmetric pool padding (pool5_padding="caffe")')
          window = c3d.POOL_WINDOWS[p]
          layers.append(nn.MaxPool3d(window, window, padding=tuple(a for a, _ in pads)))
        cin = width
      self.trunk = nn.Sequential(*layers)
      flat = cin * int(np.prod(models.c3d_pool5_shape((t, h, w), m.pool5_padding)))
      # fc7 -> [LayerNorm] -> dropout, as networks._SequenceHead (flax LayerNorm eps 1e-6).
      self.fc = nn.Sequential(
        nn.Linear(flat, m.fc_dim),
        nn.ReLU(),
        nn.Dropout(m.dropout_rate),
        nn.Linear(m.fc_dim, m.fc_dim),
        nn.ReLU(),
        nn.LayerNorm(m.fc_dim, eps=1e-6) if m.get("feature_norm", False) else nn.Identity(),
        nn.Dropout(m.dropout_rate),
      )
      self.lstm = nn.LSTM(m.fc_dim, m.lstm_features, m.lstm_layers, batch_first=True)
      self.head = nn.Linear(m.lstm_features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
      b, s = x.shape[:2]
      f = self.fc(self.trunk(x.flatten(0, 1)).flatten(1)).view(b, s, -1)
      return self.head(self.lstm(f)[0])

  return TorchNet


def _torch_optimizers(nets: list[Any], o: ml_collections.ConfigDict) -> list[Any]:
  """One AdamW (``o.name == "adam"``) or SGD with momentum per network, as the JAX optimizer."""
  import torch  # pylint: disable=g-import-not-at-top

  if o.name == "adam":
    return [
      torch.optim.AdamW(n.parameters(), lr=o.learning_rate, weight_decay=o.weight_decay)
      for n in nets
    ]
  else:
    return [
      torch.optim.SGD(
        n.parameters(), lr=o.learning_rate, momentum=o.momentum, weight_decay=o.weight_decay
      )
      for n in nets
    ]


def torch_step_fn(
  c: ml_collections.ConfigDict, num_classes: int, batch: dict[str, np.ndarray]
) -> tuple[StepFn, float]:
  """(run n steps -> seconds, first step seconds) of the PyTorch equivalent (module doc)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  net_class = _torch_net_class(c.model)
  torch.manual_seed(0)
  nets = [net_class(2), net_class(num_classes + 1)]
  o = c.optimizer
  opts = _torch_optimizers(nets, o)
  # NTHWC -> NCTHW once, as a PyTorch input pipeline would deliver it; stays uint8.
  clips = torch.from_numpy(np.ascontiguousarray(batch["clips"].transpose(0, 1, 5, 2, 3, 4)))
  labels = [
    torch.from_numpy(batch[k].astype(np.int64)) for k in ("proposal_labels", "class_labels")
  ]
  mean = torch.tensor([0.43216, 0.394666, 0.37645]).view(1, 1, 3, 1, 1, 1) * 255.0
  std = torch.tensor([0.22803, 0.22145, 0.216989]).view(1, 1, 3, 1, 1, 1) * 255.0
  for n in nets:
    n.train()

  def step() -> None:
    x = (clips.float() - mean) / std
    for net, opt, y in zip(nets, opts, labels):
      opt.zero_grad(set_to_none=True)
      logits = net(x)
      loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1)
      loss.backward()
      if o.grad_clip_norm > 0:
        nn.utils.clip_grad_norm_(net.parameters(), o.grad_clip_norm)
      opt.step()

  def run(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
      step()
    return time.perf_counter() - t0

  return run, run(1)


def bench_config(name: str, args: types.SimpleNamespace, use_torch: bool) -> list[Row]:
  """Builds the step functions of one config and times them, interleaved."""
  c = experiment_config(name, args)
  num_classes = NUM_CLASSES[name]
  batch = random_batch(c, num_classes)
  clips_per_step = c.train.global_batch_size * c.clips.seq_len
  runners: dict[str, tuple[StepFn, float]] = {"jax": jax_step_fn(c, num_classes, batch)}
  if use_torch:
    runners["pytorch"] = torch_step_fn(c, num_classes, batch)
  for run, _ in runners.values():
    if args.warmup > 0:
      run(args.warmup)
  rates: dict[str, list[float]] = {k: [] for k in runners}
  order = list(runners)
  for r in range(args.repeats):
    # Alternate which framework goes first so drifting background load biases neither.
    for k in order if r % 2 == 0 else order[::-1]:
      rates[k].append(args.steps * clips_per_step / runners[k][0](args.steps))
  return [Row(name, k, statistics.median(v), v, runners[k][1]) for k, v in rates.items()]


def format_table(rows: Sequence[Row]) -> str:
  """config | framework | clips/s | JAX/PyTorch ratio of clips/s."""
  torch_rate = {r.config: r.clips_per_s for r in rows if r.framework == "pytorch"}
  lines = [
    f"{'config':7s} {'framework':9s} {'clips/s':>9s} {'JAX/PyTorch':>11s}  "
    f"{'first step s':>12s}  per-repeat clips/s"
  ]
  for r in rows:
    ratio = (
      f"{r.clips_per_s / torch_rate[r.config]:.2f}"
      if r.framework == "jax" and r.config in torch_rate
      else ""
    )
    reps = " ".join(f"{v:.3g}" for v in r.all_clips_per_s)
    lines.append(
      f"{r.config:7s} {r.framework:9s} {r.clips_per_s:9.3g} {ratio:>11s}  "
      f"{r.compile_s:12.1f}  {reps}"
    )
  return "\n".join(lines)


def main(argv: Sequence[str] = (), args: types.SimpleNamespace | None = None) -> list[Row]:
  """Runs the benchmark, prints the table and returns its rows.

  ``args``: flags already parsed (the command line, through app.run); else ``argv`` (flags only,
  e.g. ``['--config', 'tiny']``) is parsed here.
  """
  args = args if args is not None else parse_flags(argv)
  use_torch = False
  if args.torch:
    # libgomp reads this when torch loads it. Its default (spinning) barriers make PyTorch 5x
    # slower as soon as another process competes for the cores (measured on the shared 2-core
    # box: 10 vs 60 clips/s), which would flatter JAX; passive waits cost ~nothing when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      print("pytorch: skipped (torch is not importable)")
    else:
      use_torch = True
      torch.set_num_threads(args.threads)
  names = ("demo", "paper") if args.config == "both" else (args.config,)
  print(
    f"jax {jax.__version__} backend={jax.default_backend()} devices={jax.device_count()} "
    f"cores={len(os.sched_getaffinity(0))}"
    + (
      f" torch {torch.__version__} threads={torch.get_num_threads()} "
      f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
      if use_torch
      else ""
    )
    + f" steps={args.steps} warmup={args.warmup} repeats={args.repeats}"
  )
  print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
  rows = []
  for name in names:
    c = experiment_config(name, args)
    print(
      f"{name}: {c.train.global_batch_size} seq x {c.clips.seq_len} clips of "
      f"{tuple(c.model.clip_shape)}, width x{c.model.width_multiplier}, fc {c.model.fc_dim}, "
      f"lstm {c.model.lstm_layers}x{c.model.lstm_features}, conv_impl {c.model.conv_impl}, "
      f"microbatch {c.train.microbatch_size or 'off'}, {c.optimizer.name}, {c.model.dtype}",
      flush=True,
    )
    rows += bench_config(name, args, use_torch)
  print(f"load average at end:   {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
  print(format_table(rows))
  return rows


def _command_line(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  main(args=flag_args(flags.FLAGS))


if __name__ == "__main__":
  define_flags()
  app.run(_command_line)
