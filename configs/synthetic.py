"""CPU demo: the small C3D + peephole LSTM on the embedded synthetic dataset.

Run:
  python -m segtube_jax.data.synthetic --out runs/demo/data --num_videos 120 --seed 0
  python train.py --config configs/synthetic.py --workdir runs/demo
Expected time: 400 steps take about 5 minutes on 2 quiet CPU cores (~45 clips/s), plus about a
minute packing the data once; the default 1200 steps about 15 minutes.
Expected result (target): validation proposal accuracy >= 0.9 and classification accuracy >= 0.8
(metrics.jsonl, split "validation"). NOT reached yet: measured after 400 steps, both networks
predict the majority class (proposal 0.688, classification 0.688, action-window 0.0); see the
README's "Known issues".
"""

from segtube_jax import models
from segtube_jax import defaults


def get_config():
  c = defaults.base_config()
  c.dataset.root = "runs/demo/data"
  c.dataset.frame_size = (64, 64)
  c.clips.resize = (36, 36)
  c.clips.seq_len = 4
  c.clips.flip = False  # Synthetic classes are direction-sensitive motions.
  c.model = models.tiny_model_config()
  c.model.dropout_rate = 0.2
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 1e-4
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 50
  c.train.num_steps = 1200
  c.train.global_batch_size = 8
  c.train.log_every = 50
  c.train.checkpoint_every = 200
  c.data_threads = 2
  return c
