"""The paper's mixed dataset (ActSeg + UCF101 trimmed + THUMOS14 untrimmed of the same classes).

Build the dataset with segtube_jax.data.mixed (docs/datasets.md), then:
Run: python train.py --config configs/mixed.py --workdir runs/mixed --config.dataset.root=DATA
Expected time: ~8 h on 8 accelerators (not measured here).
Expected result: the paper reports 21.2 mAP at tIoU 0.5 on the mixed testing split (Table 2).
The paper's method and its departures: see configs/default.py.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.dataset.root = "data/mixed"
  c.model.dtype = "bfloat16"
  return c
