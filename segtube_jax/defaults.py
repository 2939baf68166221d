"""The full experiment config schema with the paper's defaults (THUMOS14-size, 8 accelerators).

Every key an experiment may set exists here; ``configs/*.py`` start from :func:`base_config`
and override only what differs. :func:`segtube_jax.training.config_checks.check_training_config`
rejects keys that are not in this schema and impossible values before anything compiles.
"""

import ml_collections

from segtube_jax import models


def base_config() -> ml_collections.ConfigDict:
  """Paper defaults (Sec. 2.1): full C3D, 2 x 256 peephole LSTM, 112x112 crops of 128x171 frames."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.init_from = ""  # A workdir or checkpoints folder whose params seed a new run (no resume).

  c.dataset = ml_collections.ConfigDict()
  c.dataset.root = ""  # A dataset folder in the project's format (docs/datasets.md).
  c.dataset.tfds_dir = ""  # Where packed chunks go; '' = <workdir>/tfds.
  c.dataset.frame_size = (128, 171)  # Frames are stored at this size (height, width).
  c.dataset.chunk_len = 32

  c.clips = ml_collections.ConfigDict()
  c.clips.window_lengths = (16, 32)  # Sec. 2.1: 16- and 32-frame windows...
  c.clips.overlap = 0.75  # ... with 75% overlap (strides 4 and 8).
  c.clips.positive_coverage = 0.7  # SCNN-style labels (clips.window_labels).
  c.clips.background_coverage = 0.3
  c.clips.seq_len = 8  # Consecutive windows per training sequence (the LSTM unroll).
  c.clips.resize = (128, 171)  # Frames resized to this before cropping (C3D recipe).
  c.clips.flip = True
  c.clips.mask_source = "none"  # 'none', 'dataset' (ground-truth masks) or 'folder' (mask_dir).
  c.clips.mask_dir = ""  # <mask_dir>/<video_id>/<frame>.png, e.g. the segmentation stage's output.
  c.clips.saliency_mode = "blend_mean"  # How the background is attenuated: 'multiply', 'blend_mean'.
  c.clips.background_weight = 0.25

  c.model = models.default_model_config()

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"  # C3D recipe: SGD with momentum and a step schedule.
  c.optimizer.learning_rate = 0.003
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 0.0005
  c.optimizer.schedule = "step"
  c.optimizer.step_boundaries = (0.5, 0.8)  # Fractions of num_steps.
  c.optimizer.step_factor = 0.1
  c.optimizer.warmup_steps = 500
  c.optimizer.grad_clip_norm = 10.0

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 40_000
  c.train.global_batch_size = 32  # Sequences per step, over all devices and processes.
  c.train.log_every = 50
  c.train.checkpoint_every = 1000
  c.train.keep_checkpoints = 3
  c.train.async_checkpoints = True

  c.data_threads = 8
  c.data_prefetch = 4
  return c
