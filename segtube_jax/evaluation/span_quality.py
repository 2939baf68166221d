"""Quality of the spatial stage on a dataset with masks, given the ground-truth spans.

For every video of a subset and every annotated instance, segments frames [f_s, f_e) without
supervision (saliency initialisation, then GMM + graph-cut rounds) and compares the masks with
the ground truth: mean IoU (J) per video over the frames that have masks, and the mean over
videos. This is the "given the ground-truth span" figure of the spatial stage; it is not
imported by ``segtube_jax.spatial`` because it needs the dataset reader.
"""

import time
from typing import Any

import ml_collections
import numpy as np

from segtube_jax import schema
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.evaluation import masks as mask_metrics
from segtube_jax.spatial import frames as frames_lib


def span_quality(
  root: str,
  subset: str = "testing",
  max_videos: int | None = None,
  config: ml_collections.ConfigDict | None = None,
) -> dict[str, Any]:
  """Per-video mean IoU of the unsupervised stage on the ground-truth spans, and their mean.

  Args:
    root: Dataset folder (annotations.json, videos or frames, masks).
    subset: Subset whose videos are segmented.
    max_videos: Only the first this many videos of the subset; None for all.
    config: Segmentation config; None for the library defaults.

  Returns:
    {"per_video": {video_id: mean IoU}, "mean_iou": mean over videos (nan when none),
    "videos": count, "frames": span frames segmented, "seconds": wall time}. Videos without
    masks or annotations are skipped.
  """
  ds = dataset_lib.load_dataset(root)
  config = schema.segmentation_config() if config is None else config
  per_video, frames_done, t0 = {}, 0, time.perf_counter()
  for info in ds.subset(subset)[:max_videos]:
    gt_reader = ds.masks(info.video_id)
    if gt_reader is None or not info.annotations:
      continue
    reader = ds.open_frames(info.video_id)
    ious = []
    for inst in info.annotations:
      fs, fe = inst.frame_span(info.fps)
      fe = min(fe, info.num_frames)
      pred = frames_lib.segment_video(reader, span=(fs, fe - 1), config=config)[fs:fe]
      gt, present = gt_reader.read(fs, fe, (reader.height, reader.width))
      ious.extend(mask_metrics.region_similarity(pred[present], gt[present]).tolist())
      frames_done += fe - fs
    per_video[info.video_id] = float(np.mean(ious))
  seconds = time.perf_counter() - t0
  mean = float(np.mean(list(per_video.values()))) if per_video else float("nan")
  return {
    "per_video": per_video,
    "mean_iou": mean,
    "videos": len(per_video),
    "frames": frames_done,
    "seconds": seconds,
  }
