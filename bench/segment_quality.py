"""Quality of the spatial stage on a dataset with masks, given the ground-truth spans.

For every video of a subset and every annotated instance, segments frames [f_s, f_e) with the
library defaults (unsupervised: saliency initialisation, then GMM + graph-cut rounds) and
compares with the ground-truth masks: mean IoU (J) per video over the frames that have masks,
and the mean over videos. This is the "given the ground-truth span" figure of the spatial stage.

The measurement itself is segtube_jax.evaluation.span_quality.span_quality (also used by
tests/test_spatial_synthetic.py).

Usage:
  .venv/bin/python bench/segment_quality.py --root runs/demo/data [--subset testing --max_videos 40]
                                            [--set key=value [--set key=value ...]]
"""

from collections.abc import Sequence
import pathlib
import sys

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from segtube_jax import schema
from segtube_jax.cli import apply_overrides
from segtube_jax.evaluation.span_quality import span_quality

# pylint: enable=g-import-not-at-top,wrong-import-position


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags (when it runs as a program, never at import)."""
  flags.DEFINE_string(
    "root", None, "Dataset root with masks (e.g. runs/demo/data).", flag_values=fv
  )
  flags.DEFINE_string("subset", "testing", "Subset to segment.", flag_values=fv)
  flags.DEFINE_integer(
    "max_videos", None, "At most this many videos (default: all).", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_multi_string("set", [], "Segmentation config override KEY=VALUE.", flag_values=fv)
  flags.mark_flag_as_required("root", flag_values=fv)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  args = flags.FLAGS
  config = apply_overrides(schema.segmentation_config(), args.set)
  result = span_quality(args.root, args.subset, args.max_videos, config)
  for vid, iou in result["per_video"].items():
    print(f"{vid}: IoU {iou:.3f}")
  print(
    f"{args.root} [{args.subset}]: mean IoU {result['mean_iou']:.4f} over {result['videos']} videos "
    f"({result['frames']} span frames in {result['seconds']:.1f} s, "
    f"{result['frames'] / max(result['seconds'], 1e-9):.1f} frames/s)"
  )


if __name__ == "__main__":
  define_flags()
  app.run(main)
