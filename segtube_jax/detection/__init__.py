"""The Segment-tube detector: temporal localization with the trained networks (Eqs. 1-4) and the
alternating optimisation with the spatial segmentation stage (Sec. 2.3)."""

from segtube_jax.detection.alternating import VideoState, run_alternating
from segtube_jax.detection.localizer import (
  Localization,
  Localizer,
  prepare_frames,
)

__all__ = [
  "Localization",
  "Localizer",
  "VideoState",
  "prepare_frames",
  "run_alternating",
]
