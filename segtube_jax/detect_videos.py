"""Segment-tubes in videos: ``python -m segtube_jax.detect_videos --video FILE --workdir DIR --out OUTDIR``.

Uses the latest checkpoint, config and class names of a training workdir, runs the alternating
optimisation of Sec. 2.3 on the video and writes to OUTDIR:

- ``detections.json``: ``{"video", "fps", "num_frames", "detections": [{"label", "score",
  "segment": [t0, t1], "frames": [f_s, f_e]}], "iterations": [...]}`` (f_e exclusive);
- ``masks/<frame:06d>.png``: the actor mask of every localized frame;
- ``overlay.mp4``: the video with the mask contours in red and the class and segment written
  on the localized frames.

Several videos (``--video A --video B``, or a quoted glob ``--video 'videos/*.mp4'``) go to
``OUTDIR/<video name>/`` each, with ``OUTDIR/summary.json`` listing every video's status, output
folder and error. A video that cannot be read (missing, corrupt, truncated) is reported by name
on the console and in summary.json, the others are still processed, and the command exits 1 at
the end. One video keeps the single-video layout and exits 2 on an error.

Works on any file PyAV decodes (mp4, avi, ...) or a folder of numbered frames. Videos are decoded,
detected and written ``--chunk_frames`` frames at a time, so memory does not grow with length.
"""

from __future__ import annotations

import glob
import pathlib
import shutil
import sys
import time
from typing import Any, Iterator, Sequence

from absl import app, flags, logging
import cv2
import ml_collections
import numpy as np

from segtube_jax import cli, schema
from segtube_jax.data import video as video_lib
from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.detection import streaming
from segtube_jax.errors import OutputError, SegtubeError, VideoError
from segtube_jax.evaluation import detector_eval
from segtube_jax.evaluation.report_figures import overlay_contours
from segtube_jax.io_utils import ensure_writable_dir, write_json_atomic
from segtube_jax.training import trainer

_VIDEO = flags.DEFINE_multi_string(
  "video",
  None,
  "Video file or folder of numbered frames; repeat it, or give a "
  "quoted glob pattern, for several videos.",
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Training workdir (checkpoints and experiment.json)."
)
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_FPS = flags.DEFINE_float(
  "fps", 0.0, "Frame rate when the video does not say (frame folders); 0: 25."
)
_WORKERS = flags.DEFINE_integer("workers", 1, "Processes for the segmentation stage.")
_CHUNK = flags.DEFINE_integer(
  "chunk_frames", 2048, "Frames decoded and detected at a time (memory bound)."
)
_GAMMA = flags.DEFINE_float(
  "gamma",
  None,
  "Eq. (4)'s threshold (default: the workdir's config.detector.gamma), e.g. the value "
  "python -m segtube_jax.evaluation.tune_gamma chose.",
)

_GLOB_CHARS = set("*?[")


def _overlay(
  frame: np.ndarray, mask: np.ndarray | None, text: str | None, scale: int
) -> np.ndarray:
  out = overlay_contours(frame, mask) if mask is not None else frame
  if scale > 1:
    out = cv2.resize(
      out, (out.shape[1] * scale, out.shape[0] * scale), interpolation=cv2.INTER_NEAREST
    )
  if text:
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
  return np.ascontiguousarray(out)


def _detect_one(
  video: str,
  config: ml_collections.ConfigDict,
  localizer: localizer_lib.Localizer,
  step: int,
  out: pathlib.Path,
  fps: float,
  workers: int,
  chunk_frames: int,
) -> dict[str, Any]:
  """One video through the loaded detector into ``out``; returns the detections dict."""
  path = pathlib.Path(video)
  if not path.exists():
    raise VideoError(f"{video}: no such video file or frame folder")
  reader = video_lib.open_frames(path, fps=video_lib.frame_rate(fps))
  num_frames = int(reader.num_frames)
  if num_frames <= 0:
    raise VideoError(f"{video}: no frames decoded")
  rate = video_lib.frame_rate(getattr(reader, "fps", None) or fps)
  ensure_writable_dir(out, "--out folder")
  shutil.rmtree(out / "masks", ignore_errors=True)  # Masks of an earlier run would mix with these.
  scale = max(
    1, int(round(240 / max(1, reader.height)))
  )  # Small videos are enlarged so the text reads.
  segments, iterations = [], []

  def overlay_frames() -> Iterator[np.ndarray]:
    # Each chunk's masks are written and its overlay frames encoded before the next is decoded.
    for chunk, kept in streaming.iter_chunks(
      lambda a, b: reader.read(a, b),
      num_frames,
      rate,
      path.stem,
      localizer,
      config,
      chunk_frames=chunk_frames,
      workers=workers,
      log=logging.info,
    ):
      segments.extend(kept)
      iterations.append({"frames": [chunk.start, chunk.stop], "iterations": chunk.iterations})
      detector_eval.write_masks(out / "masks", chunk.masks, chunk.present, offset=chunk.start)
      for i, frame in enumerate(chunk.frames):
        t = chunk.start + i
        text = next(
          (
            f"{s.label} [{s.start_frame}, {s.end_frame}) {s.score:.2f}"
            for s in kept
            if s.start_frame <= t < s.end_frame
          ),
          None,
        )
        yield _overlay(frame, chunk.masks[i] if chunk.present[i] else None, text, scale)

  video_lib.write_video(
    out / "overlay.mp4", overlay_frames(), rate
  )  # Atomic: temp name, then rename.
  segments = streaming.join_segments(segments)
  result = {
    "video": str(path),
    "fps": rate,
    "num_frames": num_frames,
    "checkpoint_step": step,
    "gamma": float(config.detector.gamma),
    "detections": [
      {
        "label": s.label,
        "score": s.score,
        "segment": [s.t0, s.t1],
        "frames": [s.start_frame, s.end_frame],
      }
      for s in segments
    ],
    "iterations": iterations,
  }
  write_json_atomic(out / "detections.json", result, what="detections file")
  return result


def _experiment(workdir: str, gamma: float | None) -> tuple[ml_collections.ConfigDict, list[str]]:
  """The workdir's config (with ``gamma`` when given), validated, and its class names."""
  config, classes = trainer.load_experiment(workdir)
  if gamma is not None:
    config.detector.gamma = gamma
  schema.validate(config)
  return config, classes


def _load(
  workdir: str, gamma: float | None
) -> tuple[ml_collections.ConfigDict, localizer_lib.Localizer, int]:
  config, classes = _experiment(workdir, gamma)
  localizer, step = localizer_lib.load_localizer(config, workdir, classes)
  return config, localizer, step


def detect_video(
  video: str,
  workdir: str,
  out: str,
  fps: float = 0.0,
  workers: int = 1,
  chunk_frames: int = 2048,
  gamma: float | None = None,
) -> dict:
  """Runs the detector of ``workdir`` on one video and writes OUTDIR; returns the detections dict.

  The video is decoded, detected and written ``chunk_frames`` frames at a time
  (segtube_jax.detection.streaming), so memory does not grow with its length.

  Raises:
    VideoError: the video is missing or cannot be decoded.
    ConfigError, CheckpointError: the workdir holds no usable experiment or checkpoint.
  """
  config, classes = _experiment(workdir, gamma)
  if not pathlib.Path(video).exists():  # Before loading the networks: a typo fails fast.
    raise VideoError(f"{video}: no such video file or frame folder")
  localizer, step = localizer_lib.load_localizer(config, workdir, classes)
  return _detect_one(video, config, localizer, step, pathlib.Path(out), fps, workers, chunk_frames)


def expand_videos(patterns: Sequence[str]) -> list[str]:
  """The ``--video`` values with glob patterns expanded (sorted); a path that exists is kept as is.

  A pattern that matches nothing is kept, so that it is reported as a missing video.
  """
  out: list[str] = []
  for p in patterns:
    matches = sorted(glob.glob(p)) if _GLOB_CHARS & set(p) and not pathlib.Path(p).exists() else []
    out.extend(matches or [p])
  return list(dict.fromkeys(out))  # A video named twice is detected once.


def output_names(videos: Sequence[str]) -> list[str]:
  """A distinct output folder name per video: its file name without the extension (numbered on clashes)."""
  stems = [pathlib.Path(v).stem or "video" for v in videos]
  names, used = [], set()
  for stem in stems:
    name, k = stem, 1
    while name in used:
      name, k = f"{stem}_{k}", k + 1
    used.add(name)
    names.append(name)
  return names


def detect_videos(
  videos: Sequence[str],
  workdir: str,
  out: str,
  fps: float = 0.0,
  workers: int = 1,
  chunk_frames: int = 2048,
  gamma: float | None = None,
) -> dict[str, Any]:
  """Runs the detector on several videos into ``OUTDIR/<name>/``; writes and returns ``summary.json``.

  A video that fails (missing, corrupt, truncated) is logged by name, its partial outputs are
  removed, and the others are still processed: the summary's ``videos`` entries carry
  ``status`` ('ok' or 'failed') and ``error``; ``failed`` counts the failures.

  Raises:
    ConfigError, CheckpointError: the workdir holds no usable experiment or checkpoint (nothing is run).
    OutputError: OUTDIR or a file in it cannot be written (the run stops there).
  """
  config, localizer, step = _load(workdir, gamma)
  out_dir = ensure_writable_dir(out)
  entries = []
  for video, name in zip(videos, output_names(videos)):
    t0 = time.perf_counter()
    entry: dict[str, Any] = {"video": video, "out": name}
    try:
      result = _detect_one(
        video, config, localizer, step, out_dir / name, fps, workers, chunk_frames
      )
    except OutputError:
      raise  # A full disk or a read-only folder fails every video after it: stop now.
    except Exception as e:  # pylint: disable=broad-except  # PyAV and codecs raise many types.
      shutil.rmtree(out_dir / name, ignore_errors=True)  # Masks of the chunks before the failure.
      entry.update(status="failed", error=f"{type(e).__name__}: {e}")
      logging.error(
        "video %s failed: %s", video, entry["error"], exc_info=not isinstance(e, SegtubeError)
      )
      print(f"error: video {video} failed: {entry['error']}", file=sys.stderr, flush=True)
    else:
      entry.update(
        status="ok", num_frames=result["num_frames"], num_detections=len(result["detections"])
      )
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    entries.append(entry)
    # Rewritten after every video: the progress of an interrupted run is on disk.
    write_json_atomic(
      out_dir / "summary.json", _summary(workdir, step, entries), what="summary file"
    )
  return _summary(workdir, step, entries)


def _summary(workdir: str, step: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
  failed = sum(e["status"] == "failed" for e in entries)
  return {
    "workdir": str(workdir),
    "checkpoint_step": step,
    "num_videos": len(entries),
    "failed": failed,
    "videos": entries,
  }


def _print_result(result: dict[str, Any]) -> None:
  print(
    f"{len(result['detections'])} detection(s) in {result['video']} ({result['num_frames']} frames):"
  )
  for d in result["detections"]:
    print(
      f"  {d['label']}: frames [{d['frames'][0]}, {d['frames'][1]}) = "
      f"{d['segment'][0]:.2f}-{d['segment'][1]:.2f} s, score {d['score']:.3f}"
    )


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.quiet_library_logs()
  for flag in (_VIDEO, _WORKDIR, _OUT):
    if not flag.value:
      raise app.UsageError(f"--{flag.name} is required")
  videos = expand_videos(_VIDEO.value)
  args = (_WORKDIR.value, _OUT.value, _FPS.value, _WORKERS.value, _CHUNK.value, _GAMMA.value)
  if len(videos) == 1 and videos == _VIDEO.value:  # One video named: the single-video layout.
    try:
      result = detect_video(videos[0], *args)
    except SegtubeError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    _print_result(result)
    print(f"wrote {_OUT.value}/detections.json, masks/ and overlay.mp4")
    return
  try:
    summary = detect_videos(videos, *args)
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  for entry in summary["videos"]:
    if entry["status"] == "ok":
      print(
        f"{entry['video']}: {entry['num_detections']} detection(s) in {entry['num_frames']} frames "
        f"-> {_OUT.value}/{entry['out']}/"
      )
    else:
      print(f"{entry['video']}: FAILED: {entry['error']}")
  print(
    f"wrote {_OUT.value}/summary.json ({summary['num_videos'] - summary['failed']} of {summary['num_videos']} "
    f"video(s) done)"
  )
  if summary["failed"]:
    print(
      f"error: {summary['failed']} of {summary['num_videos']} video(s) failed: "
      + ", ".join(e["video"] for e in summary["videos"] if e["status"] == "failed"),
      file=sys.stderr,
    )
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
