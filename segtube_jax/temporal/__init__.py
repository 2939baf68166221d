"""Temporal localization, Eqs. (1)-(4): jittable frame-score aggregation and segment extraction."""

from segtube_jax.temporal.localization import (
  Segment,
  aggregate_frame_scores,
  extract_segments,
  flag_labels,
  frame_labels,
  pad_windows,
  specific_labels,
  temporal_iou,
  temporal_nms,
  video_class,
  window_scores,
)

__all__ = [
  "Segment",
  "aggregate_frame_scores",
  "extract_segments",
  "flag_labels",
  "frame_labels",
  "pad_windows",
  "temporal_iou",
  "specific_labels",
  "temporal_nms",
  "video_class",
  "window_scores",
]
