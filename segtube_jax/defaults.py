"""The full experiment config schema with the paper's defaults (THUMOS14-size, 8 accelerators).

Every key an experiment may set exists here; ``configs/*.py`` start from :func:`base_config`
and override only what differs. :func:`segtube_jax.training.config_checks.check_training_config`
rejects keys that are not in this schema and impossible values before anything compiles.
"""

import ml_collections

from segtube_jax import models, spatial


def base_config() -> ml_collections.ConfigDict:
  """Paper defaults (Sec. 2.1): full C3D, 2 x 256 peephole LSTM, 112x112 crops of 128x171 frames."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.init_from = ""  # A workdir or checkpoints folder whose params seed a new run (no resume).
  # Multi-host: 'auto' joins the other processes when the launch names them (JAX_COORDINATOR_ADDRESS,
  # srun, mpirun, TPU slice), 'on' always, 'off' never (segtube_jax/training/distributed.py).
  c.distributed = "auto"

  c.dataset = ml_collections.ConfigDict()
  c.dataset.root = ""  # A dataset folder in the project's format (docs/datasets.md).
  c.dataset.tfds_dir = ""  # Where packed chunks go; '' = <workdir>/tfds.
  c.dataset.frame_size = (128, 171)  # Frames are stored at this size (height, width).
  c.dataset.chunk_len = 32
  # Frame encoding in the packed chunks: 'png' is lossless; 'jpeg' (quality 90, as C3D's frame
  # dumps) decodes several times faster, which the input pipeline needs to feed an accelerator.
  c.dataset.encoding = "png"

  c.clips = ml_collections.ConfigDict()
  c.clips.window_lengths = (16, 32)  # Sec. 2.1: 16- and 32-frame windows...
  c.clips.overlap = 0.75  # ... with 75% overlap (strides 4 and 8).
  c.clips.positive_coverage = 0.7  # SCNN-style labels (clips.window_labels).
  c.clips.background_coverage = 0.3
  c.clips.seq_len = 8  # Consecutive windows per training sequence (the LSTM unroll).
  c.clips.resize = (128, 171)  # Frames resized to this before cropping (C3D recipe).
  c.clips.flip = True
  # Per-sequence random channel permutation and colour inversion (training only): keeps a
  # network trained from scratch on few videos from telling classes apart by colour.
  c.clips.color_augment = False
  # Masks of the saliency-aware clips: 'saliency' (the paper's B_o of every frame, computed once
  # and cached beside the packed dataset: training/saliency_cache.py), 'dataset' (ground-truth
  # masks, required on every frame), 'folder' (mask_dir) or 'none' (raw clips).
  c.clips.mask_source = "none"
  c.clips.mask_dir = ""  # <mask_dir>/<video_id>/<frame>.png, e.g. the segmentation stage's output.
  c.clips.saliency_workers = 0  # Processes computing the B_o cache (0: one per CPU core).
  c.clips.saliency_mode = (
    "blend_mean"  # How the background is attenuated: 'multiply', 'blend_mean'.
  )
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
  # Sequences per device per gradient microbatch (0: the whole per-device batch at once). The
  # step sums microbatch gradients before one update (steps.make_train_step): same update, less
  # activation memory, and on CPU much faster for small models (activations stay in cache).
  c.train.microbatch_size = 0
  c.train.log_every = 50
  c.train.checkpoint_every = 1000
  c.train.keep_checkpoints = 3
  c.train.async_checkpoints = True

  c.data_threads = 8
  c.data_prefetch = 4

  # The detector: Eqs. (1)-(4) and the alternating optimisation of Sec. 2.3.
  c.detector = ml_collections.ConfigDict()
  c.detector.gamma = 0.6  # Eq. (4).
  # 'paper' (Eqs. 3-4: one class k' per video, alpha_t from its windows only), 'segment' (each
  # run of alpha_t > gamma takes its best class: several classes per video) or 'frame' (Eq. 3-4
  # per class). See segtube_jax/detection/localizer.py.
  c.detector.class_assignment = "segment"
  c.detector.min_segment_frames = 8  # Shorter runs are dropped (half the shortest window).
  c.detector.nms_iou = 0.0  # Temporal NMS per class above this tIoU; 0 disables it.
  c.detector.max_iterations = 3
  c.detector.converged_mask_iou = 0.99  # Stop once segments are unchanged and masks this close.
  # At iteration 0, segment (graph cut) whole videos instead of the localized spans, so iteration
  # 1's clips carry the loop's masks on every frame; costs a full-video segmentation. Iteration 0
  # itself localizes on B_o clips when clips.mask_source is 'saliency', on raw clips otherwise.
  c.detector.initial_saliency_whole_video = False
  c.detector.batch_size = 16  # Window sequences per network call.

  c.evaluation = ml_collections.ConfigDict()
  c.evaluation.subset = "testing"
  c.evaluation.max_videos = 0  # 0: every video of the subset.
  c.evaluation.tious = (0.1, 0.2, 0.3, 0.4, 0.5)
  c.evaluation.protocol = "thumos14"  # Headline mAP protocol ('thumos14' or 'activitynet').
  c.evaluation.st_ious = (0.2, 0.5)  # Spatio-temporal IoU thresholds of the video-mAP.
  c.evaluation.workers = 2  # Processes for the segmentation stage.
  c.evaluation.group_size = 8  # Videos held in memory and iterated together.
  c.evaluation.report_videos = 3  # Videos shown in the report's alpha_t and overlay figures.

  c.segmentation = spatial.default_config()
  return c
