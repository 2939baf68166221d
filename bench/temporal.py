"""Benchmark: Eq. (3) aggregation and Eq. (4) labelling of a one-hour 30 fps video.

Run: .venv/bin/python bench/temporal.py [--num_frames 108000 --num_classes 20]
Prints the median wall time of the compiled window scores + aggregation + labelling (target:
<= 10 ms on CPU), and the load average, since other jobs on a shared machine inflate it.
"""

from collections.abc import Sequence
import os
import time

from absl import app, flags
import jax
import numpy as np

from segtube_jax import clips, temporal


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags (when it runs as a program, never at import)."""
  flags.DEFINE_integer(
    "num_frames", 108_000, "Video length in frames.", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_integer(
    "num_classes", 20, "Action classes K (K+1 class scores).", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_integer(
    "repeats", 50, "Timed calls (the median is reported).", lower_bound=1, flag_values=fv
  )


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  args = flags.FLAGS
  w = clips.enumerate_windows(args.num_frames)
  starts, ends, valid = temporal.pad_windows(w.starts, w.ends, bucket=4096)
  rng = np.random.default_rng(0)
  proposal = rng.normal(size=(starts.size, 2)).astype(np.float32)
  classes = rng.normal(size=(starts.size, args.num_classes + 1)).astype(np.float32)

  @jax.jit
  def localize(starts, ends, proposal, classes, valid):
    scores = temporal.window_scores(proposal, classes, valid)
    alpha = temporal.aggregate_frame_scores(starts, ends, scores, args.num_frames)
    return alpha, temporal.frame_labels(alpha, 0.6)

  inputs = [jax.device_put(x) for x in (starts, ends, proposal, classes, valid)]
  t0 = time.perf_counter()
  jax.block_until_ready(localize(*inputs))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    alpha, labels = jax.block_until_ready(localize(*inputs))
    times.append(time.perf_counter() - t0)
  t0 = time.perf_counter()
  segments = temporal.extract_segments(np.asarray(labels), np.asarray(alpha))
  extract_s = time.perf_counter() - t0
  print(
    f"frames={args.num_frames} windows={len(w)} (padded {starts.size}) classes={args.num_classes} "
    f"device={jax.devices()[0].platform} load average={os.getloadavg()[0]:.2f}"
  )
  print(
    f"compile: {compile_s * 1e3:.0f} ms; scores+Eq.3+Eq.4 median {np.median(times) * 1e3:.2f} ms "
    f"(min {min(times) * 1e3:.2f}); segment extraction {extract_s * 1e3:.2f} ms ({len(segments)} segments)"
  )


if __name__ == "__main__":
  define_flags()
  app.run(main)
