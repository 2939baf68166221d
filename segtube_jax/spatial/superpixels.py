"""SLIC superpixels of a frame span and their spatio-temporal neighbourhood graph (Eq. 5).

Every superpixel s_{t,i} of every frame gets one global id, so the whole span is one graph: the
node set V of Eq. (5), the spatial neighbours (superpixels sharing a boundary in frame t) and
the temporal neighbours (superpixels of frame t+1 that the flow-warped pixels of s_{t,i} land in).
"""

import dataclasses
import threading

import cv2
import numpy as np

from segtube_jax.spatial import flow as flow_lib
from segtube_jax.spatial import parallel


@dataclasses.dataclass
class SuperpixelGraph:
  """Superpixels of T frames at work resolution and their neighbourhood N_i of Eq. (5).

  Attributes:
    labels: int32 [T,H,W] global superpixel id of every pixel.
    frame: int32 [N] frame (0..T-1) of every superpixel.
    offsets: int64 [T+1]; superpixels of frame t are ids offsets[t] .. offsets[t+1]-1.
    color: float32 [N,3] mean CIE Lab colour c_{t,i} (L in 0..100).
    centroid: float32 [N,2] mean (x / W, y / H), in [0, 1].
    area: float64 [N] pixel count.
    border: bool [N] whether the superpixel reaches the border strip of its frame.
    spatial_edges: int64 [E,2] pairs (i < j) sharing a boundary.
    temporal_edges: int64 [F,2] pairs (i in frame t, j in frame t+1).
    temporal_overlap: float64 [F] fraction of superpixel i's warped pixels that land in j.
  """

  labels: np.ndarray
  frame: np.ndarray
  offsets: np.ndarray
  color: np.ndarray
  centroid: np.ndarray
  area: np.ndarray
  border: np.ndarray
  spatial_edges: np.ndarray
  temporal_edges: np.ndarray
  temporal_overlap: np.ndarray

  @property
  def num_nodes(self) -> int:
    return int(self.frame.shape[0])

  def frame_mean(self, values: np.ndarray) -> np.ndarray:
    """Area-weighted mean per superpixel of per-pixel ``values`` [T,H,W(,C)] -> [N(,C)]."""
    flat = self.labels.reshape(-1)
    if values.ndim == self.labels.ndim:
      return np.bincount(flat, values.reshape(-1), self.num_nodes) / self.area
    vals = values.reshape(flat.shape[0], -1)
    return (
      np.stack(
        [np.bincount(flat, vals[:, k], self.num_nodes) for k in range(vals.shape[1])], axis=1
      )
      / self.area[:, None]
    )


def lab_frames(frames: np.ndarray) -> np.ndarray:
  """CIE Lab float32 [T,H,W,3] of uint8 RGB frames (L in 0..100, a and b about -128..127)."""
  return np.stack([cv2.cvtColor(f.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab) for f in frames])


def import_in_background() -> threading.Thread:
  """Starts importing scikit-image's SLIC in a daemon thread and returns the thread.

  The import takes about 0.7 s (scipy.cluster, mostly), a tenth of a 50-frame run of the
  command-line tool; frame decoding and optical flow release the GIL and overlap it. A later
  import in the main thread waits for this one (per-module import locks).
  """
  thread = threading.Thread(target=_slic, name="import-skimage", daemon=True)
  thread.start()
  return thread


def _slic():
  """scikit-image's ``slic``, imported on first use."""
  from skimage.segmentation import slic  # pylint: disable=g-import-not-at-top

  return slic


def slic_labels(
  frames: np.ndarray,
  n_segments: int,
  compactness: float,
  max_num_iter: int,
  size: tuple[int, int],
  threads: int = 1,
) -> np.ndarray:
  """SLIC labels [T,rows,cols] (int32, per-frame ids from 0, contiguous) of uint8 RGB frames.

  SLIC runs on the frames as given and the labels are resized by nearest neighbour to
  ``size`` (a no-op when it is the frames' size). The frames must be uint8 RGB:
  scikit-image >= 0.26 rescales float input to [0, 1], which would make SLIC on a float Lab
  image ignore colour. ``threads`` > 1 segments several frames at once (scikit-image's SLIC
  releases the GIL; the labels are the same, 1.8x faster on 2 cores).
  """
  slic = _slic()

  def one(frame: np.ndarray) -> np.ndarray:
    return slic(
      frame,
      n_segments=n_segments,
      compactness=compactness,
      max_num_iter=max_num_iter,
      start_label=0,
      enforce_connectivity=True,
      convert2lab=True,
      channel_axis=-1,
    )

  labels = flow_lib.resize_labels(np.stack(parallel.map_frames(one, frames, threads)), size)
  # Nearest resizing may drop a sliver label; renumber so ids stay contiguous.
  for t in range(labels.shape[0]):
    present = np.bincount(labels[t].reshape(-1)) > 0
    if not present.all():
      labels[t] = (np.cumsum(present) - 1)[labels[t]]
  return labels.astype(np.int32)


def _unique_pairs(
  a: np.ndarray, b: np.ndarray, size_b: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Distinct (a, b) pairs of local ids (b < size_b) and how often each occurs."""
  keys, counts = np.unique(a.astype(np.int64) * size_b + b, return_counts=True)
  return keys // size_b, keys % size_b, counts


def _spatial_edges(labels: np.ndarray, counts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """Global (i < j) pairs of superpixels that touch horizontally or vertically, frame by frame."""
  edges = []
  for t in range(labels.shape[0]):
    lab = labels[t]
    los, his = [], []
    for a, b in ((lab[:, :-1], lab[:, 1:]), (lab[:-1, :], lab[1:, :])):
      diff = a != b
      los.append(np.minimum(a[diff], b[diff]))
      his.append(np.maximum(a[diff], b[diff]))
    n = int(counts[t])
    i, j, _ = _unique_pairs(np.concatenate(los), np.concatenate(his), n)
    edges.append(np.stack([i, j], axis=1) + offsets[t])
  return np.concatenate(edges).astype(np.int64)


def _temporal_edges(
  labels: np.ndarray,
  forward: np.ndarray,
  counts: np.ndarray,
  offsets: np.ndarray,
  area: np.ndarray,
  min_overlap: float,
) -> tuple[np.ndarray, np.ndarray]:
  """Flow-linked global pairs (i in frame t, j in frame t+1) and their overlap fractions."""
  edges, overlaps = [], []
  for t in range(labels.shape[0] - 1):
    source, target = flow_lib.warp_targets(forward[t])
    src = labels[t].reshape(-1)[source]
    dst = labels[t + 1].reshape(-1)[target]
    i, j, n_ij = _unique_pairs(src, dst, int(counts[t + 1]))
    i, j = i + offsets[t], j + offsets[t + 1]
    frac = n_ij / area[i]
    keep = frac >= min_overlap
    edges.append(np.stack([i[keep], j[keep]], axis=1))
    overlaps.append(frac[keep])
  if not edges:
    return np.zeros((0, 2), np.int64), np.zeros((0,), np.float64)
  return np.concatenate(edges).astype(np.int64), np.concatenate(overlaps)


def build_graph(
  labels: np.ndarray,
  lab: np.ndarray,
  forward: np.ndarray,
  border: float,
  min_temporal_overlap: float,
) -> SuperpixelGraph:
  """Builds the superpixel graph of a span.

  Args:
    labels: int [T,H,W] per-frame superpixel ids (contiguous from 0 in every frame).
    lab: float32 [T,H,W,3] Lab frames at the same resolution.
    forward: float32 [T,H,W,2] forward flow (frame t -> t+1).
    border: width of the border strip as a fraction of min(H, W).
    min_temporal_overlap: smallest overlap fraction that makes a temporal neighbour.

  Returns:
    The SuperpixelGraph with global ids.
  """
  t, h, w = labels.shape
  counts = labels.reshape(t, -1).max(axis=1).astype(np.int64) + 1
  offsets = np.concatenate([[0], np.cumsum(counts)])
  glabels = (labels + offsets[:-1, None, None]).astype(np.int32)
  n = int(offsets[-1])
  flat = glabels.reshape(-1)
  area = np.bincount(flat, minlength=n).astype(np.float64)
  frame = np.repeat(np.arange(t, dtype=np.int32), counts)
  lab_flat = lab.reshape(-1, 3)
  color = np.stack([np.bincount(flat, lab_flat[:, k], n) for k in range(3)], axis=1) / area[:, None]
  ys, xs = np.mgrid[0:h, 0:w]
  cx = np.bincount(flat, np.broadcast_to((xs + 0.5) / w, (t, h, w)).reshape(-1), n) / area
  cy = np.bincount(flat, np.broadcast_to((ys + 0.5) / h, (t, h, w)).reshape(-1), n) / area
  b = max(1, int(round(border * min(h, w))))
  strip = np.zeros((h, w), bool)
  strip[:b], strip[-b:], strip[:, :b], strip[:, -b:] = True, True, True, True
  is_border = np.zeros(n, bool)
  is_border[np.unique(glabels[:, strip])] = True
  temporal, overlap = _temporal_edges(labels, forward, counts, offsets, area, min_temporal_overlap)
  return SuperpixelGraph(
    labels=glabels,
    frame=frame,
    offsets=offsets,
    color=color.astype(np.float32),
    centroid=np.stack([cx, cy], axis=1).astype(np.float32),
    area=area,
    border=is_border,
    spatial_edges=_spatial_edges(labels, counts, offsets),
    temporal_edges=temporal,
    temporal_overlap=overlap,
  )
