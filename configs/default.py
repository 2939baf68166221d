"""Default (paper) config: THUMOS14-size networks; a base for the other configs.

Run: python train.py --config configs/default.py --workdir runs/thumos14 --config.dataset.root=DATA
Expected time and result: see configs/thumos14.py (this file is that config without a dataset).
"""

from segtube_jax import defaults


def get_config():
  c = defaults.base_config()
  # Real video frames at 128x171: JPEG chunks decode several times faster than PNG, which the
  # input pipeline needs to keep up with an accelerator (README "On an accelerator").
  c.dataset.encoding = "jpeg"
  return c
