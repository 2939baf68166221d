"""Segment the actor of one video: one PNG mask (0 / 255) per frame, named after the frame.

Unsupervised by default: saliency initialisation B_o, then rounds of GMM estimation and graph
cuts of Eq. (5) (Sec. 2.2-2.3). Frames outside --start..--end get empty masks.

  python -m segtube_jax.segment_actors --frames DIR --out DIR [--start F --end F]
  python -m segtube_jax.segment_actors --video FILE --out DIR [--set refine.enabled=False]
"""

import sys
import time

from absl import flags

from segtube_jax import cli, schema
from segtube_jax.spatial import batch


def define_flags(fv: flags.FlagValues) -> None:
  """Defines the command's flags on ``fv``."""
  flags.DEFINE_string(
    "frames", None, "Folder of numbered frame images (e.g. 00000.jpg).", flag_values=fv
  )
  flags.DEFINE_string(
    "video", None, "Video file; masks are named %05d.png by frame index.", flag_values=fv
  )
  flags.mark_flags_as_mutual_exclusive(["frames", "video"], required=True, flag_values=fv)
  flags.DEFINE_string("out", None, "Folder for the PNG masks.", flag_values=fv)
  flags.DEFINE_integer("start", None, "First frame f_s of the span (default 0).", flag_values=fv)
  flags.DEFINE_integer(
    "end", None, "Last frame f_e of the span, inclusive (default: the last frame).", flag_values=fv
  )
  flags.DEFINE_string(
    "previous-masks",
    None,
    "Folder of PNG masks of a previous iteration, replacing the saliency init.",
    flag_values=fv,
  )
  flags.DEFINE_multi_string(
    "set", [], "Segmentation config override KEY=VALUE (repeatable).", flag_values=fv
  )
  flags.mark_flags_as_required(["out"], flag_values=fv)


def _segment(fv: flags.FlagValues) -> int:
  source = fv.frames if fv.frames is not None else fv.video
  config = cli.apply_overrides(schema.segmentation_config(), fv.set)
  span = None
  if fv.start is not None or fv.end is not None:
    from segtube_jax.data import video

    last = video.open_frames(source).num_frames - 1
    span = (0 if fv.start is None else fv.start, last if fv.end is None else fv.end)
  job = batch.SegmentJob(
    source=source, out_dir=fv.out, span=span, previous_masks=fv["previous-masks"].value
  )
  start = time.perf_counter()
  result = batch.run_job(job, config)
  if result.error:
    print(f"error: {result.error}", file=sys.stderr)
    return 2
  seconds = time.perf_counter() - start
  print(f"wrote {result.num_frames} masks to {fv.out} in {seconds:.1f} s")
  return 0


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit status (0 ok, 2 bad input)."""
  return cli.run_command(
    __doc__, define_flags, _segment, argv, "python -m segtube_jax.segment_actors"
  )


if __name__ == "__main__":
  sys.exit(main())
