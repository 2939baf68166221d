"""Foreground / background colour and location GMMs of the data term, Eq. (6).

The colour GMMs are fitted to the Lab colours of pixels sampled from the current labelling, away
from its boundary, and a superpixel's colour evidence is the mean over its pixels of
log p_fg / p_bg (:func:`pixel_color_posterior`): the sum of the pixel-level data terms of Eq. (5)
that the superpixel stands for, per pixel. Fitted to superpixel mean colours instead
(``color_features = "superpixels"``), a model sees a textured region as its average colour,
which neither label may hold (water: the mean of its ripples), and a 2000-sample subset of a
span's ~50k superpixels makes the fit depend on the draw. Over the 20 DAVIS sequences and four
seeds: mean J 0.717 -> 0.723, and a sequence's J varies less between seeds (std 0.015 -> 0.010;
docs/spatial.md). Pixels are evaluated through a table over quantised RGB colours
(:func:`log_ratio_table`), so a round costs a gather, not a GMM evaluation per pixel. Location
models are fitted on superpixel centroids.

U^col and U^loc are used as per-label posteriors, U_fg = pi p_fg / (pi p_fg + (1 - pi) p_bg)
and U_bg = 1 - U_fg, rather than raw densities: a 3-D colour density and a 2-D location density
have unrelated scales, so mixing them with beta only means something once both are
probabilities of the label. The foreground prior pi is set by the caller (segment.py).

scikit-learn is imported when a model is first fitted, not with this module: its import takes
about 1.4 s (scipy.stats), a quarter of the run of a 50-frame sequence, and
:func:`import_in_background` lets the command-line tools overlap it with frame decoding and
optical flow.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import TYPE_CHECKING
import warnings

import cv2
import numpy as np

if TYPE_CHECKING:
  from sklearn.mixture import GaussianMixture

Model = "GaussianMixture | None"  # None: too few samples, a flat density.

QUANT_BITS = 5  # Bits per RGB channel of the colour lookup tables: 32^3 entries.


def import_in_background() -> threading.Thread:
  """Starts importing scikit-learn's GMM in a daemon thread and returns the thread.

  Frame decoding, resizing, optical flow and SLIC release the GIL, so on a second core the
  import costs the run almost nothing. A later import in the main thread waits for this one
  (Python's per-module import locks), so calling it is always safe.
  """
  thread = threading.Thread(target=_sklearn, name="import-sklearn", daemon=True)
  thread.start()
  return thread


def _sklearn():
  """(GaussianMixture, ConvergenceWarning), imported on first use."""
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  from sklearn.mixture import GaussianMixture  # pylint: disable=g-import-not-at-top

  return GaussianMixture, ConvergenceWarning


@dataclasses.dataclass(frozen=True)
class GmmSettings:
  """How to fit one GMM.

  Attributes:
    components: Maximum number of mixture components.
    max_samples: Samples beyond this are subsampled (deterministically).
    max_iter: EM iterations.
    min_samples: Fewer samples than this and no model is fitted (flat density).
    reg_covar: Added to covariance diagonals, in squared feature units.
    seed: Seed of the subsampling and of sklearn's initialisation.
  """

  components: int
  max_samples: int = 4000
  max_iter: int = 30
  min_samples: int = 8
  reg_covar: float = 1e-3
  seed: int = 0


def subsample(n: int, count: int, seed: int) -> np.ndarray:
  """Sorted indices of ``min(n, count)`` of ``n`` items, drawn without replacement, seeded."""
  if n <= count:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, count, replace=False))


def fit_gmm(
  samples: np.ndarray, settings: GmmSettings, init: Model = None, max_components: int | None = None
) -> Model:
  """Fits a full-covariance GMM to ``samples`` [N,D]; None when there are too few samples.

  The number of components shrinks with the sample count so that every component keeps about
  ``min_samples`` samples; a model that cannot be estimated is reported as None, which
  :func:`label_posterior` treats as a flat density (no evidence either way).

  Args:
    samples: [N,D] feature vectors.
    settings: How to fit.
    init: The previous round's model; when it has the same number of components EM starts
      from it, which needs a few iterations instead of a k-means++ start and a full EM run.
    max_components: A further bound on the components (pixel samples of a few superpixels
      hold only a few independent colours).
  """
  samples = np.asarray(samples, np.float64)
  n = samples.shape[0]
  if n < max(settings.min_samples, 2):
    return None
  if n > settings.max_samples:
    samples = samples[subsample(n, settings.max_samples, settings.seed)]
    n = settings.max_samples
  # Distinct rows bound the components: k-means++ cannot seed more clusters than points.
  distinct = np.unique(samples, axis=0).shape[0]
  k = max(1, min(settings.components, n // settings.min_samples, distinct))
  if max_components is not None:
    k = max(1, min(k, max_components))
  warm = {}
  if init is not None and init.n_components == k and init.means_.shape[1] == samples.shape[1]:
    warm = dict(
      weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_
    )
  gaussian_mixture, convergence_warning = _sklearn()
  gmm = gaussian_mixture(
    n_components=k,
    covariance_type="full",
    max_iter=settings.max_iter,
    reg_covar=settings.reg_covar,
    init_params="k-means++",
    random_state=settings.seed,
    **warm,
  )
  with warnings.catch_warnings():
    # A few EM iterations are enough for a data term; unconverged fits are expected.
    warnings.simplefilter("ignore", convergence_warning)
    gmm.fit(samples)
  return gmm


def label_posterior(fg: Model, bg: Model, samples: np.ndarray, prior: float = 0.5) -> np.ndarray:
  """U_fg = pi p_fg / (pi p_fg + (1 - pi) p_bg) of each sample [N,D] -> [N].

  Args:
    fg: Foreground model, or None (flat).
    bg: Background model, or None (flat).
    samples: [N,D] features.
    prior: pi, the foreground prior.

  Returns:
    The posteriors; 0.5 everywhere when a model is missing (too few samples): no evidence
    either way, so the cut rests on the other terms rather than on the prior alone.
  """
  if fg is None or bg is None:
    return np.full(samples.shape[0], 0.5)
  diff = log_density(fg, samples) - log_density(bg, samples)
  return logistic(diff + _prior_log_odds(prior))


def _prior_log_odds(prior: float) -> float:
  """log(pi / (1 - pi)), with pi kept within [1e-3, 1 - 1e-3]."""
  prior = min(max(prior, 1e-3), 1.0 - 1e-3)
  return float(np.log(prior / (1.0 - prior)))


def logistic(log_odds: np.ndarray) -> np.ndarray:
  """Posterior 1 / (1 + exp(-x)) of log-odds x, clipped to +-50 to keep exp finite."""
  return 1.0 / (1.0 + np.exp(-np.clip(log_odds, -50.0, 50.0)))


def log_density(model: GaussianMixture, samples: np.ndarray) -> np.ndarray:
  """log p(x) of a full-covariance GMM for each sample [N,D] -> float64 [N].

  The same as ``model.score_samples`` to ~1e-5, in float32 and with all components in one
  matrix product: 2.5x faster, and the data term evaluates both models on every superpixel of
  the span in every round.
  """
  x = np.asarray(samples, np.float32)
  chol = model.precisions_cholesky_.astype(np.float32)  # [K,D,D]
  k, d, _ = chol.shape
  y = (x @ chol.transpose(1, 0, 2).reshape(d, k * d)).reshape(-1, k, d)
  y -= np.einsum("kd,kde->ke", model.means_.astype(np.float32), chol)[None]
  y *= y
  log_det = np.sum(np.log(np.diagonal(model.precisions_cholesky_, axis1=1, axis2=2)), axis=1)
  const = (log_det + np.log(model.weights_) - 0.5 * d * np.log(2 * np.pi)).astype(np.float32)
  log_prob = const - 0.5 * y.sum(axis=2)
  peak = log_prob.max(axis=1, keepdims=True)
  log_prob -= peak
  np.exp(log_prob, out=log_prob)
  return (peak[:, 0] + np.log(log_prob.sum(axis=1))).astype(np.float64)


def fit_label_models(
  features: np.ndarray,
  labels: np.ndarray,
  settings: GmmSettings,
  init: tuple[Model, Model] = (None, None),
) -> tuple[Model, Model]:
  """Fits the foreground (labels True) and background GMMs of ``features`` [N,D].

  Args:
    features: [N,D] features of all superpixels.
    labels: bool [N] current segmentation.
    settings: How to fit.
    init: Previous (fg, bg) models to warm-start EM from.
  """
  return (
    fit_gmm(features[labels], settings, init[0]),
    fit_gmm(features[~labels], settings, init[1]),
  )


def quantized_colors(frames: np.ndarray) -> np.ndarray:
  """Index of each pixel's RGB colour in the tables of :func:`log_ratio_table` -> uint16 [...]."""
  q = (np.asarray(frames) >> (8 - QUANT_BITS)).astype(np.uint16)
  return (q[..., 0] << (2 * QUANT_BITS)) | (q[..., 1] << QUANT_BITS) | q[..., 2]


@functools.cache
def _table_lab() -> np.ndarray:
  """Lab colour of the centre of every quantised RGB cell -> float32 [2^(3 * QUANT_BITS), 3]."""
  levels = 1 << QUANT_BITS
  step = 256 // levels
  centres = (np.arange(levels) * step + step // 2).astype(np.float32) / 255.0
  rgb = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 1, 3)
  lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3)
  lab.flags.writeable = False
  return lab


def log_ratio_table(fg: Model, bg: Model) -> np.ndarray:
  """log p_fg(c) - log p_bg(c) for every quantised RGB colour c -> float64 [2^(3 * QUANT_BITS)].

  Zero (no evidence) when either model is missing. Evaluating the GMMs once per table entry
  makes a per-pixel colour term a gather: 32k evaluations instead of one per pixel.
  """
  lab = _table_lab()
  if fg is None or bg is None:
    return np.zeros(lab.shape[0])
  return log_density(fg, lab) - log_density(bg, lab)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """CIE Lab float64 [N,3] of uint8 RGB colours [N,3] (L in 0..100)."""
  rgb = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
  return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)


def fit_pixel_models(
  pixels: np.ndarray,
  segments: np.ndarray,
  labels: np.ndarray,
  fg: GmmSettings,
  bg: GmmSettings,
  init: tuple[Model, Model] = (None, None),
) -> tuple[Model, Model]:
  """Colour GMMs of the foreground and background pixels of a superpixel labelling.

  Pixels next to the other label are left out when enough remain: they carry both sides'
  colours (anti-aliasing, and chroma stored at half resolution), and a model fitted to them
  claims the colours in between.

  Args:
    pixels: uint8 RGB [T*h*w,3] of the span's pixels at the superpixels' resolution.
    segments: int [T,h,w] superpixel of each pixel.
    labels: bool [N] current labelling of the superpixels.
    fg: How to fit the foreground model (``max_samples`` pixels are sampled).
    bg: How to fit the background model.
    init: Previous (fg, bg) models to warm-start EM from.

  Returns:
    (fg, bg) models. A side with fewer than ``min_samples`` superpixels gets None (a flat
    density), as a superpixel-level model would: its pixels are too few independent colours.
  """
  on_fg = labels[segments].astype(np.uint8)
  kernel = np.ones((3, 3), np.uint8)
  interior = np.stack([cv2.erode(f, kernel) == cv2.dilate(f, kernel) for f in on_fg]).reshape(-1)
  on_fg = on_fg.reshape(-1).astype(bool)
  out = []
  for side, settings, warm in ((True, fg, init[0]), (False, bg, init[1])):
    regions = int(np.count_nonzero(labels == side))
    if regions < max(settings.min_samples, 2):
      out.append(None)
      continue
    chosen = on_fg == side
    if np.count_nonzero(chosen & interior) >= settings.min_samples:
      chosen &= interior
    where = np.flatnonzero(chosen)
    where = where[subsample(where.size, settings.max_samples, settings.seed)]
    out.append(fit_gmm(rgb_to_lab(pixels[where]), settings, warm, regions // settings.min_samples))
  return out[0], out[1]


def pixel_color_posterior(
  models: tuple[Model, Model],
  colors: np.ndarray,
  segment: np.ndarray,
  area: np.ndarray,
  prior: float = 0.5,
) -> np.ndarray:
  """U^col_fg of every superpixel from the mean log-likelihood ratio of its pixels -> [N].

  Args:
    models: (fg, bg) colour GMMs; a missing one gives 0.5 everywhere (no evidence).
    colors: uint16 [P] quantised colour of each pixel (:func:`quantized_colors`).
    segment: int [P] superpixel of each pixel.
    area: [N] pixels per superpixel.
    prior: pi, the foreground prior.
  """
  if models[0] is None or models[1] is None:
    return np.full(area.shape[0], 0.5)
  ratio = log_ratio_table(*models)[colors]
  mean = np.bincount(segment, ratio, area.shape[0]) / np.maximum(area, 1)
  return logistic(mean + _prior_log_odds(prior))
