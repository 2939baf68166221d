"""Segment the actor of one video: one PNG mask (0 / 255) per frame, named after the frame.

Unsupervised by default: saliency initialisation B_o, then rounds of GMM estimation and graph
cuts of Eq. (5) (Sec. 2.2-2.3). Frames outside --start..--end get empty masks.

  python -m segtube_jax.segment --frames DIR --out DIR [--start F --end F]
  python -m segtube_jax.segment --video FILE --out DIR [--set refine.enabled=False]
"""

import argparse
import ast
import sys
import time

import ml_collections

from segtube_jax.errors import ConfigError, SegtubeError
from segtube_jax.spatial import batch
from segtube_jax.spatial import config as config_lib


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]
                    ) -> ml_collections.ConfigDict:
  """Applies ``key.path=value`` overrides (values parsed as Python literals) to ``config``."""
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep:
      raise ConfigError(f"--set {item!r}: expected key=value, e.g. refine.enabled=False")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text  # Bare words are strings (flow.preset=medium).
    node = config
    *path, last = key.split(".")
    try:
      for part in path:
        node = node[part]
      if last not in node:
        raise KeyError(last)
      node[last] = value
    except KeyError:
      raise ConfigError(f"--set {item!r}: no config key {key!r}") from None
    except TypeError as e:
      raise ConfigError(f"--set {item!r}: wrong type for {key!r} ({e})") from None
  return config


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m segtube_jax.segment",
                              description=__doc__.split("\n")[0])
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--frames", help="folder of numbered frame images (e.g. 00000.jpg)")
  src.add_argument("--video", help="video file; masks are named %%05d.png by frame index")
  p.add_argument("--out", required=True, help="folder for the PNG masks")
  p.add_argument("--start", type=int, default=None, help="first frame f_s of the span (default 0)")
  p.add_argument("--end", type=int, default=None,
                 help="last frame f_e of the span, inclusive (default: the last frame)")
  p.add_argument("--previous-masks", default=None,
                 help="folder of PNG masks of a previous iteration, replacing the saliency init")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a segmentation config value (repeatable)")
  return p


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI; returns the exit status (0 ok, 2 bad input)."""
  args = build_parser().parse_args(argv)
  source = args.frames if args.frames is not None else args.video
  try:
    config = apply_overrides(config_lib.default_config(), args.set)
    span = None
    if args.start is not None or args.end is not None:
      from segtube_jax.data import video
      last = video.open_frames(source).num_frames - 1
      span = (0 if args.start is None else args.start, last if args.end is None else args.end)
    job = batch.SegmentJob(source=source, out_dir=args.out, span=span,
                           previous_masks=args.previous_masks)
    start = time.perf_counter()
    result = batch.run_job(job, config)
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if result.error:
    print(f"error: {result.error}", file=sys.stderr)
    return 2
  seconds = time.perf_counter() - start
  print(f"wrote {result.num_frames} masks to {args.out} in {seconds:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
