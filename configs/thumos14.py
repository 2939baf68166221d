"""THUMOS14 at paper size: full C3D (77,995,776 trunk parameters), 2 x 256 peephole LSTM, 112x112 crops.

Run (8 accelerators):
  python -m segtube_jax.data.thumos14 --annotations ANN_DIR --subset validation --out DATA/annotations.json --videos VIDEOS
  python train.py --config configs/thumos14.py --workdir runs/thumos14 --config.dataset.root=DATA
Expected time: ~10 h on 8 A100/H100-class GPUs for 40k steps of 32 x 8 clips (not measured here).
Expected result: the paper reports 39.8 / 27.2 / 20.7 mAP at tIoU 0.3 / 0.4 / 0.5 (Table 1)
after the full Segment-tube loop; this config trains the networks only.
The paper's method and its departures: see configs/default.py. THUMOS14 test videos often hold
several action classes; the paper's rule keeps one per video, --config.detector.class_assignment=segment
gives each detected run its own class.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.dataset.root = "data/thumos14"
  c.train.global_batch_size = 64
  c.model.dtype = "bfloat16"
  return c
