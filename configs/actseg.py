"""ActSeg (9 classes, per-frame masks): paper-size networks trained on saliency-aware clips from B_o.

Run: python train.py --config configs/actseg.py --workdir runs/actseg --config.dataset.root=DATA
Expected time: ~4 h on 8 accelerators (not measured here; ActSeg is not public).
Expected result: the paper's Table 3 reports 63.7 mean IoU for the full Segment-tube loop.
The paper's method and its departures: see configs/default.py. ActSeg's ground-truth masks are
for scoring only; training on them ('dataset') would need one on every frame.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.dataset.root = "data/actseg"
  c.model.dtype = "bfloat16"
  return c
