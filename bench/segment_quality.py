"""Quality of the spatial stage on a dataset with masks, given the ground-truth spans.

For every video of a subset and every annotated instance, segments frames [f_s, f_e) with the
library defaults (unsupervised: saliency initialisation, then GMM + graph-cut rounds) and
compares with the ground-truth masks: mean IoU (J) per video over the frames that have masks,
and the mean over videos. This is the "given the ground-truth span" figure of the spatial stage.

Usage:
  .venv/bin/python bench/segment_quality.py --root runs/demo/data [--subset testing --max_videos 40]
"""

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.evaluation import masks as mask_metrics
from segtube_jax.spatial import default_config, segment_video
# pylint: enable=g-import-not-at-top,wrong-import-position


def span_quality(root: str, subset: str = "testing", max_videos: int | None = None) -> dict:
  """Per-video mean IoU of the unsupervised stage on the ground-truth spans, and their mean."""
  ds = dataset_lib.load_dataset(root)
  config = default_config()
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
      pred = segment_video(reader, span=(fs, fe - 1), config=config)[fs:fe]
      gt, present = gt_reader.read(fs, fe, (reader.height, reader.width))
      ious.extend(mask_metrics.region_similarity(pred[present], gt[present]).tolist())
      frames_done += fe - fs
    per_video[info.video_id] = float(np.mean(ious))
  seconds = time.perf_counter() - t0
  return {"per_video": per_video, "mean_iou": float(np.mean(list(per_video.values()))) if per_video else float("nan"),
          "videos": len(per_video), "frames": frames_done, "seconds": seconds}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--subset", default="testing")
  parser.add_argument("--max_videos", type=int, default=None)
  args = parser.parse_args()
  result = span_quality(args.root, args.subset, args.max_videos)
  for vid, iou in result["per_video"].items():
    print(f"{vid}: IoU {iou:.3f}")
  print(f"{args.root} [{args.subset}]: mean IoU {result['mean_iou']:.4f} over {result['videos']} videos "
        f"({result['frames']} span frames in {result['seconds']:.1f} s, "
        f"{result['frames'] / max(result['seconds'], 1e-9):.1f} frames/s)")


if __name__ == "__main__":
  main()
