"""Default configuration of the spatial segmentation stage (Sec. 2.2-2.3).

The project's configs embed :func:`default_config` as ``config.segmentation``. Every value here
was chosen to be resolution independent (sizes are fractions of the frame or counts per frame) so
that the same defaults serve DAVIS (854x480), UCF101 (320x240) and synthetic clips.
"""

import ast

import ml_collections

from segtube_jax.errors import ConfigError


def default_config() -> ml_collections.ConfigDict:
  """Returns the default segmentation config.

  Returns:
    A ConfigDict; see the inline comments for the meaning of each field.
  """
  c = ml_collections.ConfigDict()
  # Rows (aspect kept) of the pixel-level refinement; its masks are upsampled to full size.
  c.work_height = 240
  # Rows of flow, SLIC and the superpixel graph (<= work_height). SLIC dominates the run time
  # and costs the same at 160 rows as at 240 for the same superpixel count, with equal J.
  c.graph_height = 160

  c.superpixels = ml_collections.ConfigDict()
  c.superpixels.n_segments = 1000  # Per frame.
  c.superpixels.compactness = 10.0
  c.superpixels.max_num_iter = 4  # SLIC converges coarsely in a few iterations; 10 is 2x slower.
  # Temporal neighbours (N_i of Eq. 5) need at least this fraction of a superpixel's flow-warped
  # pixels to land in the other superpixel.
  c.superpixels.min_temporal_overlap = 0.1

  c.flow = ml_collections.ConfigDict()
  c.flow.preset = "fast"  # OpenCV DIS preset: ultrafast, fast or medium.

  c.saliency = ml_collections.ConfigDict()
  # Width of the border strip whose superpixels seed the background (fraction of min(H, W)).
  c.saliency.border = 0.04
  # Flow residuals below this fraction of the frame height count as noise, not motion.
  c.saliency.motion_noise = 0.002
  # Spans whose typical strongest residual is below this fraction of the frame height have no
  # usable motion cue; their saliency falls back to appearance alone.
  c.saliency.min_motion = 0.004
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

  c.gmm = ml_collections.ConfigDict()
  c.gmm.color_components = 5  # Foreground colour GMM.
  # Background colour GMM: the background of a whole video holds many more colours than its
  # actor; with 5 components its density is too flat at any one of them, and the actor's model
  # claims background of a nearby colour (mean J 0.673 -> 0.685 over the 20 DAVIS sequences).
  c.gmm.bg_color_components = 20
  c.gmm.location_components = 3  # Of the whole-span location GMMs (location_model "video").
  c.gmm.max_samples = 2000  # Superpixels subsampled per model: fitting is O(samples).
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


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError when a value of ``config`` is impossible.

  Args:
    config: A config shaped like :func:`default_config`.
  """

  def need(cond: bool, what: str) -> None:
    if not cond:
      raise ConfigError(f"segmentation config: expected {what}")

  need(config.work_height >= 16, f"work_height >= 16, got {config.work_height}")
  need(
    8 <= config.graph_height <= config.work_height,
    f"8 <= graph_height <= work_height, got {config.graph_height}",
  )
  need(config.superpixels.n_segments >= 4, "superpixels.n_segments >= 4")
  need(config.superpixels.max_num_iter >= 1, "superpixels.max_num_iter >= 1")
  need(
    config.flow.preset in ("ultrafast", "fast", "medium"),
    f"flow.preset in ultrafast/fast/medium, got {config.flow.preset!r}",
  )
  need(0.0 <= config.beta <= 1.0, f"0 <= beta <= 1, got {config.beta}")
  need(
    0.0 <= config.saliency_weight <= 1.0, f"0 <= saliency_weight <= 1, got {config.saliency_weight}"
  )
  need(
    config.lambda_spatial >= 0 and config.lambda_temporal >= 0,
    "non-negative lambda_spatial and lambda_temporal",
  )
  need(config.sigma_scale > 0, f"sigma_scale > 0, got {config.sigma_scale}")
  need(config.max_span_frames >= 1, f"max_span_frames >= 1, got {config.max_span_frames}")
  need(config.max_rounds >= 1, f"max_rounds >= 1, got {config.max_rounds}")
  need(
    config.gmm.location_model in ("frame", "video"),
    f"gmm.location_model in frame/video, got {config.gmm.location_model!r}",
  )
  need(
    config.gmm.location_bandwidth > 0 and config.gmm.location_window >= 0,
    "gmm.location_bandwidth > 0 and gmm.location_window >= 0",
  )
  need(
    min(config.gmm.color_components, config.gmm.bg_color_components, config.gmm.location_components)
    >= 1,
    "at least one component in every GMM",
  )
  need(
    config.saliency.threshold_method in ("otsu", "mean_std"),
    f"saliency.threshold_method in otsu/mean_std, got {config.saliency.threshold_method!r}",
  )
  need(
    0.0 <= config.saliency.seed_fraction <= 1.0 and 0.0 <= config.saliency.region_fraction <= 1.0,
    "saliency.seed_fraction and saliency.region_fraction in [0, 1]",
  )
  need(
    config.refine.band >= 0 and config.refine.weight >= 0 and config.refine.chroma_sigma >= 0,
    "non-negative refine.band, refine.weight and refine.chroma_sigma",
  )
  need(
    0.0 <= config.refine.color_weight <= 1.0,
    f"0 <= refine.color_weight <= 1, got {config.refine.color_weight}",
  )


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: list[str]
) -> ml_collections.ConfigDict:
  """Applies ``key.path=value`` overrides (values parsed as Python literals) to ``config``."""
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep:
      raise ConfigError(f"--set {item!r}: expected key=value, e.g. refine.enabled=False")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text  # Bare words are strings (flow.preset=medium).
    node = config
    *path, last = key.split(".")
    try:
      for part in path:
        node = node[part]
      if last not in node:
        raise KeyError(last)
      node[last] = value
    except KeyError:
      raise ConfigError(f"--set {item!r}: no config key {key!r}") from None
    except TypeError as e:
      raise ConfigError(f"--set {item!r}: wrong type for {key!r} ({e})") from None
  return config
