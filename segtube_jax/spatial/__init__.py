"""Spatial action segmentation (Sec. 2.2-2.3): saliency init, GMMs and graph cuts on superpixels.

Public API:
  segment_video(frames, span, previous_masks, config) -> bool masks [T,H,W].
  segment_video_stages(...) -> the masks of each step (B_o, cut, final), for diagnostics.
  initial_masks(frames, span, config) -> the saliency segmentation B_o, bool [T,H,W].
  segment_videos(jobs, config, workers) -> results of many videos, in a process pool.
"""

from segtube_jax.spatial.actor_masks import SpanResult, initial_segmentation, segment_span
from segtube_jax.spatial.batch import JobResult, SegmentJob, run_job, segment_videos, write_masks
from segtube_jax.spatial.frames import (
  STAGES,
  check_span,
  initial_masks,
  iter_span_masks,
  segment_video,
  segment_video_stages,
  upsample_masks,
)

__all__ = [
  "STAGES",
  "JobResult",
  "SegmentJob",
  "SpanResult",
  "check_span",
  "initial_masks",
  "initial_segmentation",
  "iter_span_masks",
  "run_job",
  "segment_span",
  "segment_video",
  "segment_video_stages",
  "segment_videos",
  "upsample_masks",
  "write_masks",
]
