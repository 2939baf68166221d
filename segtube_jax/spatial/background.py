"""Background consistency: whether what a superpixel shows moves with the background.

The motion cue (spatial/saliency.py) compares each superpixel's mean DIS flow with an affine
model of the border's flow. DIS's variational smoothing carries an actor's motion into what is
attached to it: its shadow on the ground, the ground between its legs or wheels, a strip of
shore behind a boat. Measured on DAVIS (docs/spatial.md, "Background consistency"), the median
flow residual under car-turn's car, in its shadow, is 22.7 pixels against 25.7 on the car and
0.6 on the background. The texture seen there is still the ground's, and it does move with the
ground. That can be tested without any flow: warp frame t+k onto frame t with the background's
affine motion and correlate small patches of the two. Where the background's motion explains
what a pixel shows, the correlation is high; on the actor, which moves otherwise, it is not.

The test compares texture, not brightness: both frames are band-passed (a difference of
Gaussians) first, so a shadow that darkens the ground, an exposure change or smooth shading
(which correlates with itself after any small shift) do not count, and the normalised
cross-correlation has a variance floor, so flat patches (sky, a car's paint) give no evidence
either way. The frame step k is chosen per span so that the actor's typical motion relative
to the background (the motion cue's scale) moves it by at least ``MIN_SHIFT`` pixels: a slow
actor correlates with itself after a one-frame step.

Only what is connected to the background counts. A superpixel's c is its mean correlation over
both directions (t+k and t-k), and its evidence is the widest path to the frame border through
superpixels at least as consistent (:func:`border_connected`). A shadow lies on ground that
reaches the border, and so does the floor between a dancer's legs. A see-through part of the
actor does not: a sail's transparent panel or a car's window shows the background, moving with
it, but the actor encloses it, and its silhouette counts it as the actor's. The saliency is
multiplied by 1 - that evidence.
"""

import math

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from segtube_jax.spatial import parallel
from segtube_jax.spatial.saliency import SuperpixelFlow, background_models
from segtube_jax.spatial.superpixels import SuperpixelGraph

PATCH_RADIUS = 3  # Correlation window (2r+1)^2 pixels at work resolution.
TEXTURE_SIGMA = 1.5  # Band-pass: frame minus its Gaussian blur of this sigma (pixels).
TEXTURE_FLOOR = 1.0  # Variance floor of a window's band-passed grey levels (squared levels).
MIN_SHIFT = 4.0  # Pixels the actor should move against the background over the frame step.
LEVELS = 20  # Resolution of the widest-path evidence in border_connected.


def frame_step(scale: float, max_step: int) -> int:
  """Frames k between the correlated frames: actor motion ``scale`` (pixels/frame) times k
  reaches ``MIN_SHIFT``, within [1, ``max_step``]."""
  if scale <= 0:
    return max_step
  return int(min(max(math.ceil(MIN_SHIFT / scale), 1), max_step))


def _position_map(model: np.ndarray, work_size: tuple[int, int], graph_size: tuple[int, int]):
  """3x3 map of work-resolution positions p -> p + the background model's displacement at p."""
  (h, w), (gh, gw) = work_size, graph_size
  normalise = np.diag([1.0 / w, 1.0 / h, 1.0])
  displacement = np.diag([w / gw, h / gh]) @ model.T @ normalise  # [2,3]
  out = np.eye(3)
  out[:2] += displacement
  return out


def band_pass(gray: np.ndarray) -> np.ndarray:
  """float32 frame minus its Gaussian blur (``TEXTURE_SIGMA``): texture without shading."""
  gray = gray.astype(np.float32)
  return gray - cv2.GaussianBlur(gray, (0, 0), TEXTURE_SIGMA)


def patch_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Normalised cross-correlation of the (2r+1)^2 windows of a and b at every pixel -> [H,W].

  Each window's variance is floored at ``TEXTURE_FLOOR``, so flat windows give about 0.
  """
  k = (2 * PATCH_RADIUS + 1,) * 2
  mean_a, mean_b = cv2.blur(a, k), cv2.blur(b, k)
  var_a = cv2.blur(a * a, k) - mean_a * mean_a
  var_b = cv2.blur(b * b, k) - mean_b * mean_b
  cov = cv2.blur(a * b, k) - mean_a * mean_b
  return cov / np.sqrt(np.maximum(var_a, TEXTURE_FLOOR) * np.maximum(var_b, TEXTURE_FLOOR))


def background_consistency(
  graph: SuperpixelGraph,
  flow: SuperpixelFlow,
  frames: np.ndarray,
  scale: float,
  max_step: int,
  threads: int = 1,
) -> tuple[np.ndarray, int]:
  """Mean patch correlation with the background-warped frames t+-k, per superpixel -> [N].

  Args:
    graph: Superpixels of the span (at the graph's resolution).
    flow: Their mean flows; the border's give the per-frame background models.
    frames: uint8 RGB [T,H,W,3] at work resolution, where the texture is compared.
    scale: The actor's typical motion against the background, pixels per frame at the graph's
      resolution (:func:`segtube_jax.spatial.saliency.motion_scale`).
    max_step: Largest frame step k.
    threads: Frames computed at once.

  Returns:
    (correlation in [-1, 1] per superpixel, 0 where neither neighbour at distance k exists or
    the warp leaves the frame; the step k used).
  """
  t_count, h, w = frames.shape[:3]
  graph_size = graph.labels.shape[1:]
  k = frame_step(scale * h / graph_size[0], max_step)
  models = {1: background_models(graph, flow.forward), -1: background_models(graph, flow.backward)}
  texture = parallel.map_frames(
    lambda f: band_pass(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)), frames, threads
  )
  ones = np.ones((h, w), np.float32)
  window = np.ones((2 * PATCH_RADIUS + 1,) * 2, np.uint8)

  def one(t: int) -> np.ndarray:
    total = np.zeros((h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    for step in (1, -1):
      target = t + step * k
      chain = [models[step][t + step * j] for j in range(k)] if 0 <= target < t_count else []
      if not chain or any(m is None for m in chain):
        continue
      position = np.eye(3)
      for model in chain:  # Compose p -> p + d_t(p), then d_{t+1}, ... up to frame t+-k.
        position = _position_map(model, (h, w), graph_size) @ position
      flags = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
      warped = cv2.warpAffine(texture[target], position[:2], (w, h), flags=flags)
      inside = cv2.warpAffine(ones, position[:2], (w, h), flags=cv2.WARP_INVERSE_MAP)
      inside = cv2.erode((inside > 0.999).astype(np.uint8), window).astype(np.float32)
      total += patch_correlation(texture[t], warped) * inside
      count += inside
    mean = np.where(count > 0, total / np.maximum(count, 1.0), 0.0).astype(np.float32)
    return cv2.resize(mean, graph_size[::-1], interpolation=cv2.INTER_AREA)

  per_pixel = np.stack(parallel.map_frames(one, range(t_count), threads))
  return graph.frame_mean(per_pixel), k


def border_connected(graph: SuperpixelGraph, consistency: np.ndarray) -> np.ndarray:
  """Widest-path consistency from the frame border, per superpixel -> [N] in [0, 1].

  The largest level l (in steps of 1 / ``LEVELS``) such that the superpixel is joined to a
  border superpixel of its frame through spatial neighbours that all have consistency >= l;
  0 where no such path exists. A region of background texture enclosed by the actor (seen
  through it) keeps 0.
  """
  n = graph.num_nodes
  edges = graph.spatial_edges
  c = np.clip(consistency, 0.0, 1.0)
  out = np.zeros(n)
  for level in np.arange(1, LEVELS + 1) / LEVELS:
    on = c >= level - 1e-9
    if not (on & graph.border).any():
      break  # Higher levels reach nothing either.
    kept = edges[on[edges[:, 0]] & on[edges[:, 1]]]
    adjacency = csr_matrix((np.ones(kept.shape[0]), (kept[:, 0], kept[:, 1])), shape=(n, n))
    component = connected_components(adjacency, directed=False)[1]
    touches = np.zeros(component.max() + 1, bool)
    touches[component[on & graph.border]] = True
    out[on & touches[component]] = level
  return out
