"""Benchmarks the 3x3x3 conv implementations inside the whole network (fwd + bwd + SGD step).

Every ``conv_impl`` (see ``segtube_jax.models.conv``) shares one parameter layout, so the
same initial params drive each variant; the bench reports compile time and training
throughput in clips/s, and the max |logit| difference to 'conv3d' as a sanity check.

Usage:
  .venv/bin/python bench/conv3d.py                       # tiny config, all impls
  .venv/bin/python bench/conv3d.py --clip-shape 16,64,64 --impls conv3d,temporal_stack
  .venv/bin/python bench/conv3d.py --torch               # also a PyTorch C3D of the same size

``--torch`` needs PyTorch importable (it is not a project dependency); its network is the
same C3D trunk + a 2-layer (non-peephole) nn.LSTM + linear head, in NCTHW, same batch.
"""

from collections.abc import Sequence
import pathlib
import sys
import time
import types

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top
from segtube_jax.models import (
  CONV_IMPLS,
  build_model,
  conv_widths,
  input_shape,
)
from segtube_jax.schema import model_config, tiny_model_config

# pylint: enable=g-import-not-at-top


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags (when it runs as a program, never at import)."""
  flags.DEFINE_enum(
    "config", "tiny", ("tiny", "paper"), "Model config to start from.", flag_values=fv
  )
  flags.DEFINE_list(
    "impls", list(CONV_IMPLS), "Comma-separated conv_impl values to time.", flag_values=fv
  )
  flags.register_validator(
    "impls",
    lambda v: bool(v) and set(v) <= set(CONV_IMPLS),
    f"expected a comma-separated subset of {','.join(CONV_IMPLS)}",
    flag_values=fv,
  )
  flags.DEFINE_list("clip-shape", None, "T,H,W (default: the config's).", flag_values=fv)
  flags.register_validator(
    "clip-shape",
    lambda v: v is None or (len(v) == 3 and all(s.isdigit() for s in v)),
    "expected three integers T,H,W (e.g. 16,64,64)",
    flag_values=fv,
  )
  flags.DEFINE_float("width", None, "Width multiplier override.", flag_values=fv)
  flags.DEFINE_integer("fc-dim", None, "fc6/fc7 width override.", flag_values=fv)
  flags.DEFINE_enum(
    "dtype", None, ("float32", "bfloat16"), "Compute dtype override.", flag_values=fv
  )
  flags.DEFINE_integer("batch", 2, "Sequences per step.", flag_values=fv)
  flags.DEFINE_integer("seq", 4, "Clips per sequence.", flag_values=fv)
  flags.DEFINE_integer("classes", 20, "K (K+1 outputs).", flag_values=fv)
  flags.DEFINE_integer("steps", 5, "Timed steps per implementation.", flag_values=fv)
  flags.DEFINE_bool("torch", False, "Also time a PyTorch C3D (if importable).", flag_values=fv)


def flag_args(fv: flags.FlagValues = flags.FLAGS) -> types.SimpleNamespace:
  """This bench's flag values as attributes, '-' read as '_' (--clip-shape: args.clip_shape)."""
  return types.SimpleNamespace(
    **{f.name.replace("-", "_"): f.value for f in fv.get_flags_for_module(__name__)}
  )


def _config(args: types.SimpleNamespace):
  cfg = tiny_model_config() if args.config == "tiny" else model_config()
  if args.clip_shape:
    cfg.clip_shape = tuple(int(v) for v in args.clip_shape)
  if args.width is not None:
    cfg.width_multiplier = args.width
  if args.fc_dim is not None:
    cfg.fc_dim = args.fc_dim
  if args.dtype is not None:
    cfg.dtype = args.dtype
  return cfg


def bench_jax(
  cfg, impl: str, clips: np.ndarray, labels: np.ndarray, num_outputs: int, steps: int
) -> tuple[float, float, np.ndarray]:
  """(compile_s, clips_per_s, eval logits) of one conv_impl."""
  cfg = cfg.copy_and_resolve_references()
  cfg.conv_impl = impl
  model = build_model(cfg, num_outputs)
  params = model.init(jax.random.key(0), clips[:1, :1])["params"]
  opt = optax.sgd(1e-3, momentum=0.9)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, x, y, key):
    def loss_fn(p):
      logits = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  x, y = jnp.asarray(clips), jnp.asarray(labels)
  logits = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(params, x))
  t0 = time.perf_counter()
  out = step(params, opt_state, x, y, jax.random.key(1))
  jax.block_until_ready(out)
  compile_s = time.perf_counter() - t0
  p, s = params, opt_state
  t0 = time.perf_counter()
  for i in range(steps):
    p, s, loss = step(p, s, x, y, jax.random.key(i))
  jax.block_until_ready(loss)
  dt = time.perf_counter() - t0
  return compile_s, steps * clips.shape[0] * clips.shape[1] / dt, logits


def bench_torch(cfg, clips: np.ndarray, labels: np.ndarray, num_outputs: int, steps: int) -> float:
  """clips/s of a PyTorch C3D + LSTM of the same size (fwd + bwd + SGD step)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  widths = conv_widths(cfg.width_multiplier)

  class TorchNet(nn.Module):
    def __init__(self):
      super().__init__()
      layers, cin = [], cfg.in_channels
      pools = {0: (1, 2, 2), 1: (2, 2, 2), 3: (2, 2, 2), 5: (2, 2, 2), 7: (2, 2, 2)}
      for i, w in enumerate(widths):
        layers += [nn.Conv3d(cin, w, 3, padding=1), nn.ReLU()]
        if i in pools:
          pad = (0, 1, 1) if i == 7 else 0
          layers.append(nn.MaxPool3d(pools[i], pools[i], padding=pad))
        cin = w
      self.trunk = nn.Sequential(*layers)
      t, h, w = cfg.clip_shape
      with torch.no_grad():
        flat = self.trunk(torch.zeros(1, cfg.in_channels, t, h, w)).numel()
      self.fc = nn.Sequential(
        nn.Linear(flat, cfg.fc_dim),
        nn.ReLU(),
        nn.Dropout(cfg.dropout_rate),
        nn.Linear(cfg.fc_dim, cfg.fc_dim),
        nn.ReLU(),
        nn.Dropout(cfg.dropout_rate),
      )
      self.lstm = nn.LSTM(cfg.fc_dim, cfg.lstm_features, cfg.lstm_layers, batch_first=True)
      self.head = nn.Linear(cfg.lstm_features, num_outputs)

    def forward(self, x):  # x: [B, S, C, T, H, W]
      b, s = x.shape[:2]
      f = self.fc(self.trunk(x.flatten(0, 1)).flatten(1)).view(b, s, -1)
      return self.head(self.lstm(f)[0])

  net = TorchNet()
  opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
  x = torch.from_numpy(np.ascontiguousarray(clips.transpose(0, 1, 5, 2, 3, 4)))
  y = torch.from_numpy(labels.astype(np.int64))

  def step():
    opt.zero_grad()
    logits = net(x)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    loss.backward()
    opt.step()

  step()  # warm-up
  t0 = time.perf_counter()
  for _ in range(steps):
    step()
  return steps * clips.shape[0] * clips.shape[1] / (time.perf_counter() - t0)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  args = flag_args()
  cfg = _config(args)
  num_outputs = args.classes + 1
  rng = np.random.default_rng(0)
  shape = input_shape(cfg, args.batch, args.seq)
  clips = rng.normal(size=shape).astype(np.float32)
  labels = rng.integers(0, num_outputs, size=shape[:2]).astype(np.int32)
  print(
    f"backend={jax.default_backend()} devices={jax.device_count()} clips={shape} "
    f"width={cfg.width_multiplier} fc={cfg.fc_dim} lstm={cfg.lstm_layers}x"
    f"{cfg.lstm_features} dtype={cfg.dtype} steps={args.steps}"
  )
  ref = None
  for impl in args.impls:
    compile_s, rate, logits = bench_jax(cfg, impl, clips, labels, num_outputs, args.steps)
    ref = logits if ref is None else ref
    diff = float(np.max(np.abs(logits - ref)))
    print(
      f"jax   {impl:15s} compile {compile_s:7.1f} s   {rate:8.2f} clips/s   "
      f"max|dlogit| vs first {diff:.1e}",
      flush=True,
    )
  if args.torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      print("torch  (skipped: PyTorch is not importable)")
    else:
      rate = bench_torch(cfg, clips, labels, num_outputs, args.steps)
      print(
        f"torch {'nn.Conv3d':15s} {'':17s}   {rate:8.2f} clips/s  "
        f"(threads={torch.get_num_threads()})"
      )


if __name__ == "__main__":
  define_flags()
  app.run(main)
