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
from segtube_jax.detection import alternating
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


def _frames_with_overlay(frames: np.ndarray, masks: np.ndarray, present: np.ndarray, segments) -> Iterator[np.ndarray]:
  label_at = {}
  for seg in segments:
    for t in range(seg.start_frame, seg.end_frame):
      label_at[t] = f"{seg.label} [{seg.start_frame}, {seg.end_frame}) {seg.score:.2f}"
  scale = max(1, int(round(240 / frames.shape[1])))  # Small videos are enlarged so the text reads.
  for t, frame in enumerate(frames):
    out = overlay_contours(frame, masks[t]) if present[t] else frame
    if scale > 1:
      out = cv2.resize(out, (out.shape[1] * scale, out.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    if t in label_at:
      cv2.putText(out, label_at[t], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    yield np.ascontiguousarray(out)


def detect_video(video: str, workdir: str, out: str, fps: float = 0.0, workers: int = 1) -> dict:
  """Runs the detector of ``workdir`` on one video and writes OUTDIR; returns the detections dict."""
  config, classes = trainer.load_experiment(workdir)
  path = pathlib.Path(video)
  if not path.exists():
    raise VideoError(f"{video}: no such video file or frame folder")
  reader = video_lib.open_frames(path, fps=fps or 25.0)
  frames = reader.read(0, None)
  if len(frames) == 0:
    raise VideoError(f"{video}: no frames decoded")
  rate = float(getattr(reader, "fps", None) or fps or 25.0)
  localizer, step = detector_eval.load_localizer(config, workdir, classes)
  state = alternating.VideoState(path.stem, frames, rate)
  alternating.run_alternating([state], localizer, config, workers=workers, log=logging.info)
  out_dir = pathlib.Path(out)
  out_dir.mkdir(parents=True, exist_ok=True)
  detector_eval.write_masks(out_dir / "masks", state.masks, state.present)
  video_lib.write_video(out_dir / "overlay.mp4", _frames_with_overlay(frames, state.masks, state.present, state.segments),
                        rate)
  result = {"video": str(path), "fps": rate, "num_frames": int(len(frames)), "checkpoint_step": step,
            "detections": [{"label": s.label, "score": s.score, "segment": [s.t0, s.t1],
                            "frames": [s.start_frame, s.end_frame]} for s in state.segments],
            "iterations": state.iterations}
  write_json_atomic(out_dir / "detections.json", result)
  return result


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for flag in (_VIDEO, _WORKDIR, _OUT):
    if not flag.value:
      raise app.UsageError(f"--{flag.name} is required")
  try:
    result = detect_video(_VIDEO.value, _WORKDIR.value, _OUT.value, _FPS.value, _WORKERS.value)
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
