"""The networks' train state, optimizer and the pure pmap train / eval steps (Sec. 2.1)."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import flax
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from segtube_jax import models, schema
from segtube_jax.errors import CheckpointError, ConfigError
from segtube_jax.training import losses

# Normalisation of uint8 RGB clips (model.input_norm), done on device to ship uint8. NumPy, not
# jnp: importing this module must not start a JAX backend (jax.distributed.initialize has to
# come first in a multi-host job).
# 'kinetics': RGB, (x / 255 - mean) / std with the Kinetics statistics.
_MEAN = np.array([0.43216, 0.394666, 0.37645], np.float32) * 255.0
_STD = np.array([0.22803, 0.22145, 0.216989], np.float32) * 255.0
# 'c3d_sports1m': the Caffe C3D's input, which the Sports-1M weights expect (models/convert.py):
# BGR, 0..255 minus the channel means of sport1m_train16_128_mean (B, G, R), unscaled.
C3D_SPORTS1M_MEAN_BGR = np.array([90.25, 97.66, 101.41], np.float32)


# The 'rbg' PRNG compiles initialisers several times faster than threefry on CPU (C3D's init
# took 13-30 s vs 2-4 s) and is the faster generator on TPU; streams stay deterministic per seed.
PRNG_IMPL = "rbg"


def make_rng(seed: int) -> jax.Array:
  """The experiment's root key."""
  return jax.random.key(seed, impl=PRNG_IMPL)


class TrainState(train_state.TrainState):
  """Flax TrainState plus the base dropout RNG key (as raw key data, so it checkpoints)."""

  rng: jax.Array


class SegtubeNetworks(nn.Module):
  """The proposal (Eq. 1) and classification (Eq. 2) networks as one pure function.

  With ``shared_trunk`` both heads read one C3D trunk; otherwise the two networks have separate
  parameter sets under ``proposal`` and ``classification`` (the paper's setting). Either way one
  call returns ``(proposal_logits [B, S, 2], class_logits [B, S, K + 1])``.
  """

  model_config: Any
  num_classes: int

  def setup(self):
    if self.model_config.shared_trunk:
      self.shared = models.build_two_head_network(self.model_config, self.num_classes)
    else:
      self.proposal = models.build_proposal_network(self.model_config)
      self.classification = models.build_classification_network(self.model_config, self.num_classes)

  def __call__(self, clips: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    if self.model_config.shared_trunk:
      return self.shared(clips, train=train)
    return self.proposal(clips, train=train), self.classification(clips, train=train)


def normalize_clips(
  clips: jax.Array, dtype: Any = jnp.float32, mode: str = "kinetics"
) -> jax.Array:
  """uint8 RGB clips [..., 3] -> network input (``mode``: model.input_norm).

  'kinetics': (x / 255 - Kinetics mean) / Kinetics std, RGB. 'c3d_sports1m': channels reversed
  to BGR, minus the Sports-1M mean (B 90.25, G 97.66, R 101.41), not rescaled: the input of the
  Caffe C3D whose Sports-1M weights model.pretrained_c3d loads.
  """
  x = clips.astype(jnp.float32)
  if mode == "kinetics":
    x = (x - _MEAN) / _STD
  elif mode == "c3d_sports1m":
    x = x[..., ::-1] - C3D_SPORTS1M_MEAN_BGR
  else:
    raise ConfigError(
      f"model.input_norm must be one of {schema.defaults.INPUT_NORMS}, got {mode!r}"
    )
  return x.astype(dtype)


def _input_norm(model: "SegtubeNetworks") -> str:
  return model.model_config.get("input_norm", "kinetics")


def c3d_param_shapes(model_config: ml_collections.ConfigDict) -> Any:
  """Shapes (``jax.ShapeDtypeStruct``) of one network's C3D trunk params; traces, never compiles."""
  net = models.build_proposal_network(model_config)
  shape = models.input_shape(model_config, 1, 1)
  tree = jax.eval_shape(
    lambda x: net.init(make_rng(0), x, train=False), jax.ShapeDtypeStruct(shape, jnp.float32)
  )
  return tree["params"]["c3d"]


def load_pretrained_c3d(
  model_config: ml_collections.ConfigDict,
) -> dict[str, dict[str, np.ndarray]]:
  """The C3D trunk params converted from ``model_config.pretrained_c3d`` (NumPy, float32).

  Checks every key and shape against the trunk this config builds, without compiling anything.

  Raises:
    CheckpointError: "model.pretrained_c3d=<file>: <problem>", naming the state-dict key (e.g.
      conv1.weight) for a missing key or a shape that does not fit the model.
    ConfigError: the model config cannot take these weights (conv_norm, input_diff).
  """
  schema.validate_model(model_config)
  path = model_config.pretrained_c3d
  if not os.path.isfile(path):
    raise CheckpointError(
      f"model.pretrained_c3d={path}: C3D checkpoint not found (relative paths are read from "
      f"{os.getcwd()}). Get the Sports-1M C3D state dict (DavideA/c3d-pytorch's c3d.pickle), "
      f"convert it once where PyTorch is installed: python -m segtube_jax.models.convert "
      f"--torch c3d.pickle --out {path}; or set --config.model.pretrained_c3d='' to train "
      f"the trunk from scratch"
    )
  try:
    return models.load_pretrained_c3d(
      path,
      tuple(model_config.clip_shape),
      model_config.pool5_padding,
      expected_params=c3d_param_shapes(model_config),
    )
  except CheckpointError as e:
    raise CheckpointError(
      f"model.pretrained_c3d={path}: {str(e).removeprefix(f'{path}: ')}"
    ) from None


def insert_pretrained_c3d(
  params: Any, c3d_params: dict[str, dict[str, np.ndarray]]
) -> dict[str, Any]:
  """``params`` of SegtubeNetworks with the C3D trunk of every network replaced by ``c3d_params``.

  The trunks are ``proposal/c3d`` and ``classification/c3d`` (the paper's two networks) or
  ``shared/c3d`` (model.shared_trunk); each gets its own copy, so the two networks train apart.
  """
  params = flax.core.unfreeze(params)
  trunks = [name for name, sub in params.items() if isinstance(sub, dict) and "c3d" in sub]
  if not trunks:
    raise CheckpointError(f"no C3D trunk in the network params (top-level keys {sorted(params)})")
  out = dict(params)
  for name in trunks:
    target = params[name]["c3d"]
    new = models.insert_c3d_params(params[name], c3d_params)
    new["c3d"] = jax.tree.map(lambda v, t: jnp.array(v, dtype=t.dtype), new["c3d"], target)
    out[name] = new
  return out


def learning_rate_schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Constant, step (the C3D recipe: x factor at given fractions of training) or cosine, with warmup."""
  base = opt.learning_rate
  if opt.schedule == "constant":
    main = optax.constant_schedule(base)
  elif opt.schedule == "step":
    boundaries = {int(f * num_steps): opt.step_factor for f in opt.step_boundaries}
    main = optax.piecewise_constant_schedule(base, boundaries)
  elif opt.schedule == "cosine":
    main = optax.cosine_decay_schedule(base, max(1, num_steps - opt.warmup_steps))
  else:
    raise ConfigError(
      f"config.optimizer.schedule must be 'constant', 'step' or 'cosine', got {opt.schedule!r}"
    )
  if opt.warmup_steps > 0:
    return optax.join_schedules(
      [optax.linear_schedule(0.0, base, opt.warmup_steps), main], [opt.warmup_steps]
    )
  return main


def make_optimizer(
  opt: ml_collections.ConfigDict, num_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """SGD with momentum or Adam(W), weight decay and gradient clipping."""
  schedule = learning_rate_schedule(opt, num_steps)
  chain = []
  if opt.grad_clip_norm > 0:
    chain.append(optax.clip_by_global_norm(opt.grad_clip_norm))
  if opt.name == "sgd":
    if opt.weight_decay > 0:
      chain.append(optax.add_decayed_weights(opt.weight_decay))
    chain.append(optax.sgd(schedule, momentum=opt.momentum or None, nesterov=False))
  elif opt.name == "adam":
    chain.append(optax.adamw(schedule, weight_decay=opt.weight_decay))
  else:
    raise ConfigError(f"config.optimizer.name must be 'sgd' or 'adam', got {opt.name!r}")
  return optax.chain(*chain), schedule


def per_network_optimizer(
  tx: optax.GradientTransformation, params: Any
) -> optax.GradientTransformation:
  """Applies ``tx`` to each top-level network separately, so clipping never couples the two networks."""
  keys = tuple(params.keys())
  return optax.multi_transform({k: tx for k in keys}, {k: k for k in keys})


def create_train_state(
  config: ml_collections.ConfigDict, num_classes: int, rng: jax.Array, num_steps: int
) -> tuple[TrainState, SegtubeNetworks, optax.Schedule]:
  """Initialises the networks and the optimizer (host-local, unreplicated)."""
  model = SegtubeNetworks(config.model, num_classes)
  init_rng, dropout_rng = jax.random.split(rng)
  shape = models.input_shape(config.model, 1, config.clips.seq_len)
  params = jax.jit(functools.partial(model.init, train=False))(
    init_rng, jnp.zeros(shape, jnp.float32)
  )["params"]
  tx, schedule = make_optimizer(config.optimizer, num_steps)
  if not config.model.shared_trunk:
    tx = per_network_optimizer(tx, params)
  state = TrainState.create(
    apply_fn=model.apply, params=params, tx=tx, rng=jax.random.key_data(dropout_rng)
  )
  return state, model, schedule


def _forward_sums(
  model: SegtubeNetworks,
  params: Any,
  batch: dict[str, jax.Array],
  *,
  train: bool,
  rng: jax.Array | None,
  dtype: Any,
) -> tuple[jax.Array, dict[str, dict[str, jax.Array]]]:
  clips = normalize_clips(batch["clips"], dtype, _input_norm(model))
  rngs = {"dropout": rng} if train else {}
  pro_logits, cla_logits = model.apply({"params": params}, clips, train=train, rngs=rngs)
  _, pro = losses.masked_cross_entropy(pro_logits, batch["proposal_labels"])
  _, cla = losses.masked_cross_entropy(cla_logits, batch["class_labels"])
  return pro["loss_sum"], {"proposal": pro, "classification": cla}


def _microbatches(batch: dict[str, jax.Array], size: int) -> tuple[int, dict[str, jax.Array]]:
  """(count, batch reshaped to [count, size, ...]) for ``size`` sequences per microbatch.

  ``size`` 0 or at least the batch means one microbatch of the whole (un-reshaped) batch.
  """
  n = batch["proposal_labels"].shape[0]
  if size <= 0 or size >= n:
    return 1, batch
  if n % size:
    raise ConfigError(
      f"config.train.microbatch_size={size} must divide the {n} sequences per device"
    )
  return n // size, jax.tree.map(lambda x: x.reshape((n // size, size) + x.shape[1:]), batch)


def make_train_step(
  model: SegtubeNetworks,
  schedule: optax.Schedule,
  dtype: Any = jnp.float32,
  microbatch_size: int = 0,
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
  """``train_step(state, batch) -> (state, metrics)`` for use under ``jax.pmap(axis_name='batch')``.

  Each network's loss is its summed window loss divided by its labelled-window count over the
  *global* batch, and gradients are summed over devices: the update equals a single-device
  step on the same global batch. Dropout keys derive from (rng, step, device), never from
  Python state.

  With ``microbatch_size`` > 0 (sequences), each device's batch is split into microbatches whose
  gradients are summed before the one update. The losses are normalised by the whole batch's
  counts, so the update is the same as the unsplit step's (up to summation order and the dropout
  masks, which fold in the microbatch index). Nothing in the networks couples sequences
  (GroupNorm and LayerNorm are per sample), so this is purely a speed/memory trade: on 2 CPU
  cores the demo model trains 1.9x faster in microbatches of 4 clips (their activations stay in
  cache) than 32 clips at once.
  """

  def train_step(
    state: TrainState, batch: dict[str, jax.Array]
  ) -> tuple[TrainState, dict[str, jax.Array]]:
    device = jax.lax.axis_index("batch")
    rng = jax.random.fold_in(
      jax.random.fold_in(jax.random.wrap_key_data(state.rng, impl=PRNG_IMPL), state.step), device
    )
    counts = {
      "proposal": jax.lax.psum((batch["proposal_labels"] >= 0).sum().astype(jnp.float32), "batch"),
      "classification": jax.lax.psum(
        (batch["class_labels"] >= 0).sum().astype(jnp.float32), "batch"
      ),
    }

    def grads_and_sums(params, part, part_rng):
      def loss_fn(params):
        _, sums = _forward_sums(model, params, part, train=True, rng=part_rng, dtype=dtype)
        loss = sum(sums[k]["loss_sum"] / jnp.maximum(counts[k], 1.0) for k in sums)
        return loss, sums

      return jax.grad(loss_fn, has_aux=True)(params)

    num_micro, parts = _microbatches(batch, microbatch_size)
    if num_micro == 1:
      grads, sums = grads_and_sums(state.params, batch, rng)
    else:
      first = jax.tree.map(lambda x: x[0], parts)
      zeros = jax.tree.map(
        lambda a: jnp.zeros(a.shape, a.dtype),
        jax.eval_shape(grads_and_sums, state.params, first, rng),
      )

      def accumulate(total, xs):
        index, part = xs
        out = grads_and_sums(state.params, part, jax.random.fold_in(rng, index))
        return jax.tree.map(jnp.add, total, out), None

      # Unrolled: as a loop, XLA:CPU ran the same microbatches 10x slower than the whole batch.
      (grads, sums), _ = jax.lax.scan(
        accumulate, zeros, (jnp.arange(num_micro), parts), unroll=True
      )
    grads = jax.lax.psum(grads, "batch")
    sums = jax.lax.psum(sums, "batch")
    new_state = state.apply_gradients(grads=grads)
    metrics = {
      **losses.summarize(sums["proposal"], "proposal"),
      **losses.summarize(sums["classification"], "classification"),
    }
    metrics["loss"] = metrics["proposal_loss"] + metrics["classification_loss"]
    metrics["learning_rate"] = schedule(state.step)
    metrics["grad_norm"] = optax.global_norm(grads)
    return new_state, metrics

  return train_step


def make_eval_step(
  model: SegtubeNetworks, dtype: Any = jnp.float32
) -> Callable[[Any, dict[str, jax.Array]], dict[str, Any]]:
  """``eval_step(params, batch) -> summed counts`` (psum over devices) for exact averaging."""

  def eval_step(params: Any, batch: dict[str, jax.Array]) -> dict[str, Any]:
    clips = normalize_clips(batch["clips"], dtype, _input_norm(model))
    pro_logits, cla_logits = model.apply({"params": params}, clips, train=False)
    _, pro = losses.masked_cross_entropy(pro_logits, batch["proposal_labels"])
    _, cla = losses.masked_cross_entropy(cla_logits, batch["class_labels"])
    # Accuracy on action windows alone: background dominates untrimmed videos.
    action_labels = jnp.where(batch["class_labels"] > 0, batch["class_labels"], -1)
    _, action = losses.masked_cross_entropy(cla_logits, action_labels)
    return jax.lax.psum({"proposal": pro, "classification": cla, "action": action}, "batch")

  return eval_step


def make_predict_fn(
  model: SegtubeNetworks, dtype: Any = jnp.float32
) -> Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]:
  """``predict(params, clips uint8 [B, S, ...]) -> (proposal_logits, class_logits)`` (jit, no pmap)."""

  @jax.jit
  def predict(params, clips):
    return model.apply(
      {"params": params}, normalize_clips(clips, dtype, _input_norm(model)), train=False
    )

  return predict
