"""Writing outputs safely: atomic files, appends that never leave a torn line, writable-folder checks.

Every result file is written under a temporary name in its own folder (``.<name>.<random>.tmp``)
and renamed into place with ``os.replace``, so an interrupted write (a kill, a full disk) never
leaves a partial file under the final name and never clobbers a result that was already there;
on any error the temporary file is removed. Failures of the file system (permissions, a full
disk, a read-only mount, a file where a folder should be) become :class:`OutputError`, which
names the path and the cause and is both a ``SegtubeError`` (one-line CLI message) and an
``OSError`` with the original ``errno``.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import errno
import io
import json
import os
import pathlib
import tempfile
from typing import IO, Any

import numpy as np

from segtube_jax.errors import OutputError

PathLike = str | os.PathLike
FILE_MODE = 0o644  # mkstemp makes 0600; results and reports are meant to be shared.


def describe_os_error(e: OSError) -> str:
  """``No space left on device (ENOSPC)``: the cause of ``e`` without its file name."""
  text = e.strerror or str(e) or type(e).__name__
  name = errno.errorcode.get(e.errno) if isinstance(e.errno, int) else None
  return f"{text} ({name})" if name else text


def output_error(path: PathLike, e: OSError, what: str = "file") -> OutputError:
  """An :class:`OutputError` for a failed write of ``path`` (``what``: "metrics file", ...)."""
  if isinstance(e, OutputError):
    return e
  err = OutputError(f"{path}: cannot write {what}: {describe_os_error(e)}")
  err.errno = e.errno
  return err


def ensure_writable_dir(path: PathLike, what: str = "output folder") -> pathlib.Path:
  """Creates folder ``path`` if needed and checks that a file can be created in it.

  Call it before long work whose results go there, so a bad folder fails at once.

  Raises:
    OutputError: ``path`` is a file, or it or a parent cannot be created or written.
  """
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise OutputError(f"{what} {path} is a file, not a folder")
  try:
    path.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.", suffix=".tmp")
    os.close(fd)
    os.unlink(probe)
  except OSError as e:
    err = OutputError(f"{what} {path} is not writable: {describe_os_error(e)}")
    err.errno = e.errno
    raise err from None
  return path


@contextlib.contextmanager
def atomic_writer(
  path: PathLike, mode: str = "w", *, fsync: bool = True, what: str = "file"
) -> Iterator[IO]:
  """Opens a temporary file next to ``path``; on a clean exit, renames it to ``path``.

  Args:
    path: the final file; its folder is created.
    mode: ``"w"`` (UTF-8 text) or ``"wb"``.
    fsync: flush the data to disk before the rename (survives a power cut, not only a kill);
      worth skipping only for many small files that are cheap to regenerate.
    what: what the file is, for the error message.

  Raises:
    OutputError: the folder or the file cannot be written; ``path`` is then unchanged and no
      temporary file is left. Exceptions raised by the caller's block pass through unchanged
      (the temporary file is removed as well).
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_writer: mode must be 'w' or 'wb', got {mode!r}")
  path = pathlib.Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  except OSError as e:
    raise output_error(path, e, what) from e
  try:
    with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
      yield f
      f.flush()
      if fsync:
        os.fsync(f.fileno())
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    if isinstance(e, OSError):
      raise output_error(path, e, what) from e
    raise


def write_text_atomic(path: PathLike, text: str, *, fsync: bool = True, what: str = "file") -> None:
  """Writes ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_writer`."""
  with atomic_writer(path, "w", fsync=fsync, what=what) as f:
    f.write(text)


def write_bytes_atomic(
  path: PathLike, data: bytes, *, fsync: bool = True, what: str = "file"
) -> None:
  """Writes ``data`` to ``path`` atomically; see :func:`atomic_writer`."""
  with atomic_writer(path, "wb", fsync=fsync, what=what) as f:
    f.write(data)


def write_json_atomic(path: PathLike, data: Any, *, what: str = "JSON file") -> None:
  """Writes ``data`` as indented JSON to ``path`` atomically (fsynced); see :func:`atomic_writer`.

  ``data`` is encoded before anything is created, so a value JSON cannot hold raises
  ``TypeError`` and leaves no file behind.
  """
  write_text_atomic(path, json.dumps(data, indent=1) + "\n", what=what)


def write_png_atomic(
  path: PathLike, image: np.ndarray, *, fsync: bool = False, what: str = "PNG image"
) -> None:
  """Writes a uint8 ``[H, W]`` or ``[H, W, 3]`` image as a PNG, atomically.

  Not fsynced by default: masks come by the hundred and a kill cannot tear them anyway (the
  rename is atomic); pass ``fsync=True`` for files that must survive a power cut.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel

  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
  write_bytes_atomic(path, buffer.getvalue(), fsync=fsync, what=what)


def append_text(path: PathLike, text: str, *, what: str = "log file") -> None:
  """Appends ``text`` (whole lines) to ``path`` in one write; a failed write is rolled back.

  For logs such as ``metrics.jsonl``: a full disk cannot leave half a line that would corrupt
  the lines appended after it.

  Raises:
    OutputError: the file cannot be written; it is left as it was.
  """
  data = text.encode("utf-8")
  try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
      size = os.fstat(fd).st_size
      try:
        written = os.write(fd, data)
        if written != len(data):
          raise OSError(errno.ENOSPC, f"wrote {written} of {len(data)} bytes")
      except OSError:
        with contextlib.suppress(OSError):
          os.ftruncate(fd, size)
        raise
    finally:
      os.close(fd)
  except OSError as e:
    raise output_error(path, e, what) from e
