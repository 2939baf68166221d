"""Default (paper) config: THUMOS14-size networks and the paper's method; a base for the others.

Run: python train.py --config configs/default.py --workdir runs/thumos14 --config.dataset.root=DATA
Expected time and result: see configs/thumos14.py (this file is that config without a dataset).

The paper's method (Sec. 2.1-2.3): the networks train on saliency-aware clips made from the
initial segmentation B_o of every frame (clips.mask_source='saliency', computed once by
train.py into a cache beside the packed dataset: a preprocessing pass of hours on THUMOS14, see
segtube_jax/training/saliency_cache.py); one class k' per video and Eq. (3) conditioned on it
(detector.class_assignment='paper'); gamma 0.6; the original C3D + 2 x 256 peephole LSTM
networks (no feature_norm, no conv_norm, no input_diff, no feature_skip), their C3D trunks
starting from the Sports-1M weights (model.pretrained_c3d) and fed the input those weights
expect (model.input_norm='c3d_sports1m': frames at 128x171, 112x112 crops, BGR, 0..255 minus
the Sports-1M channel means; see segtube_jax/models/convert.py).

The Sports-1M weights are not shipped: get DavideA/c3d-pytorch's c3d.pickle and convert it once
on a machine with PyTorch (python -m segtube_jax.models.convert --torch c3d.pickle --out
pretrained/c3d_sports1m.npz), or point --config.model.pretrained_c3d at your copy; train.py
stops with an error naming the path if it is missing. --config.model.pretrained_c3d='' trains
the trunk from scratch (which, on the synthetic data, did not learn without the demo's
departures).

Departures, each a choice the paper leaves open or an engineering one:
- clips.saliency_mode='blend_mean', background_weight 0.25: the paper does not say how the
  background of a saliency-aware clip is attenuated; blending toward the frame's mean colour
  keeps the contrast statistics of natural frames.
- The spatial stage adds a saliency term and a pixel-level refinement to Eqs. (5)-(7) and uses
  per-frame location models (docs/spatial.md has the measurements behind each).
- dataset.encoding='jpeg': packed frames decode several times faster than PNG.
"""

from segtube_jax import schema


def get_config():
  c = schema.experiment_config()
  # Real video frames at 128x171: JPEG chunks decode several times faster than PNG, which the
  # input pipeline needs to keep up with an accelerator (docs/scaling.md "On an accelerator").
  c.dataset.encoding = "jpeg"
  c.clips.mask_source = "saliency"
  c.detector.class_assignment = "paper"
  c.model.feature_norm = False  # The LSTM reads fc7 as C3D computes it.
  c.model.pretrained_c3d = "pretrained/c3d_sports1m.npz"  # Relative to the working directory.
  c.model.input_norm = "c3d_sports1m"  # What the Sports-1M weights were trained on.
  return c
