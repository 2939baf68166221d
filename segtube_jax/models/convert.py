"""Converts the widely used PyTorch C3D Sports-1M state dict to :class:`C3D` params.

The PyTorch C3D (keys conv1, conv2, conv3a, conv3b, conv4a, conv4b, conv5a, conv5b, fc6,
fc7, fc8; ``.weight``/``.bias``) works in NCTHW: Conv3d weights are [out, in, t, h, w], Linear
weights [out, in], and pool5 (``MaxPool3d(2, 2, padding=(0, 1, 1))``) is flattened in
(C, T, H, W) order. Our C3D is channels-last and flattens pool5 in (T, H, W, C) order, so the
conversion transposes conv kernels to [t, h, w, in, out], transposes fc kernels to [in, out]
and permutes fc6's input axis. fc8 (the Sports-1M classifier) is not part of the trunk and is
dropped. Use the result with ``pool5_padding='torch'`` (the default).

The converter is size-agnostic: it reads channel counts from the arrays and the pool5 grid
from ``clip_shape``.

Files (``load_torch_c3d_state_dict``): an ``.npz`` with the state dict's arrays under the same
keys (``conv1.weight``, ...; no PyTorch needed), or a ``.pickle`` / ``.pth`` / ``.pt`` state dict.
A pickle that holds only NumPy arrays is read without PyTorch (by an unpickler that refuses
anything else); a real PyTorch file (``torch.save``, e.g. DavideA/c3d-pytorch's ``c3d.pickle``)
needs torch. Convert it once where torch is installed::

  python -m segtube_jax.models.convert --torch c3d.pickle --out c3d_sports1m.npz

and train with ``--config.model.pretrained_c3d=c3d_sports1m.npz``.

What the Sports-1M weights expect as input. DavideA/c3d-pytorch's ``c3d.pickle`` was ported
from the Caffe C3D of Tran et al. (facebook/C3D) through a Keras port (its issue #1), so its
input is the Caffe model's:

- 16 consecutive frames, resized to 128x171 (height x width) and cropped to 112x112 (random crop
  in training, centre crop at test), as in the C3D paper. (The port's ``predict.py`` resizes to
  112x200 and takes the central 112 columns instead; the crop size is what the weights fix.)
- Pixel values in [0, 255], not rescaled (no division by 255 or by a standard deviation).
- Channel order BGR (Caffe read frames with OpenCV): conv1's input channels are B, G, R.
- Minus the Sports-1M training mean: Caffe subtracted the mean volume
  ``sport1m_train16_128_mean.binaryproto`` (3x16x128x171); its channel means are B 90.25,
  G 97.66, R 101.41. ``predict.py`` feeds RGB without the mean (its docstring leaves the mean as a
  TODO); the port's issues #1 and #4 report that swapping to BGR and subtracting the Sports-1M
  mean is what the weights need (the bundled tennis clip then scores 0.99994 "tennis").

``model.input_norm='c3d_sports1m'`` (see ``segtube_jax.training.steps.normalize_clips``) feeds
exactly that: uint8 RGB clips reversed to BGR, minus those channel means, unscaled. The default
``'kinetics'`` (RGB, divided by 255, minus the Kinetics mean, divided by its std) does not
match these weights.
"""

from collections.abc import Mapping, Sequence
import os
import pickle
import sys
from typing import Any

import numpy as np

from segtube_jax import io_utils
from segtube_jax.errors import CheckpointError, SegtubeError
from segtube_jax.models.c3d import CONV_NAMES, FC_NAMES, c3d_pool5_shape

_IGNORED_PREFIXES = ("fc8.",)
PICKLE_SUFFIXES = (".pickle", ".pkl", ".pth", ".pt")
STATE_DICT_KEYS = tuple(f"{n}.{p}" for n in CONV_NAMES + FC_NAMES for p in ("weight", "bias"))


def _get(state_dict: Mapping[str, Any], key: str) -> np.ndarray:
  if key not in state_dict:
    raise CheckpointError(f"PyTorch C3D state dict is missing key {key!r}")
  try:
    array = np.asarray(state_dict[key], dtype=np.float32)
  except (TypeError, ValueError) as e:
    raise CheckpointError(f"{key}: not a numeric array ({type(e).__name__}: {e})") from None
  if not np.all(np.isfinite(array)):
    raise CheckpointError(f"{key}: holds NaN or infinite values")
  return array


def _expect_shape(key: str, array: np.ndarray, expected: Sequence[int], hint: str = "") -> None:
  if tuple(array.shape) != tuple(expected):
    raise CheckpointError(
      f"{key}: expected shape {tuple(expected)}, got {tuple(array.shape)}{hint}"
    )


def _torch_shape(param: str, shape: Sequence[int]) -> tuple[int, ...]:
  """The PyTorch-layout shape of one of our C3D kernels / biases."""
  shape = tuple(shape)
  if param == "bias":
    return shape
  if len(shape) == 5:  # [t, h, w, in, out] -> [out, in, t, h, w]
    return (shape[4], shape[3]) + shape[:3]
  return shape[::-1]  # Dense [in, out] -> Linear [out, in].


def _check_layer(
  name: str, layer: Mapping[str, np.ndarray], expected: Mapping[str, Any] | None
) -> None:
  """Compares one converted layer with the target model's, in the state dict's terms."""
  if expected is None:
    return
  if name not in expected:
    raise CheckpointError(
      f"{name}: the target C3D has no such layer (its layers: {sorted(expected)})"
    )
  for param, torch_name in (("kernel", "weight"), ("bias", "bias")):
    want = expected[name].get(param) if isinstance(expected[name], Mapping) else None
    if want is None:
      raise CheckpointError(f"{name}: the target C3D layer has no {param!r}")
    if tuple(layer[param].shape) != tuple(want.shape):
      raise CheckpointError(
        f"{name}.{torch_name}: expected shape {_torch_shape(param, want.shape)} (the model's "
        f"c3d/{name}/{param} {tuple(want.shape)}), got {_torch_shape(param, layer[param].shape)}; "
        "do model.width_multiplier, fc_dim, in_channels, clip_shape and pool5_padding match "
        "the weights (Sports-1M C3D: 1.0, 4096, 3, (16, 112, 112), torch)?"
      )


def convert_torch_c3d(
  state_dict: Mapping[str, Any],
  clip_shape: Sequence[int] = (16, 112, 112),
  pool5_padding: str = "torch",
  expected_params: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
  """PyTorch C3D state dict -> params of :class:`C3D` (the ``c3d`` subtree of a network).

  Args:
    state_dict: key -> numpy (or array-like) weights, PyTorch layout; fc8.* is ignored.
    clip_shape: (T, H, W) of the clips the weights will see; fixes pool5's grid, which
      fc6's input size must equal (16x112x112 -> 1x4x4).
    pool5_padding: pool5 mode of the target C3D (see ``conv.pool5_pad``).
    expected_params: optional param tree (arrays or ``jax.ShapeDtypeStruct``, e.g. from
      ``jax.eval_shape(C3D(...).init, ...)['params']``) whose shapes the result must match;
      every layer is compared as it is converted, so the first mismatch is named by its
      state-dict key (e.g. ``conv1.weight``) with the shape the model needs.

  Returns:
    {'conv1': {'kernel': [3,3,3,Cin,Cout], 'bias': [Cout]}, ..., 'fc7': {...}} as float32.

  Raises:
    CheckpointError: on missing/unexpected keys, non-numeric or non-finite arrays, or shape
      mismatches (key, expected, given).
  """
  _check_state_dict_keys(state_dict, expected_params)
  params, cin = _convert_convs(state_dict, expected_params)
  params.update(_convert_fcs(state_dict, cin, clip_shape, pool5_padding, expected_params))
  if expected_params is not None:
    check_param_shapes(params, expected_params)
  return params


def _check_state_dict_keys(
  state_dict: Mapping[str, Any], expected_params: Mapping[str, Any] | None
) -> None:
  """Raises CheckpointError on a non-mapping, unexpected keys or target layers torch lacks."""
  if not isinstance(state_dict, Mapping):
    raise CheckpointError(
      f"a PyTorch C3D state dict must be a mapping of key -> array, got {type(state_dict).__name__}"
    )
  unexpected = sorted(
    str(k)
    for k in state_dict
    if k not in STATE_DICT_KEYS and not str(k).startswith(_IGNORED_PREFIXES)
  )
  if unexpected:
    raise CheckpointError(f"unexpected keys in PyTorch C3D state dict: {unexpected}")
  if expected_params is not None and set(expected_params) - set(CONV_NAMES + FC_NAMES):
    extra = sorted(set(expected_params) - set(CONV_NAMES + FC_NAMES))
    raise CheckpointError(
      f"the target C3D has layers the PyTorch C3D lacks: {extra} "
      '(model.conv_norm must be "none" for these weights)'
    )


def _convert_convs(
  state_dict: Mapping[str, Any], expected_params: Mapping[str, Any] | None
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
  """Converts conv1..conv5b to Flax layout; returns them and the last conv's output channels."""
  params: dict[str, dict[str, np.ndarray]] = {}
  cin = None
  for name in CONV_NAMES:
    w, b = _get(state_dict, f"{name}.weight"), _get(state_dict, f"{name}.bias")
    if w.ndim != 5 or w.shape[2:] != (3, 3, 3):
      raise CheckpointError(
        f"{name}.weight: expected shape (out, in, 3, 3, 3), got {tuple(w.shape)}"
      )
    if cin is not None:
      _expect_shape(
        f"{name}.weight",
        w,
        (w.shape[0], cin, 3, 3, 3),
        f" (its input channels must equal the previous conv's {cin} outputs)",
      )
    _expect_shape(f"{name}.bias", b, (w.shape[0],))
    params[name] = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 4, 1, 0)), "bias": b}
    _check_layer(name, params[name], expected_params)
    cin = w.shape[0]
  return params, cin


def _convert_fcs(
  state_dict: Mapping[str, Any],
  cin: int,
  clip_shape: Sequence[int],
  pool5_padding: str,
  expected_params: Mapping[str, Any] | None,
) -> dict[str, dict[str, np.ndarray]]:
  """Converts fc6 (whose input must be pool5's cin x T5 x H5 x W5 grid) and fc7 to Flax layout."""
  params: dict[str, dict[str, np.ndarray]] = {}
  t5, h5, w5 = c3d_pool5_shape(clip_shape, pool5_padding)
  fc6_w, fc6_b = _get(state_dict, "fc6.weight"), _get(state_dict, "fc6.bias")
  if fc6_w.ndim != 2:
    raise CheckpointError(f"fc6.weight: expected shape (out, in), got {tuple(fc6_w.shape)}")
  fc_dim = fc6_w.shape[0]
  _expect_shape(
    "fc6.weight",
    fc6_w,
    (fc_dim, cin * t5 * h5 * w5),
    f" (pool5 of {tuple(clip_shape)} clips is {cin}x{t5}x{h5}x{w5})",
  )
  _expect_shape("fc6.bias", fc6_b, (fc_dim,))
  # Input index c*T5*H5*W5 + t*H5*W5 + h*W5 + w  ->  ((t*H5 + h)*W5 + w)*C + c.
  fc6_k = fc6_w.reshape(fc_dim, cin, t5, h5, w5).transpose(2, 3, 4, 1, 0)
  params["fc6"] = {"kernel": np.ascontiguousarray(fc6_k.reshape(-1, fc_dim)), "bias": fc6_b}
  _check_layer("fc6", params["fc6"], expected_params)
  fc7_w, fc7_b = _get(state_dict, "fc7.weight"), _get(state_dict, "fc7.bias")
  if fc7_w.ndim != 2:
    raise CheckpointError(f"fc7.weight: expected shape (out, in), got {tuple(fc7_w.shape)}")
  _expect_shape("fc7.weight", fc7_w, (fc7_w.shape[0], fc_dim))
  _expect_shape("fc7.bias", fc7_b, (fc7_w.shape[0],))
  params["fc7"] = {"kernel": np.ascontiguousarray(fc7_w.T), "bias": fc7_b}
  _check_layer("fc7", params["fc7"], expected_params)
  return params


def check_param_shapes(
  params: Mapping[str, Any], expected: Mapping[str, Any], prefix: str = ""
) -> None:
  """Raises CheckpointError naming the first key whose presence or shape differs."""
  for key in sorted(set(params) | set(expected)):
    path = f"{prefix}{key}"
    if key not in params or key not in expected:
      where = "converted params" if key not in params else "target params"
      raise CheckpointError(f"{path}: missing from the {where}")
    got, want = params[key], expected[key]
    if isinstance(want, Mapping) or isinstance(got, Mapping):
      if not (isinstance(want, Mapping) and isinstance(got, Mapping)):
        raise CheckpointError(f"{path}: one side is a sub-tree, the other an array")
      check_param_shapes(got, want, f"{path}/")
    elif tuple(np.shape(got)) != tuple(want.shape):
      raise CheckpointError(
        f"{path}: expected shape {tuple(want.shape)}, got {tuple(np.shape(got))}"
      )


def insert_c3d_params(
  params: Mapping[str, Any], c3d_params: Mapping[str, Any], key: str = "c3d"
) -> dict[str, Any]:
  """A copy of a network's ``params`` with its ``key`` subtree replaced (shapes checked)."""
  if key not in params:
    raise CheckpointError(f"network params have no {key!r} subtree; keys: {sorted(params)}")
  check_param_shapes(c3d_params, params[key], prefix=f"{key}/")
  out = dict(params)
  out[key] = {n: dict(v) for n, v in c3d_params.items()}
  return out


# --- Reading state dicts -----------------------------------------------------------------------

# What a pickle of NumPy arrays (pickle.dump of a dict of ndarrays, any protocol) refers to.
_NUMPY_PICKLE_GLOBALS = frozenset(
  [(m, "_reconstruct") for m in ("numpy.core.multiarray", "numpy._core.multiarray")]
  + [(m, "scalar") for m in ("numpy.core.multiarray", "numpy._core.multiarray")]
  + [(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")]
  + [
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
  ]
)


class _NeedsTorch(Exception):
  """The pickle refers to something beyond NumPy arrays (e.g. torch storages)."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Unpickles dicts of NumPy arrays and refuses every other global (no code runs)."""

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) in _NUMPY_PICKLE_GLOBALS:
      return super().find_class(module, name)
    raise _NeedsTorch(f"{module}.{name}")

  def persistent_load(self, pid: Any) -> Any:  # torch.save's tensor storages.
    raise _NeedsTorch("a persistent id (a PyTorch tensor storage)")


def _conversion_hint(path: str) -> str:
  stem = os.path.splitext(os.path.basename(path))[0]
  return (
    f"convert it once on a machine with PyTorch: python -m segtube_jax.models.convert "
    f"--torch {path} --out {stem}.npz, and use the .npz (e.g. model.pretrained_c3d)"
  )


def _unwrap(state: Any, path: str) -> dict[str, Any]:
  """A {'state_dict': ...} wrapper and DataParallel 'module.' prefixes removed."""
  if (
    isinstance(state, Mapping)
    and "state_dict" in state
    and isinstance(state["state_dict"], Mapping)
  ):
    state = state["state_dict"]
  if not isinstance(state, Mapping):
    raise CheckpointError(
      f"{path}: expected a state dict (key -> array), got {type(state).__name__}"
    )
  return {str(k).removeprefix("module."): v for k, v in state.items()}


def _load_pickle(path: str) -> dict[str, Any]:
  """A pickled state dict: NumPy arrays without torch, anything torch.save wrote with it."""
  with open(path, "rb") as f:
    head = f.read(4)
  reason = ""
  if head.startswith(b"PK"):
    reason = "a torch.save zip archive"
  else:
    try:
      with open(path, "rb") as f:
        state = _NumpyOnlyUnpickler(f).load()
      if isinstance(state, Mapping):
        out = _unwrap(state, path)
        if all(isinstance(v, np.ndarray) for v in out.values()):
          return out
      reason = f"a pickle of {type(state).__name__}, not of a dict of NumPy arrays"
    except _NeedsTorch as e:
      reason = f"a pickle that refers to {e}"
    except Exception as e:  # pylint: disable=broad-except  (truncated or not a pickle at all)
      reason = f"not a readable pickle of NumPy arrays ({type(e).__name__}: {e})"
  try:
    import torch  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  except ImportError:
    raise CheckpointError(
      f"{path}: {reason}; reading a PyTorch state dict needs PyTorch, which "
      f"is not installed here; {_conversion_hint(path)}"
    ) from None
  try:
    try:
      state = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only.
      state = torch.load(path, map_location="cpu")
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(
      f"{path}: cannot read it with torch.load ({type(e).__name__}: {e})"
    ) from None
  out = _unwrap(state, path)
  return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in out.items()}


def load_torch_c3d_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch C3D state dict from .npz (no torch needed) or .pickle/.pkl/.pth/.pt.

  A pickle holding only NumPy arrays is read without torch (and without running any code from
  the file); a torch.save file needs torch (``torch.load(map_location='cpu',
  weights_only=True)``). A {'state_dict': ...} wrapper and DataParallel 'module.' prefixes are
  unwrapped. Without torch, convert once where it is installed (see the module docstring).

  Raises:
    CheckpointError: naming the file: missing, unreadable, unknown suffix, or a PyTorch file
      without torch installed (with the command that converts it).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f"C3D checkpoint not found: {path}")
  try:
    if path.endswith(".npz"):
      try:
        data = np.load(path, allow_pickle=False)
      except Exception as e:  # pylint: disable=broad-except  (ValueError, BadZipFile, EOFError...)
        raise CheckpointError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
      if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: not an .npz archive (a single {type(data).__name__})")
      with data:
        out = {}
        for key in data.files:
          try:
            out[key] = data[key]
          except Exception as e:  # pylint: disable=broad-except
            raise CheckpointError(
              f"{path}: cannot read array {key!r} ({type(e).__name__}: {e})"
            ) from None
        return out
    if path.endswith(PICKLE_SUFFIXES):
      return _load_pickle(path)
  except OSError as e:
    raise CheckpointError(f"{path}: cannot read ({io_utils.describe_os_error(e)})") from None
  raise CheckpointError(
    f"unknown C3D checkpoint format {path!r}: expected .npz, or a PyTorch "
    f"state dict ({', '.join(PICKLE_SUFFIXES)})"
  )


def load_pretrained_c3d(
  path: str | os.PathLike,
  clip_shape: Sequence[int] = (16, 112, 112),
  pool5_padding: str = "torch",
  expected_params: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
  """Loads and converts a PyTorch C3D checkpoint (.npz, or a pickle/.pth) to C3D params.

  Raises:
    CheckpointError: ``'<path>: <what is wrong>'``, the key named for a missing key or shape.
  """
  state_dict = load_torch_c3d_state_dict(path)
  try:
    return convert_torch_c3d(state_dict, clip_shape, pool5_padding, expected_params)
  except CheckpointError as e:
    raise CheckpointError(f"{os.fspath(path)}: {e}") from None


def write_npz(state_dict: Mapping[str, Any], out: str | os.PathLike) -> None:
  """Writes a state dict's arrays (float32, same keys) to ``out`` (.npz) atomically."""
  arrays = {k: np.asarray(v, dtype=np.float32) for k, v in state_dict.items()}
  with io_utils.atomic_writer(out, "wb", what="converted C3D weights") as f:
    np.savez(f, **arrays)


def convert_file(
  torch_path: str | os.PathLike, out: str | os.PathLike, clip_shape: Sequence[int] = (16, 112, 112)
) -> dict[str, np.ndarray]:
  """The CLI's work: reads a C3D state dict, checks it converts for ``clip_shape``, writes the .npz.

  The .npz keeps the state dict's keys and PyTorch layouts (fc8 included), as float32; it is what
  ``model.pretrained_c3d`` reads without torch.
  """
  if not os.fspath(out).endswith(".npz"):
    raise CheckpointError(f"--out must end in .npz, got {os.fspath(out)!r}")
  state_dict = load_torch_c3d_state_dict(torch_path)
  try:
    convert_torch_c3d(state_dict, clip_shape)
  except CheckpointError as e:
    raise CheckpointError(f"{os.fspath(torch_path)}: {e}") from None
  write_npz(state_dict, out)
  return state_dict


def main(argv: Sequence[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top,import-outside-toplevel

  if len(argv) > 1:
    print(f"error: unexpected arguments {list(argv[1:])}", file=sys.stderr)
    sys.exit(2)
  args = flags.FLAGS
  try:
    clip_shape = tuple(int(s) for s in args.clip_shape)
    if len(clip_shape) != 3:
      raise CheckpointError(
        f"--clip_shape must be 3 integers (frames, height, width), got {args.clip_shape}"
      )
    state_dict = convert_file(args.torch, args.out, clip_shape)
  except (SegtubeError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  total = sum(int(np.prod(np.shape(v))) for v in state_dict.values())
  print(f"wrote {len(state_dict)} arrays ({total:,} values) to {args.out}")


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string(
    "torch",
    None,
    "PyTorch C3D state dict (.pickle/.pkl/.pth/.pt; a torch.save "
    "file needs torch), or an .npz to check.",
  )
  flags.DEFINE_string("out", None, "The .npz to write (same keys, float32).")
  flags.DEFINE_list(
    "clip_shape",
    ["16", "112", "112"],
    "frames,height,width of the clips the "
    "weights will see (fixes fc6's input size; Sports-1M C3D: 16,112,112).",
  )
  flags.mark_flags_as_required(["torch", "out"])
  app.run(main)
