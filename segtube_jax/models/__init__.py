"""segtube_jax.models: the cascaded 3D ConvNets + peephole LSTM networks of Sec. 2.1."""

from segtube_jax.models.builders import (
  DTYPES,
  build_classification_network,
  build_model,
  build_proposal_network,
  build_two_head_network,
  input_shape,
)
from segtube_jax.models.c3d import C3D, c3d_pool5_shape, conv_widths
from segtube_jax.models.conv import CONV_IMPLS, DEFAULT_CONV_IMPL, C3DConv, conv3x3x3, max_pool3d
from segtube_jax.models.lstm import PeepholeLSTMCell, StackedPeepholeLSTM
from segtube_jax.models.networks import (
  ClassificationNetwork,
  ClipSequenceNetwork,
  ProposalNetwork,
  TwoHeadNetwork,
)

__all__ = [
  "C3D",
  "C3DConv",
  "DTYPES",
  "CONV_IMPLS",
  "DEFAULT_CONV_IMPL",
  "ClassificationNetwork",
  "ClipSequenceNetwork",
  "PeepholeLSTMCell",
  "ProposalNetwork",
  "StackedPeepholeLSTM",
  "TwoHeadNetwork",
  "build_classification_network",
  "build_model",
  "build_proposal_network",
  "build_two_head_network",
  "c3d_pool5_shape",
  "check_param_shapes",
  "conv3x3x3",
  "conv_widths",
  "convert_torch_c3d",
  "input_shape",
  "insert_c3d_params",
  "load_pretrained_c3d",
  "load_torch_c3d_state_dict",
  "max_pool3d",
]

# The converter's names load on first use, so that ``python -m segtube_jax.models.convert``
# runs its module once (imported here eagerly, runpy would warn and hold two copies).
_CONVERT_NAMES = (
  "check_param_shapes",
  "convert_torch_c3d",
  "insert_c3d_params",
  "load_pretrained_c3d",
  "load_torch_c3d_state_dict",
)


def __getattr__(name):
  if name in _CONVERT_NAMES:
    from segtube_jax.models import convert  # pylint: disable=import-outside-toplevel

    return getattr(convert, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
