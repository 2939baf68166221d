"""Temporal localization, Eqs. (1)-(4): jittable frame-score aggregation and segment extraction."""

from segtube_jax.temporal.localization import (Segment, aggregate_frame_scores, extract_segments, frame_labels,
                                               pad_windows, temporal_iou, temporal_nms, video_class, window_scores)

__all__ = ["Segment", "aggregate_frame_scores", "extract_segments", "frame_labels", "pad_windows", "temporal_iou",
           "temporal_nms", "video_class", "window_scores"]
