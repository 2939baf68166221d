"""Quality of the unsupervised segmentation on the two DAVIS 2016 sequences in ../shared/data.

Library defaults, full resolution, no mask given. The bar is the mean J of FST (Papazoglou and
Ferrari, "fast object segmentation", the paper's FOS) on these sequences: (0.732 + 0.698) / 2.
"""

import numpy as np
from PIL import Image
import pytest

from segtube_jax.evaluation import masks as metrics
from segtube_jax.spatial import segment_video

SEQUENCES = ("blackswan", "car-shadow")
FST_MEAN_J = 0.715


def _load(folder):
  frames = np.stack(
    [np.asarray(Image.open(p).convert("RGB")) for p in sorted((folder / "frames").glob("*.jpg"))]
  )
  gt = np.stack(
    [np.asarray(Image.open(p).convert("L")) > 127 for p in sorted((folder / "masks").glob("*.png"))]
  )
  return frames, gt


@pytest.mark.slow
def test_davis_mean_j_beats_fst(shared_data):
  root = shared_data / "davis2016"
  if not root.is_dir():
    pytest.skip(f"DAVIS 2016 sequences not found at {root}")
  j = {}
  for name in SEQUENCES:
    frames, gt = _load(root / name)
    assert frames.shape[0] == gt.shape[0]
    pred = segment_video(frames)
    scores = metrics.evaluate_video(pred, gt)  # DAVIS: first and last frame left out.
    j[name] = scores.j_mean
    print(f"{name}: J {scores.j_mean:.3f} F {scores.f_mean:.3f}")
    assert scores.j_mean > 0.5, name  # Neither sequence may collapse.
  assert np.mean(list(j.values())) > FST_MEAN_J
