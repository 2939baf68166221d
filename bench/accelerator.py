"""Benchmark: train-step clips/s and MFU, inference and input-pipeline clips/s on any device.

Reports, for the device JAX picks (GPU, TPU or CPU), with the paper-size networks (issue 6):

1. **Train step** (forward + backward + update of both networks, the project's own
   ``steps.make_train_step`` under ``jax.pmap``, state donated) in float32 and bfloat16, for each
   requested ``model.conv_impl``: clips/s and the model FLOPs utilisation
   ``MFU = clips/s x FLOPs per clip / peak FLOP/s``. FLOPs per clip are counted analytically
   from the layer shapes (C3D at 16x112x112: 38.5 GMACs = 77 GFLOPs forward; a train step
   costs 3x forward, for each of the two networks; XLA's cost analysis is not used: it does not
   count the FLOPs of cuDNN convolution custom calls). The peak comes from a table of device kinds (dense bf16 tensor-core peak;
   float32 is counted against the TF32 peak since XLA uses TF32 for f32 convolutions on
   Ampere and newer) or ``--peak_tflops``.
2. **Inference**: the proposal plus classification networks in eval mode (what the detector's
   localizer runs on every window), clips/s.
3. **Input pipeline**: the training input pipeline (``input_pipeline.train_dataset``: grain over
   the packed tfds chunks, decode, resize, crop, flip, saliency attenuation) on a small synthetic
   dataset generated and packed on the fly, clips/s with threads in the training process
   (``data_workers=0``, per thread count) and with worker processes (``data_workers`` > 0, per
   worker count, ``--pipeline_worker_threads`` threads each), side by side. It keeps up when its
   clips/s exceed the train step's.

On an accelerator it runs the paper config (configs/thumos14.py: full C3D, 2 x 256 peephole
LSTM, 16x112x112 clips, two separate networks); on CPU the small demo model at a tiny batch, so
CI can smoke-test the script (the CPU numbers are not a benchmark). The whole run stays under
5 minutes on one H100.

Usage:
  python bench/accelerator.py                       # auto: paper on GPU/TPU, small on CPU
  python bench/accelerator.py --model paper --batch 4 --seq_len 8 --dtypes bfloat16,float32
  python bench/accelerator.py --json out.json       # also writes the results as JSON
  python bench/accelerator.py --parts pipeline --model paper   # threads vs workers, paper clips
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
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

# Dense peak TFLOP/s per chip by device kind substring: (bfloat16, float32 as TF32).
# Sources: NVIDIA H100/H200 SXM and A100 datasheets (without sparsity); Google Cloud TPU docs.
PEAK_TFLOPS = {
  "H200": (989.4, 494.7),
  "H100": (989.4, 494.7),  # SXM; the PCIe card is lower (756 / 378): pass --peak_tflops.
  "A100": (312.0, 156.0),
  "L4": (121.0, 60.0),
  "TPU v6": (918.0, 918.0),
  "TPU v5p": (459.0, 459.0),
  "TPU v5 lite": (197.0, 197.0),
  "TPU v5e": (197.0, 197.0),
  "TPU v4": (275.0, 275.0),
}
NUM_CLASSES = 20  # THUMOS14.


PARTS = ("train", "infer", "pipeline")


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags on ``fv`` (when it runs, never at import: see parse_flags)."""
  flags.DEFINE_enum(
    "model",
    "auto",
    ("auto", "paper", "small", "tiny"),
    "auto: paper on an accelerator, small on CPU; tiny: a CI smoke-test size.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "batch", None, "Sequences per device per step (default: paper 4, small 2).", flag_values=fv
  )
  flags.DEFINE_integer(
    "seq_len", None, "Clips per sequence (default: the config's).", flag_values=fv
  )
  flags.DEFINE_list(
    "dtypes",
    None,
    "Comma-separated compute dtypes (default: bfloat16,float32 on an "
    "accelerator, float32 on CPU, where XLA emulates bfloat16 convolutions slowly).",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "conv_impls",
    None,
    "Comma-separated model.conv_impl values to time with the first "
    "dtype; the other dtypes use the fastest (default: conv3d,temporal_stack on an "
    "accelerator, the config's on CPU).",
    flag_values=fv,
  )
  flags.register_validator(
    "conv_impls",
    lambda v: not v or set(v) <= set(models.CONV_IMPLS),
    f"expected a comma-separated subset of {','.join(models.CONV_IMPLS)}",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "steps", None, "Timed train steps (default: 20 paper, 2 small).", flag_values=fv
  )
  flags.DEFINE_integer("infer_batch", None, "Sequences per inference call.", flag_values=fv)
  flags.DEFINE_list(
    "pipeline_threads",
    None,
    "Comma-separated grain thread counts for the input pipeline (default: 1,half,all cores).",
    flag_values=fv,
  )
  flags.register_validator(
    "pipeline_threads",
    lambda v: not v or all(t.isdigit() and int(t) > 0 for t in v),
    "expected comma-separated positive thread counts (e.g. 4,8,16)",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "pipeline_workers",
    None,
    "Comma-separated worker-process counts for the input pipeline (default: half and all cores).",
    flag_values=fv,
  )
  flags.register_validator(
    "pipeline_workers",
    lambda v: v is None or all(t.isdigit() for t in v),
    "expected comma-separated worker counts >= 0 (e.g. 4,8,16; 0 skips the worker rows)",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "pipeline_worker_threads", 2, "grain threads in each input worker process.", flag_values=fv
  )
  flags.DEFINE_integer(
    "pipeline_batches", None, "Timed input batches per configuration.", flag_values=fv
  )
  flags.DEFINE_enum(
    "encoding",
    None,
    ("png", "jpeg"),
    "Frame encoding of the packed chunks (default: the config's).",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "parts", list(PARTS), "Comma-separated parts to run: train, infer, pipeline.", flag_values=fv
  )
  flags.register_validator(
    "parts",
    lambda v: bool(v) and set(v) <= set(PARTS),
    f"expected a non-empty comma-separated subset of {','.join(PARTS)}",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "target_clips_per_s",
    None,
    "Train-step clips/s the input pipeline must keep up with "
    "(default: the best measured by the train part).",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "peak_tflops",
    None,
    "Peak TFLOP/s of one device for MFU (default: looked up by device kind).",
    flag_values=fv,
  )
  flags.DEFINE_string("json", None, "Also write the results to this JSON file.", flag_values=fv)


def parse_flags(argv: Sequence[str]) -> flags.FlagValues:
  """``argv`` (flags only, no program name) parsed into a private FlagValues.

  Private, so main() can run many times in one process (the tests) next to other modules' flags;
  a bad value raises SystemExit naming the flag, as the command line does.
  """
  try:
    fv = cli.parse_flags(define_flags, argv, "accelerator.py")
  except (flags.Error, SegtubeError) as e:
    raise SystemExit(f"error: {e}") from e
  return fv


def bench_config(args: flags.FlagValues, model: str) -> ml_collections.ConfigDict:
  """The experiment config the benchmark times: paper size, the CPU demo's model, or tiny."""
  if model == "paper":
    c = thumos14_config.get_config()
    c.train.global_batch_size = args.batch or 4
  else:
    c = synthetic_config.get_config()
    c.train.global_batch_size = args.batch or 2
    if model == "tiny":  # Compiles in seconds; the same code paths.
      c.model.width_multiplier = 0.0625
      c.model.fc_dim = 32
      c.model.lstm_features = 8
      c.model.clip_shape = (16, 16, 16)
      c.clips.resize = (18, 18)
      c.dataset.frame_size = (32, 32)
      c.clips.seq_len = 2
  if args.seq_len:
    c.clips.seq_len = args.seq_len
  if args.encoding:
    c.dataset.encoding = args.encoding
  return c


def forward_flops_per_clip(model_cfg: ml_collections.ConfigDict) -> float:
  """Analytic forward FLOPs (2 x MACs) of one C3D trunk + fc6/fc7 for one clip.

  Counts the 3x3x3 convolutions and the fully connected layers (everything else is < 0.1%).
  The paper C3D at 16x112x112 gives 38.5 GMACs = 77.0 GFLOPs.
  """
  t, h, w = model_cfg.clip_shape
  cin = model_cfg.in_channels * (2 if model_cfg.get("input_diff", False) else 1)
  widths = c3d.conv_widths(model_cfg.width_multiplier)
  pads = c3d.pool_paddings((t, h, w), model_cfg.pool5_padding)
  sizes = [t, h, w]
  macs = 0
  for i, cout in enumerate(widths):
    macs += 27 * cin * cout * sizes[0] * sizes[1] * sizes[2]
    cin = cout
    if i in c3d.POOL_AFTER:
      p = c3d.POOL_AFTER[i]
      sizes = [
        models.conv.pool_output_size(s, k, pd)
        for s, k, pd in zip(sizes, c3d.POOL_WINDOWS[p], pads[p])
      ]
  flat = cin * int(np.prod(sizes))
  macs += flat * model_cfg.fc_dim + model_cfg.fc_dim * model_cfg.fc_dim
  return 2.0 * macs


def peak_tflops(device: Any, dtype: str, override: float | None) -> float | None:
  """Dense peak TFLOP/s of ``device`` for ``dtype`` (None when unknown, e.g. on CPU)."""
  if override:
    return override
  kind = getattr(device, "device_kind", "")
  for key, (bf16, f32) in PEAK_TFLOPS.items():
    if key.lower() in kind.lower():
      return bf16 if dtype == "bfloat16" else f32
  return None


def random_batch(
  c: ml_collections.ConfigDict, devices: int, seed: int = 0
) -> dict[str, np.ndarray]:
  """A pmap-sharded batch [devices, B, S, ...] as the input pipeline yields it."""
  rng = np.random.default_rng(seed)
  b = c.train.global_batch_size
  shape = models.input_shape(c.model, b, c.clips.seq_len)
  batch = {
    "clips": rng.integers(0, 256, size=shape, dtype=np.uint8),
    "proposal_labels": rng.integers(0, 2, size=shape[:2]).astype(np.int32),
    "class_labels": rng.integers(0, NUM_CLASSES + 1, size=shape[:2]).astype(np.int32),
  }
  return jax.tree.map(lambda x: np.broadcast_to(x, (devices,) + x.shape).copy(), batch)


def time_train_step(c: ml_collections.ConfigDict, dtype: str, num_steps: int) -> dict[str, Any]:
  """clips/s of the real pmap train step on every local device (each with the config's batch)."""
  c = ml_collections.ConfigDict(c.to_dict())
  c.model.dtype = dtype
  devices = jax.local_device_count()
  state, model, schedule = steps.create_train_state(c, NUM_CLASSES, steps.make_rng(0), 1000)
  compute = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
  p_step = jax.pmap(
    steps.make_train_step(model, schedule, compute), axis_name="batch", donate_argnums=(0,)
  )
  # Through an identity pmap the inputs get the sharding of the step's outputs, as in the
  # trainer; otherwise the second call compiles the step again.
  to_device = jax.pmap(lambda tree: tree, axis_name="batch")
  state = to_device(jax_utils.replicate(state))
  batch = to_device(random_batch(c, devices))
  t0 = time.perf_counter()
  lowered = p_step.lower(state, batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, batch)  # Warm-up (and the first donation).
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(num_steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - t0
  clips_per_step = devices * c.train.global_batch_size * c.clips.seq_len
  if not np.isfinite(float(np.asarray(metrics["loss"])[0])):
    raise FloatingPointError(f"non-finite loss in the {dtype} benchmark step")
  return {
    "clips_per_s": num_steps * clips_per_step / seconds,
    "step_ms": 1e3 * seconds / num_steps,
    "compile_s": compile_s,
    "clips_per_step": clips_per_step,
  }


def time_inference(
  c: ml_collections.ConfigDict, dtype: str, batch: int, num_calls: int
) -> dict[str, Any]:
  """clips/s of both networks' forward pass in eval mode (the detector's localizer), one device."""
  c = ml_collections.ConfigDict(c.to_dict())
  c.model.dtype = dtype
  state, model, _ = steps.create_train_state(c, NUM_CLASSES, steps.make_rng(0), 1000)
  predict = steps.make_predict_fn(model, jnp.bfloat16 if dtype == "bfloat16" else jnp.float32)
  shape = models.input_shape(c.model, batch, c.clips.seq_len)
  clips = jnp.asarray(np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8))
  params = state.params
  jax.block_until_ready(predict(params, clips))
  t0 = time.perf_counter()
  for _ in range(num_calls):
    out = predict(params, clips)
  jax.block_until_ready(out)
  seconds = time.perf_counter() - t0
  return {
    "clips_per_s": num_calls * batch * c.clips.seq_len / seconds,
    "batch_clips": batch * c.clips.seq_len,
  }


def time_input_pipeline(
  c: ml_collections.ConfigDict,
  layouts: Sequence[tuple[int, int]],
  num_batches: int,
  model: str,
) -> list[dict[str, Any]]:
  """clips/s of the training input pipeline per (worker processes, threads), on a generated dataset.

  ``layouts``: (data_workers, data_threads) pairs; 0 workers reads with threads in this process.
  """
  from segtube_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  from segtube_jax.training import input_pipeline  # pylint: disable=g-import-not-at-top

  work = pathlib.Path(tempfile.mkdtemp(prefix="segtube_bench_"))
  # The generator's and packer's worker processes (spawned) re-import this script: keep them
  # off the accelerator, whose memory this process already holds.
  saved_platforms = os.environ.get("JAX_PLATFORMS")
  os.environ["JAX_PLATFORMS"] = "cpu"
  size, videos = {"paper": (128, 12), "small": (64, 6), "tiny": (32, 3)}[model]
  t0 = time.perf_counter()
  synthetic.generate_dataset(
    work / "data",
    videos,
    seed=0,
    size=size,
    min_frames=160,
    max_frames=200,
    frame_format="png",
    split=(1.0, 0.0, 0.0),
    workers=max(1, min(8, os.cpu_count() or 1)),
  )
  c = ml_collections.ConfigDict(c.to_dict())
  c.dataset.root = str(work / "data")
  c.dataset.tfds_dir = str(work / "tfds")
  data_dir, name = input_pipeline.ensure_built(c, work)
  prep_s = time.perf_counter() - t0
  if saved_platforms is None:
    del os.environ["JAX_PLATFORMS"]
  else:
    os.environ["JAX_PLATFORMS"] = saved_platforms
  rows = []
  for workers, threads in layouts:
    c.data_workers, c.data_threads = workers, threads
    ds, _ = input_pipeline.train_dataset(c, data_dir, name, c.train.global_batch_size)
    it = iter(ds)
    for _ in range(max(1, workers)):  # Start-up: processes, thread pools, first reads.
      next(it)
    t0 = time.perf_counter()
    for _ in range(num_batches):
      batch = next(it)
    seconds = time.perf_counter() - t0
    it.close()
    clips = num_batches * batch["clips"].shape[0] * batch["clips"].shape[1]
    rows.append(
      {"workers": workers, "threads": threads, "clips_per_s": clips / seconds, "prep_s": prep_s}
    )
    del it, ds
  shutil.rmtree(work, ignore_errors=True)
  return rows


def _bench_train(
  rows: list[dict[str, Any]],
  c: ml_collections.ConfigDict,
  args: flags.FlagValues,
  device: Any,
  dtypes: Sequence[str],
  impls: Sequence[str],
  num_steps: int,
  step_flops: float,
) -> None:
  """Times the train step per dtype and conv implementation, appending one row each to ``rows``."""
  for k, dtype in enumerate(dtypes):
    if k:  # Later dtypes: the fastest implementation of the first only (compiles are slow).
      impls = [max(rows, key=lambda r: r["clips_per_s"])["conv_impl"]]
    for impl in impls:
      c.model.conv_impl = impl
      r = time_train_step(c, dtype, num_steps)
      peak = peak_tflops(device, dtype, args.peak_tflops)
      r.update(
        dtype=dtype,
        conv_impl=impl,
        mfu=(r["clips_per_s"] / jax.local_device_count() * step_flops / (peak * 1e12))
        if peak
        else None,
      )
      rows.append(r)
      mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a (unknown peak)"
      print(
        f"train  {dtype:8s} {impl:15s} {r['clips_per_s']:9.1f} clips/s  {r['step_ms']:8.1f} ms/step  "
        f"MFU {mfu}  (compile {r['compile_s']:.0f} s)",
        flush=True,
      )


def _bench_inference(
  rows: list[dict[str, Any]],
  c: ml_collections.ConfigDict,
  args: flags.FlagValues,
  dtypes: Sequence[str],
  conv_impl: str,
  paper: bool,
) -> None:
  """Times inference of both networks per dtype with ``conv_impl``, appending rows to ``rows``."""
  for dtype in dtypes:
    r = time_inference(c, dtype, args.infer_batch or (32 if paper else 4), 10 if paper else 2)
    r.update(dtype=dtype, conv_impl=conv_impl)
    rows.append(r)
    print(
      f"infer  {dtype:8s} {conv_impl:15s} {r['clips_per_s']:9.1f} clips/s  "
      f"(proposal + classification networks, {r['batch_clips']} clips per call)",
      flush=True,
    )


def _bench_pipeline(
  results: dict[str, Any],
  c: ml_collections.ConfigDict,
  args: flags.FlagValues,
  cores: int,
  model: str,
  best_clips_per_s: float | None,
) -> None:
  """Times the input pipeline per layout into ``results["pipeline"]`` (unless skipped)."""
  threads = (
    [int(t) for t in args.pipeline_threads]
    if args.pipeline_threads
    else sorted({1, max(1, cores // 2), cores})
  )
  workers = (
    [int(w) for w in args.pipeline_workers if int(w) > 0]
    if args.pipeline_workers is not None
    else sorted({max(1, cores // 2), cores})
  )
  layouts = [(0, t) for t in threads] + [(w, args.pipeline_worker_threads) for w in workers]
  try:
    rows = time_input_pipeline(
      c, layouts, args.pipeline_batches or (20 if model == "paper" else 3), model
    )
  except ImportError as e:  # A device image without the data packages.
    print(f"pipeline: skipped ({e})")
  else:
    results["pipeline"] = rows
    need = args.target_clips_per_s or best_clips_per_s
    for r in rows:
      verdict = (
        ""
        if need is None
        else f"{'keeps up with' if r['clips_per_s'] >= need else 'too slow for'} a train step of "
        f"{need:.0f} clips/s; "
      )
      layout = (
        f"{r['workers']:2d} workers x {r['threads']} threads"
        if r["workers"]
        else f"{r['threads']:2d} threads"
      )
      print(
        f"input  {layout:22s} {r['clips_per_s']:9.1f} clips/s  {c.dataset.encoding}  "
        f"({verdict}dataset prep {r['prep_s']:.0f} s)",
        flush=True,
      )
    best = {
      kind: max((r["clips_per_s"] for r in rows if bool(r["workers"]) == kind), default=None)
      for kind in (False, True)
    }
    if best[False] and best[True]:
      results["pipeline_workers_vs_threads"] = best[True] / best[False]
      print(f"input  worker processes / threads (best of each): {best[True] / best[False]:.2f}x")


def main(argv: Sequence[str] = (), fv: flags.FlagValues | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints a report and returns the results.

  ``fv``: flags already parsed (the command line, through app.run); else ``argv`` (flags only,
  e.g. ``['--model', 'tiny']``) is parsed here.
  """
  args = fv if fv is not None else parse_flags(argv)
  device = jax.devices()[0]
  accel = jax.default_backend() != "cpu"
  model = args.model if args.model != "auto" else ("paper" if accel else "small")
  paper = model == "paper"
  c = bench_config(args, model)
  cores = len(os.sched_getaffinity(0))
  impls = (
    list(args.conv_impls)
    if args.conv_impls
    else (["conv3d", "temporal_stack"] if accel else [c.model.conv_impl])
  )
  dtypes = [d for d in (args.dtypes or (["bfloat16", "float32"] if accel else ["float32"])) if d]
  num_steps = args.steps or (20 if paper else 2)
  parts = set(args.parts)
  print(
    f"jax {jax.__version__} backend={jax.default_backend()} device={device.device_kind} "
    f"x{jax.local_device_count()} cores={cores} model={model} "
    f"batch/device={c.train.global_batch_size}x{c.clips.seq_len} clips {tuple(c.model.clip_shape)}",
    flush=True,
  )
  fwd = forward_flops_per_clip(c.model)
  networks = 1 if c.model.shared_trunk else 2
  step_flops = 3 * networks * fwd
  print(
    f"analytic C3D forward: {fwd / 1e9:.3g} GFLOPs/clip; train step {step_flops / 1e9:.3g} "
    f"GFLOPs/clip ({networks} network(s) x 3)",
    flush=True,
  )
  results: dict[str, Any] = {
    "device": device.device_kind,
    "backend": jax.default_backend(),
    "devices": jax.local_device_count(),
    "model": model,
    "forward_gflops_per_clip": fwd / 1e9,
    "train": [],
    "inference": [],
    "pipeline": [],
  }
  t_start = time.perf_counter()
  if "train" in parts:
    _bench_train(results["train"], c, args, device, dtypes, impls, num_steps, step_flops)
  best = (
    max(results["train"], key=lambda r: r["clips_per_s"])
    if results["train"]
    else {"conv_impl": impls[0], "clips_per_s": args.target_clips_per_s}
  )
  c.model.conv_impl = best["conv_impl"]
  if "infer" in parts:
    _bench_inference(results["inference"], c, args, dtypes, best["conv_impl"], paper)
  if "pipeline" in parts:
    _bench_pipeline(results, c, args, cores, model, best["clips_per_s"])
  results["seconds"] = time.perf_counter() - t_start
  print(f"total {results['seconds']:.0f} s")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
  return results


def _command_line(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  main(fv=flags.FLAGS)


if __name__ == "__main__":
  define_flags()
  app.run(_command_line)
