"""Pixel-level refinement of the superpixel segmentation near its boundary.

A superpixel labelling cannot follow an actor boundary that cuts through a superpixel: on DAVIS
the best possible labelling of the default superpixels (1000 per frame at 160 rows) reaches
J 0.91 on blackswan and 0.87 on car-shadow. This step
re-solves Eq. (5) on the pixel grid of each frame, restricted to a band around the superpixel
boundary: the data term mixes the span's colour GMM posterior (evaluated through a lookup table
over quantised RGB) with the blurred superpixel mask; the smoothness term is the same contrast
function as Eq. (7) over 4-connected pixel pairs.

Most video stores chroma at half resolution (4:2:0). At the frame's own resolution a colour
edge is then two pixels wide, and the pixel just outside an object carries half its colour: a
Lab contrast term puts the cut one pixel outside (masks 15-20% too large on 10-pixel actors).
Luminance is stored at full resolution, so the contrast term uses chroma re-estimated under
the guidance of luminance (a 3x3 joint bilateral filter): each pixel takes the chroma of its
neighbours of similar lightness. Dropping chroma altogether fails on edges of equal lightness.
"""

import cv2
import maxflow
import ml_collections
import numpy as np

from segtube_jax.spatial import gmm as gmm_lib
from segtube_jax.spatial import parallel
from segtube_jax.spatial.graphcut import data_term

_FIXED = 1e9  # Terminal capacity that pins a pixel outside the band to its superpixel label.


def color_lookup(models: tuple[gmm_lib.Model, gmm_lib.Model]) -> np.ndarray:
  """U^col_fg (equal priors) for every quantised RGB colour -> float [2^(3 * QUANT_BITS)].

  The pixel-level data term is then a gather (:func:`gmm_lib.quantized_colors`).
  """
  return gmm_lib.logistic(gmm_lib.log_ratio_table(*models))


def _contrast_weights(lab: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
  """Eq. (7) weights to the right and downward neighbour of each pixel, [H,W] each."""
  right = np.zeros(lab.shape[:2], np.float64)
  down = np.zeros(lab.shape[:2], np.float64)
  d_right = np.sum((lab[:, 1:] - lab[:, :-1]) ** 2, axis=-1)
  d_down = np.sum((lab[1:] - lab[:-1]) ** 2, axis=-1)
  sigma2 = 2.0 * max(float(np.concatenate([d_right.ravel(), d_down.ravel()]).mean()), 1e-6)
  right[:, :-1] = weight * np.exp(-d_right / sigma2)
  down[:-1] = weight * np.exp(-d_down / sigma2)
  return right, down


def guided_chroma(lab: np.ndarray, sigma: float) -> np.ndarray:
  """Lab [H,W,3] with a and b replaced by a 3x3 mean weighted by lightness similarity.

  Weights are exp(-(L' - L)^2 / sigma^2) (1 for the pixel itself); L stays as it is. A pixel
  next to an edge whose chroma was blurred across it by 4:2:0 subsampling takes the chroma of
  the neighbours on its own side of the (sharp) luminance edge.
  """
  light = np.ascontiguousarray(lab[..., 0])
  chroma = [np.ascontiguousarray(lab[..., k]) for k in (1, 2)]
  num = [c.copy() for c in chroma]
  den = np.ones_like(light)
  scale = np.float32(-1.0 / (sigma * sigma))
  h, w = light.shape
  # Each of the four offsets serves a pixel pair both ways: half the exponentials of 3x3.
  for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
    a = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
    b = (slice(dy, h), slice(max(0, dx), w + min(0, dx)))
    diff = light[b] - light[a]
    wt = np.exp(scale * diff * diff)
    den[a] += wt
    den[b] += wt
    for c, n in zip(chroma, num):
      n[a] += wt * c[b]
      n[b] += wt * c[a]
  out = lab.copy()
  out[..., 1] = num[0] / den
  out[..., 2] = num[1] / den
  return out


_RIGHT = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]])
_DOWN = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]])


def refine_frame(
  frame: np.ndarray,
  mask: np.ndarray,
  lookup: np.ndarray | None,
  band_px: int,
  weight: float,
  color_weight: float = 0.5,
  chroma_sigma: float = 0.0,
) -> np.ndarray:
  """Pixel-level cut of one frame in a band of ``band_px`` pixels around the mask boundary.

  Args:
    frame: uint8 [H,W,3] RGB.
    mask: bool [H,W] superpixel-level segmentation.
    lookup: Colour posterior table from :func:`color_lookup`, or None (no colour model).
    band_px: Half width of the band; pixels outside keep their label.
    weight: Weight of the pixel contrast term.
    color_weight: Share of the colour posterior in the unary (the rest: blurred mask).
    chroma_sigma: Lightness scale (L units) of :func:`guided_chroma` for the contrast term;
      0 uses the chroma as it is.

  Returns:
    bool [H,W] refined mask.
  """
  if band_px < 1 or not mask.any() or mask.all():
    return mask
  kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
  m8 = mask.astype(np.uint8)
  band = cv2.dilate(m8, kernel) != cv2.erode(m8, kernel)
  # Only the band's bounding box can change: solving there alone keeps the cut small.
  rows, cols = np.flatnonzero(band.any(axis=1)), np.flatnonzero(band.any(axis=0))
  box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
  band, sub, crop = band[box], mask[box], frame[box]
  # Blurred superpixel mask: certain deep inside and outside, 0.5 on the superpixel boundary.
  prior = cv2.GaussianBlur(m8.astype(np.float32), (0, 0), max(band_px / 2.0, 0.5))[box]
  p_col = 0.5 if lookup is None else lookup[gmm_lib.quantized_colors(crop)]
  d_fg, d_bg = data_term(color_weight * p_col + (1.0 - color_weight) * prior)
  d_fg = np.where(band, d_fg, np.where(sub, 0.0, _FIXED))
  d_bg = np.where(band, d_bg, np.where(sub, _FIXED, 0.0))
  lab = cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
  if chroma_sigma > 0:
    lab = guided_chroma(lab, chroma_sigma)
  right, down = _contrast_weights(lab, weight)
  g = maxflow.Graph[float]()
  nodes = g.add_grid_nodes(sub.shape)
  g.add_grid_edges(nodes, weights=right, structure=_RIGHT, symmetric=True)
  g.add_grid_edges(nodes, weights=down, structure=_DOWN, symmetric=True)
  g.add_grid_tedges(nodes, d_bg, d_fg)
  g.maxflow()
  out = mask.copy()
  out[box] = ~g.get_grid_segments(nodes)
  return out


def refine_masks(
  frames: np.ndarray,
  masks: np.ndarray,
  color_models: tuple[gmm_lib.Model, gmm_lib.Model],
  config: ml_collections.ConfigDict,
  threads: int = 1,
) -> np.ndarray:
  """Refines every frame's mask [T,H,W] with :func:`refine_frame`, on ``threads`` threads."""
  if color_models[0] is None or color_models[1] is None:
    return masks  # Without both colour models the pixel data term carries no information.
  lookup = color_lookup(color_models)
  band_px = int(round(config.band * frames.shape[1]))

  def one(frame_and_mask: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    f, m = frame_and_mask
    return refine_frame(
      f, m, lookup, band_px, config.weight, config.color_weight, config.chroma_sigma
    )

  return np.stack(parallel.map_frames(one, zip(frames, masks), threads))
