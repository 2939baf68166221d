"""Per-frame location model of the data term, Eq. (6): where in frame t the actor is.

A location GMM pooled over the whole span places a moving actor's foreground density along its
entire path, so anything of the actor's colours anywhere on that path looks like the actor.
Here each frame has its own location models: the foreground density is a Gaussian kernel
density (a mixture with one component per foreground pixel of frames t-w..t+w of the current
labelling), the background density the same over background pixels, both with a bandwidth that
scales with the actor's size. Their posterior (equal priors) is U^loc of Eq. (6).
"""

import cv2
import numpy as np

from segtube_jax.spatial.superpixels import SuperpixelGraph

_COARSE_ROWS = 40  # Densities are smooth: evaluate them on a grid of about this many rows.


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
  return cv2.GaussianBlur(image, (0, 0), sigmaX=max(sigma, 0.5), borderType=cv2.BORDER_REFLECT)


def frame_location_posterior(graph: SuperpixelGraph, labels: np.ndarray, bandwidth: float,
                             window: int) -> np.ndarray:
  """U^loc_fg of every superpixel from its frame's (and neighbours') labelling -> [N].

  Args:
    graph: Superpixels of the span.
    labels: bool [N] current labelling.
    bandwidth: kernel width as a multiple of the actor's radius sqrt(area / pi).
    window: frames pooled on each side of t.

  Returns:
    Posteriors in [0, 1]; 0.5 (no evidence) in frames whose window holds no foreground.
  """
  t, h, w = graph.labels.shape
  fg = labels[graph.labels].astype(np.float32)
  factor = max(1, h // _COARSE_ROWS)
  ch, cw = max(1, h // factor), max(1, w // factor)
  coarse = np.stack([cv2.resize(f, (cw, ch), interpolation=cv2.INTER_AREA) for f in fg])
  csum = np.concatenate([np.zeros((1, ch, cw), np.float32), np.cumsum(coarse, axis=0)])
  out = np.empty((t, h, w), np.float32)
  for i in range(t):
    lo, hi = max(0, i - window), min(t, i + window + 1)
    pooled = (csum[hi] - csum[lo]) / (hi - lo)
    area = float(pooled.sum())
    if area <= 1e-3:
      out[i] = 0.0  # No foreground near this frame: the fg density is zero here.
      continue
    sigma = bandwidth * np.sqrt(area / np.pi)
    bg_area = max(pooled.size - area, 1e-3)
    p_fg = _blur(pooled, sigma) / area
    p_bg = _blur(1.0 - pooled, sigma) / bg_area
    post = p_fg / np.maximum(p_fg + p_bg, 1e-12)
    out[i] = cv2.resize(post, (w, h), interpolation=cv2.INTER_LINEAR)
  return graph.frame_mean(out)
