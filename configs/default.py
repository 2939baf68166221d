"""Default (paper) config: THUMOS14-size networks; a base for the other configs.

Run: python train.py --config configs/default.py --workdir runs/thumos14 --config.dataset.root=DATA
Expected time and result: see configs/thumos14.py (this file is that config without a dataset).
"""

from segtube_jax import defaults


def get_config():
  return defaults.base_config()
