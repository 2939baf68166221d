"""Every default of the project: the experiment config schema with the paper's settings.

This is the one home of defaults. :func:`experiment_config` is the full schema (THUMOS14 size,
8 accelerators); ``configs/*.py`` start from it (through ``configs/default.py``) and override only
what differs; :func:`model_config` / :func:`tiny_model_config` are its ``model`` section at paper
and CPU size, :func:`segmentation_config` its ``segmentation`` section (the spatial stage, also
used alone by ``python -m segtube_jax.segment_actors``). The choices a string key may take are here too;
:mod:`segtube_jax.schema.checks` rejects unknown keys and impossible values.

Adding a config field: its default here, its rule in ``checks.py``.
"""

import ml_collections

# The values string keys may take (checked by schema.checks).
DTYPES = ("float32", "bfloat16")  # model.dtype; models.DTYPES maps them to jnp dtypes.
CONV_IMPLS = ("conv3d", "temporal_stack", "sum2d", "out_stack", "im2col", "auto")
DEFAULT_CONV_IMPL = "auto"  # Picks the fastest per backend (models/conv.py).
POOL5_PADDINGS = ("torch", "caffe")
CONV_NORMS = ("none", "group")
INPUT_NORMS = ("kinetics", "c3d_sports1m")  # As training.steps.normalize_clips.
MASK_SOURCES = ("none", "saliency", "dataset", "folder")
SALIENCY_MODES = ("multiply", "blend_mean", "none")
ENCODINGS = ("png", "jpeg")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")
DISTRIBUTED_MODES = ("auto", "on", "off")
CLASS_ASSIGNMENTS = ("paper", "segment", "frame")
PROTOCOLS = ("thumos14", "activitynet")
FLOW_PRESETS = ("ultrafast", "fast", "medium")
THRESHOLD_METHODS = ("otsu", "mean_std")
LOCATION_MODELS = ("frame", "video")
COLOR_FEATURES = ("pixels", "superpixels")


def experiment_config() -> ml_collections.ConfigDict:
  """Paper defaults (Sec. 2.1): full C3D, 2 x 256 peephole LSTM, 112x112 crops of 128x171 frames."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.init_from = ""  # A workdir or checkpoints folder whose params seed a new run (no resume).
  # Multi-host: 'auto' joins the other processes when the launch names them (JAX_COORDINATOR_ADDRESS,
  # srun, mpirun, TPU slice), 'on' always, 'off' never (segtube_jax/training/distributed.py).
  c.distributed = "auto"  # One of DISTRIBUTED_MODES.

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

  c.model = model_config()

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

  # Input pipeline (training/batch_stream.py): worker processes (-1: one per host core, at most
  # 32; 0: threads in the training process only), each reading with data_threads threads.
  # Processes scale where threads stop at the GIL (docs/scaling.md).
  c.data_workers = -1
  c.data_threads = 2
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

  c.segmentation = segmentation_config()
  return c


def model_config() -> ml_collections.ConfigDict:
  """Paper-size model config (Sec. 2.1).

  Fields:
    width_multiplier: C3D conv width scale (1.0: 64, 128, 256, 256, 512 x4).
    fc_dim: fc6/fc7 width (4096).
    lstm_features: hidden units per peephole LSTM layer (256).
    lstm_layers: LSTM depth (2).
    dropout_rate: after fc6 and fc7 (0.5).
    dtype: trunk computation dtype, 'float32' or 'bfloat16' (params always float32).
    conv_impl: 3x3x3 conv implementation, one of ``CONV_IMPLS`` (speed only).
    pool5_padding: 'torch' (PyTorch C3D, needed for its Sports-1M weights) or 'caffe'.
    clip_shape: (frames, height, width) of one input clip (16, 112, 112).
    in_channels: input channels (3, RGB).
    shared_trunk: use one C3D for both proposal and classification heads (TwoHeadNetwork)
      instead of two separate networks as in the paper.
    conv_norm: 'none' (original C3D, needed for Sports-1M weights) or 'group' (GroupNorm
      after every conv: lets a C3D trained from scratch learn; see C3D).
    feature_norm: layer-normalise the fc7 features before the LSTM. Without it, fc7
      activations of a C3D trained from scratch grow to hundreds within a few hundred steps,
      saturate the LSTM gates and the networks collapse to a constant prediction.
    input_diff: append frame differences to the RGB input (6 input channels to conv1), see
      ``networks.frame_differences``. Not compatible with Sports-1M C3D weights.
    feature_skip: add a linear path from the (normalised) fc7 feature to the logits beside
      the LSTM's (see ``networks._SequenceHead``); False is the paper's head.
    input_norm: how uint8 RGB clips become network input (``training.steps.normalize_clips``, one of ``INPUT_NORMS``):
      'kinetics' (RGB / 255, minus the Kinetics mean, divided by its std) or 'c3d_sports1m'
      (BGR, 0..255 minus the Sports-1M channel means, unscaled: what the Sports-1M C3D
      weights expect, see ``pretrained_c3d``).
    pretrained_c3d: '' or a path to Sports-1M C3D weights that initialise the C3D trunk of both
      networks (the shared trunk with ``shared_trunk``) of a new training run: a PyTorch state
      dict (DavideA/c3d-pytorch's ``c3d.pickle`` layout: conv1..conv5b, fc6, fc7, fc8
      ``.weight``/``.bias``; ``.pickle``/``.pkl``/``.pth``/``.pt``, read with torch, which the
      project does not require) or an ``.npz`` of the same arrays under the same keys, written
      without torch by ``python -m segtube_jax.models.convert --torch c3d.pickle --out
      c3d.npz`` on a machine with torch. fc8 is ignored. A run resuming from its workdir's own
      checkpoint ignores it; with ``init_from`` as well, the trunk is loaded first and
      ``init_from`` then overwrites every parameter it has (see training/trainer.py).
      The weights fix the trunk: width_multiplier 1.0, fc_dim 4096, in_channels 3,
      clip_shape (16, 112, 112), pool5_padding 'torch', conv_norm 'none', input_diff False
      (checked before anything compiles). Their input (models/convert.py has the sources):
      16 frames resized to 128x171 and cropped to 112x112 (dataset.frame_size and clips.resize
      (128, 171), the defaults), BGR, values 0..255 minus the Sports-1M mean (B 90.25,
      G 97.66, R 101.41), not rescaled: set ``input_norm='c3d_sports1m'`` with them.
  """
  cfg = ml_collections.ConfigDict()
  cfg.width_multiplier = 1.0
  cfg.fc_dim = 4096
  cfg.lstm_features = 256
  cfg.lstm_layers = 2
  cfg.dropout_rate = 0.5
  cfg.dtype = "float32"
  cfg.conv_impl = DEFAULT_CONV_IMPL
  cfg.pool5_padding = "torch"
  cfg.clip_shape = (16, 112, 112)
  cfg.in_channels = 3
  cfg.shared_trunk = False
  cfg.feature_norm = True
  cfg.conv_norm = "none"
  cfg.input_diff = False
  cfg.feature_skip = False
  cfg.input_norm = "kinetics"
  cfg.pretrained_c3d = ""
  return cfg


def tiny_model_config() -> ml_collections.ConfigDict:
  """CPU-size variant: conv widths / 8 (8..64), fc 512, LSTM 64, 16x32x32 clips."""
  cfg = model_config()
  cfg.width_multiplier = 0.125
  cfg.fc_dim = 512
  cfg.lstm_features = 64
  cfg.clip_shape = (16, 32, 32)
  return cfg


def segmentation_config() -> ml_collections.ConfigDict:
  """The spatial stage (Sec. 2.2-2.3), ``config.segmentation``; see the inline comments.

  Every value is resolution independent (sizes are fractions of the frame or counts per frame),
  so the same defaults serve DAVIS (854x480), UCF101 (320x240) and synthetic clips.
  """
  c = ml_collections.ConfigDict()
  # Rows (aspect kept) of the pixel-level refinement; its masks are upsampled to full size.
  c.work_height = 240
  # Rows of flow, SLIC and the superpixel graph (<= work_height). SLIC dominates the run time
  # and costs the same at 160 rows as at 240 for the same superpixel count, with equal J.
  c.graph_height = 160
  # Threads of the per-frame steps, SLIC and refinement (spatial/parallel.py; the masks do not
  # depend on it). 0: every core this process may use, or 1 in a pool worker process.
  c.threads = 0

  c.superpixels = ml_collections.ConfigDict()
  c.superpixels.n_segments = 1000  # Per frame.
  c.superpixels.compactness = 10.0
  c.superpixels.max_num_iter = 4  # SLIC converges coarsely in a few iterations; 10 is 2x slower.
  # Temporal neighbours (N_i of Eq. 5) need at least this fraction of a superpixel's flow-warped
  # pixels to land in the other superpixel.
  c.superpixels.min_temporal_overlap = 0.1

  c.flow = ml_collections.ConfigDict()
  # OpenCV DIS preset: ultrafast, fast or medium. "ultrafast" (no variational refinement)
  # makes the flow 2.3x cheaper at the same DAVIS-20 J over seven nuisance transforms (0.755
  # against 0.756), but on the demo's 64x64 videos the detector loses 1.2 mAP@0.5 and 0.005
  # mask IoU with it (docs/spatial.md, "Finer optical flow").
  c.flow.preset = "fast"
  # Finest pyramid level of DIS's patch search (0: work resolution; each level halves). The
  # presets' own 2 searches at 60 rows and only upsamples below: limbs, riders and other thin,
  # fast parts lose their motion (DAVIS-20 mean J 0.738 -> 0.752 at level 1).
  c.flow.finest_scale = 1

  # Divide each frame's exposure and white-balance gain relative to the span (estimated from
  # the flow; spatial/exposure.py) out of the frames before superpixels, saliency, colour models
  # and refinement. DAVIS-20 with a +-30% exposure drift: mean J 0.697 -> 0.742; as stored 0.759
  # either way (GMM seeds 0-3: 0.760 -> 0.758) (docs/spatial.md, "Exposure and white balance").
  c.compensate_exposure = True

  c.saliency = ml_collections.ConfigDict()
  # Width of the border strip whose superpixels seed the background (fraction of min(H, W)).
  c.saliency.border = 0.04
  # Flow residuals below this fraction of the frame height count as noise, not motion.
  c.saliency.motion_noise = 0.002
  # Spans whose typical strongest residual is below this fraction of the frame height have no
  # usable motion cue; their saliency falls back to appearance alone.
  c.saliency.min_motion = 0.004
  # Multiply the saliency by 1 - r, r the correlation of a superpixel's texture with frames
  # t+-k warped by the background's motion, where a path of such superpixels joins it to the
  # border (spatial/background.py): shadows, ground and shore that the flow drags along with
  # the actor move with the background in fact. DAVIS-20 mean J 0.759 -> 0.764, F 0.699 ->
  # 0.705, boat 0.298 -> 0.351 (docs/spatial.md, "Background consistency").
  c.saliency.background_consistency = True
  # Largest frame step k; k grows until the actor moves 4 pixels against the background.
  c.saliency.consistency_max_step = 6
  # Adaptive threshold on the combined saliency: Otsu's threshold within the frame ("otsu") or
  # mean + threshold_k * std ("mean_std"), never below min_threshold times the frame's maximum
  # nor span_threshold times the median frame threshold. Mean + std sits in the background's
  # tail when the actor is a few percent of the frame. So does Otsu's, less far: the floor of
  # 0.4 x max keeps B_o to the actor's core. B_o only seeds the models; the cut grows the
  # foreground back through colour and location, but it keeps what B_o wrongly took in
  # (DAVIS-20 mean J 0.714 -> 0.723, small-actor synthetic IoU 0.758 -> 0.812, vs 0.2).
  c.saliency.threshold_method = "otsu"
  c.saliency.threshold_k = 1.0
  c.saliency.min_threshold = 0.4
  c.saliency.span_threshold = 0.5
  # Hysteresis of B_o: a region above the threshold needs a superpixel with at least this
  # fraction of its frame's maximum saliency (0: plain threshold).
  c.saliency.seed_fraction = 0.5
  # After the cut, foreground regions (connected, per frame) with less saliency mass than this
  # fraction of their frame's strongest region become background (0: keep all). A distractor
  # that shares a colour with the actor gets the colour term's vote, not the saliency.
  c.saliency.region_fraction = 0.5
  # ... except a region within this many radii sqrt(area / pi) of the strongest one: a part of
  # the actor cut off by a thin occluder (a head behind a pole) or loosely joined (a leg).
  # DAVIS mean J 0.752 -> 0.759 over the 20 sequences, higher under all seven nuisance
  # transforms (docs/spatial.md, "Parts next to the actor").
  c.saliency.region_gap = 0.25

  c.gmm = ml_collections.ConfigDict()
  c.gmm.color_components = 5  # Foreground colour GMM.
  # Background colour GMM: the background of a whole video holds many more colours than its
  # actor; with 5 components its density is too flat at any one of them, and the actor's model
  # claims background of a nearby colour (mean J 0.673 -> 0.685 over the 20 DAVIS sequences).
  c.gmm.bg_color_components = 20
  c.gmm.location_components = 3  # Of the whole-span location GMMs (location_model "video").
  # What the colour GMMs are fitted to and evaluated on: "pixels" (sampled from the labelling
  # away from its boundary; a superpixel's evidence is the mean log-likelihood ratio of its
  # pixels) or "superpixels" (their mean Lab colours). Pixels keep a textured region's colours
  # (mean J over the 20 DAVIS sequences and four seeds 0.717 -> 0.723, less spread between seeds).
  c.gmm.color_features = "pixels"
  # Samples per model (pixels or superpixels; superpixels for location GMMs): fitting is O(samples).
  # With 2000 a sequence's J moved with the sample's seed by std 0.013 (up to 0.16 on one
  # sequence) over the 20 DAVIS sequences; with 4000 by 0.0075 (0.06), for +1 ms per frame.
  c.gmm.max_samples = 4000
  c.gmm.max_iter = 15
  c.gmm.min_samples = 8  # Fewer samples than this: the model is replaced by a flat density.
  c.gmm.seed = 0
  # Foreground prior of the colour posterior: odds of B_o's area share raised to this power
  # (0: equal priors, as GrabCut). With the per-frame location model the prior is local, and a
  # global prior below 0.5 starves actors whose colours the background shares.
  c.gmm.prior_power = 0.0
  # Location GMMs of Eq. (6): "frame" gives every frame its own fg / bg location densities
  # (kernel densities of the labelling of frames t-window..t+window, bandwidth a multiple of the
  # actor's radius, see spatial/location.py); "video" fits one pair of GMMs to the centroids of
  # the whole span, which spreads a moving actor's density along its whole path.
  c.gmm.location_model = "frame"
  c.gmm.location_bandwidth = 0.5
  c.gmm.location_window = 2
  # "video" only: location features are (x, y, time_scale * t / (T - 1)); 0 drops time.
  c.gmm.location_time_scale = 0.0

  # Eq. (6): D = -log(beta U_col + (1 - beta) U_loc); U are per-label posteriors.
  c.beta = 0.7
  # Weight of the calibrated saliency probability mixed into the data term's probability.
  # Eq. (6) alone drifts over rounds (fg grows or vanishes); saliency anchors it. 0 gives Eq. (6).
  c.saliency_weight = 0.3

  # Eq. (7) weights: lambda_spatial and lambda_temporal multiply exp(-||c - c'||^2 / sigma^2),
  # with sigma^2 = sigma_scale * mean ||c - c'||^2 over all neighbour pairs (as GrabCut).
  c.lambda_spatial = 1.0
  c.lambda_temporal = 1.0
  c.sigma_scale = 2.0
  # Share of a spatial pair's weight that a motion boundary can take away: the weight is also
  # multiplied by (1 - m) + m exp(-||v - v'||^2 / sigma_v^2), v a superpixel's mean flow and
  # sigma_v^2 = sigma_scale * mean ||v - v'||^2 (spatial/graphcut.py). An actor whose colours
  # the background shares still moves differently from it (DAVIS-20 mean J over GMM seeds
  # 0-3: 0.723 -> 0.738). 0 gives Eq. (7) as printed; spans without usable motion always get 0.
  c.motion_contrast = 0.5

  # Longer spans are segmented in consecutive chunks of this many frames (bounded memory).
  c.max_span_frames = 600
  c.max_rounds = 4  # GMM re-estimation + graph cut rounds (Sec. 2.3).
  c.min_change = 0.002  # Stop when fewer than this fraction of superpixels change label.

  c.refine = ml_collections.ConfigDict()
  c.refine.enabled = True  # Pixel-level cut at work_height to recover sub-superpixel detail.
  # Pixels farther than this (fraction of rows) from the boundary keep their label. About two
  # superpixel widths at the default superpixel count; one is too narrow for a small actor.
  c.refine.band = 0.06
  c.refine.weight = 2.0  # Pairwise weight of the pixel-level contrast term.
  c.refine.color_weight = 0.5  # Share of the colour posterior in the pixel unary.
  # Lightness scale (L units) of the luminance-guided chroma of the contrast term, which undoes
  # 4:2:0 chroma subsampling at edges (refine.guided_chroma); 0 uses the chroma as it is.
  c.refine.chroma_sigma = 10.0
  return c
