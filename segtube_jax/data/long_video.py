"""Writes an hour-long synthetic video, rendered and encoded as a stream (memory and speed tests).

A long video is a sequence of synthetic "scenes": each is one video of segtube_jax.data.synthetic
(its own actor, background, idle stretches and 1-2 action instances), rendered alone and
streamed into the encoder, so memory holds one scene (at most ``max_scene`` frames), never the
video. Scenes change at cuts, as in an untrimmed broadcast. Non-square sizes (THUMOS14's
171x128) are rendered square at the height and stretched to the width.

Next to ``FILE.mp4`` goes ``FILE.mp4.json``: fps, size, seed and the action instances
``[label, first frame, end frame exclusive]`` in whole-video frame numbers. Usage::

  python -m segtube_jax.data.long_video --out /tmp/long.mp4 --num_frames 108000 --height 64 --width 64
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time
from typing import Any, Iterator

from absl import flags
import cv2
import numpy as np

from segtube_jax import cli
from segtube_jax.data import synthetic
from segtube_jax.data import video as video_lib
from segtube_jax.errors import ConfigError, VideoError
from segtube_jax.io_utils import write_json_atomic


@dataclasses.dataclass(frozen=True)
class LongVideoOptions:
  """What a long video looks like (sizes in pixels, durations in frames)."""

  num_frames: int
  height: int = 64
  width: int = 64
  seed: int = 0
  fps: float = 25.0
  num_classes: int = 6
  min_scene: int = 150
  max_scene: int = 400
  crf: int = 18

  def validate(self) -> None:
    """Raises ConfigError naming the first impossible option."""
    if self.num_frames < 1:
      raise ConfigError(f"num_frames must be >= 1, got {self.num_frames}")
    if self.height < 32 or self.height % 2 or self.width < 16:
      raise ConfigError(
        f"height must be an even number >= 32 and width >= 16, got {self.height}x{self.width}"
      )
    self.scene_options().validate()

  def scene_options(self) -> synthetic.Options:
    return synthetic.Options(
      size=self.height,
      num_classes=self.num_classes,
      min_frames=self.min_scene,
      max_frames=self.max_scene,
      fps=self.fps,
      crf=self.crf,
      workers=1,
    )


def iter_scenes(
  opts: LongVideoOptions,
) -> Iterator[tuple[int, np.ndarray, list[tuple[int, int, int]]]]:
  """Yields ``(first frame, frames uint8 [t, H, W, 3], instances)`` scene by scene.

  Instances are ``(class index, first frame, end frame exclusive)`` in whole-video frame numbers;
  the last scene is cut at ``num_frames`` (and its instances with it).
  """
  opts.validate()
  scene_opts = opts.scene_options()
  first, index = 0, 0
  while first < opts.num_frames:
    plan = synthetic.plan_video(opts.seed, index, "testing", index % opts.num_classes, scene_opts)
    frames, _ = synthetic.render_video(plan, scene_opts)
    frames = frames[: opts.num_frames - first]
    if opts.width != opts.height:
      frames = np.stack(
        [cv2.resize(f, (opts.width, opts.height), interpolation=cv2.INTER_LINEAR) for f in frames]
      )
    instances = [
      (c, first + fs, first + min(fe, len(frames)))
      for c, fs, fe in plan.instances
      if fs < len(frames)
    ]
    yield first, frames, instances
    first += len(frames)
    index += 1


def write_long_video(path: str | pathlib.Path, opts: LongVideoOptions) -> dict[str, Any]:
  """Renders the video into ``path`` (mp4) and its instances into ``path.json``; returns that record.

  Raises:
    ConfigError: an impossible option.
    VideoError: the encoder failed.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  classes = list(synthetic.MOTIONS[: opts.num_classes])
  instances: list[list[Any]] = []
  start = time.perf_counter()

  def frames() -> Iterator[np.ndarray]:
    for _, scene, scene_instances in iter_scenes(opts):
      instances.extend([classes[c], fs, fe] for c, fs, fe in scene_instances)
      yield from scene

  count = video_lib.write_video(path, frames(), opts.fps, crf=opts.crf)
  if count != opts.num_frames:
    raise VideoError(f"{path}: wrote {count} frames, expected {opts.num_frames}")
  record = {
    "video": str(path),
    "classes": classes,
    "instances": instances,
    "seconds": round(time.perf_counter() - start, 2),
    **dataclasses.asdict(opts),
  }
  write_json_atomic(path.with_name(path.name + ".json"), record)
  return record


def define_flags(fv: flags.FlagValues) -> None:
  """Defines the command's flags on ``fv``: --out, then one per :class:`LongVideoOptions` field."""
  flags.DEFINE_string(
    "out", None, "The mp4 file to write (instances go to OUT.json).", flag_values=fv
  )
  flags.DEFINE_integer("num_frames", None, "Frames of the video.", flag_values=fv)
  flags.mark_flags_as_required(["out", "num_frames"], flag_values=fv)
  define = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
  for f in dataclasses.fields(LongVideoOptions):
    if f.name != "num_frames":
      define[type(f.default)](f.name, f.default, f"LongVideoOptions.{f.name}.", flag_values=fv)


def _write(fv: flags.FlagValues) -> int:
  out = fv.out
  record = write_long_video(
    out,
    LongVideoOptions(**{f.name: fv[f.name].value for f in dataclasses.fields(LongVideoOptions)}),
  )
  print(
    f"wrote {out}: {record['num_frames']} frames of {record['width']}x{record['height']} at {record['fps']:g} fps, "
    f"{len(record['instances'])} action instances, in {record['seconds']:.1f} s"
  )
  return 0


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit status (0 ok, 2 bad input)."""
  return cli.run_command(
    __doc__, define_flags, _write, argv, "python -m segtube_jax.data.long_video"
  )


if __name__ == "__main__":
  sys.exit(main())
