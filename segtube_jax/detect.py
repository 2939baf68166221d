"""Segment-tubes in one video: ``python -m segtube_jax.detect --video FILE --workdir DIR --out OUTDIR``.

Uses the latest checkpoint, config and class names of a training workdir, runs the alternating
optimisation of Sec. 2.3 on the video and writes to OUTDIR:

- ``detections.json``: ``{"video", "fps", "num_frames", "detections": [{"label", "score",
  "segment": [t0, t1], "frames": [f_s, f_e]}], "iterations": [...]}`` (f_e exclusive);
- ``masks/<frame:06d>.png``: the actor mask of every localized frame;
- ``overlay.mp4``: the video with the mask contours in red and the class and segment written
  on the localized frames.

Works on any file PyAV decodes (mp4, avi, ...) or a folder of numbered frames.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Iterator

import cv2
import numpy as np
from absl import app, flags, logging

from segtube_jax.data import video as video_lib
from segtube_jax.detection import streaming
from segtube_jax.errors import SegtubeError, VideoError
from segtube_jax.evaluation import detector_eval
from segtube_jax.evaluation.report_figures import overlay_contours
from segtube_jax.io_utils import write_json_atomic
from segtube_jax.training import trainer

_VIDEO = flags.DEFINE_string("video", None, "Video file or folder of numbered frames.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (checkpoints and experiment.json).")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_FPS = flags.DEFINE_float("fps", 0.0, "Frame rate when the video does not say (frame folders); 0: 25.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Processes for the segmentation stage.")
_CHUNK = flags.DEFINE_integer("chunk_frames", 2048, "Frames decoded and detected at a time (memory bound).")


def _overlay(frame: np.ndarray, mask: np.ndarray | None, text: str | None, scale: int) -> np.ndarray:
  out = overlay_contours(frame, mask) if mask is not None else frame
  if scale > 1:
    out = cv2.resize(out, (out.shape[1] * scale, out.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
  if text:
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
  return np.ascontiguousarray(out)


def detect_video(video: str, workdir: str, out: str, fps: float = 0.0, workers: int = 1,
                 chunk_frames: int = 2048) -> dict:
  """Runs the detector of ``workdir`` on one video and writes OUTDIR; returns the detections dict.

  The video is decoded, detected and written ``chunk_frames`` frames at a time
  (segtube_jax.detection.streaming), so memory does not grow with its length.
  """
  config, classes = trainer.load_experiment(workdir)
  path = pathlib.Path(video)
  if not path.exists():
    raise VideoError(f"{video}: no such video file or frame folder")
  reader = video_lib.open_frames(path, fps=fps or 25.0)
  num_frames = int(reader.num_frames)
  if num_frames <= 0:
    raise VideoError(f"{video}: no frames decoded")
  rate = float(getattr(reader, "fps", None) or fps or 25.0)
  localizer, step = detector_eval.load_localizer(config, workdir, classes)
  out_dir = pathlib.Path(out)
  out_dir.mkdir(parents=True, exist_ok=True)
  scale = max(1, int(round(240 / max(1, reader.height))))  # Small videos are enlarged so the text reads.
  segments, iterations = [], []

  def overlay_frames() -> Iterator[np.ndarray]:
    for chunk, kept in streaming.iter_chunks(lambda a, b: reader.read(a, b), num_frames, rate, path.stem, localizer,
                                             config, chunk_frames=chunk_frames, workers=workers, log=logging.info):
      segments.extend(kept)
      iterations.append({"frames": [chunk.start, chunk.stop], "iterations": chunk.iterations})
      detector_eval.write_masks(out_dir / "masks", chunk.masks, chunk.present, offset=chunk.start)
      for i, frame in enumerate(chunk.frames):
        t = chunk.start + i
        text = next((f"{s.label} [{s.start_frame}, {s.end_frame}) {s.score:.2f}" for s in kept
                     if s.start_frame <= t < s.end_frame), None)
        yield _overlay(frame, chunk.masks[i] if chunk.present[i] else None, text, scale)

  video_lib.write_video(out_dir / "overlay.mp4", overlay_frames(), rate)
  segments = streaming.join_segments(segments)
  result = {"video": str(path), "fps": rate, "num_frames": num_frames, "checkpoint_step": step,
            "detections": [{"label": s.label, "score": s.score, "segment": [s.t0, s.t1],
                            "frames": [s.start_frame, s.end_frame]} for s in segments],
            "iterations": iterations}
  write_json_atomic(out_dir / "detections.json", result)
  return result


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for flag in (_VIDEO, _WORKDIR, _OUT):
    if not flag.value:
      raise app.UsageError(f"--{flag.name} is required")
  try:
    result = detect_video(_VIDEO.value, _WORKDIR.value, _OUT.value, _FPS.value, _WORKERS.value, _CHUNK.value)
  except SegtubeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"{len(result['detections'])} detection(s) in {result['video']} ({result['num_frames']} frames):")
  for d in result["detections"]:
    print(f"  {d['label']}: frames [{d['frames'][0]}, {d['frames'][1]}) = {d['segment'][0]:.2f}-{d['segment'][1]:.2f} s, "
          f"score {d['score']:.3f}")
  print(f"wrote {_OUT.value}/detections.json, masks/ and overlay.mp4")


if __name__ == "__main__":
  app.run(main)
