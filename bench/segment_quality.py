"""Quality of the spatial stage on a dataset with masks, given the ground-truth spans.

For every video of a subset and every annotated instance, segments frames [f_s, f_e) with the
library defaults (unsupervised: saliency initialisation, then GMM + graph-cut rounds) and
compares with the ground-truth masks: mean IoU (J) per video over the frames that have masks,
and the mean over videos. This is the "given the ground-truth span" figure of the spatial stage.

The measurement itself is segtube_jax.spatial.quality.span_quality (also used by
tests/test_spatial_synthetic.py).

Usage:
  .venv/bin/python bench/segment_quality.py --root runs/demo/data [--subset testing --max_videos 40]
                                            [--set key=value ...]
"""

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from segtube_jax.segment import apply_overrides
from segtube_jax.spatial import default_config
from segtube_jax.spatial.quality import span_quality
# pylint: enable=g-import-not-at-top,wrong-import-position


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--subset", default="testing")
  parser.add_argument("--max_videos", type=int, default=None)
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a segmentation config value")
  args = parser.parse_args()
  config = apply_overrides(default_config(), args.set)
  result = span_quality(args.root, args.subset, args.max_videos, config)
  for vid, iou in result["per_video"].items():
    print(f"{vid}: IoU {iou:.3f}")
  print(f"{args.root} [{args.subset}]: mean IoU {result['mean_iou']:.4f} over {result['videos']} videos "
        f"({result['frames']} span frames in {result['seconds']:.1f} s, "
        f"{result['frames'] / max(result['seconds'], 1e-9):.1f} frames/s)")


if __name__ == "__main__":
  main()
