"""Runs a command-line tool on absl flags held in a private FlagValues (the tools' shared CLI).

A tool defines its flags in a function of a ``flags.FlagValues`` and its work in a function of
the parsed values; :func:`run_command` parses ``argv`` into a fresh FlagValues each call (so a
tool imported as a library defines no global flag, and tests can run it many times in one
process), prints the module docstring and the flags for ``--help``, and turns a bad flag or a
:class:`~segtube_jax.errors.SegtubeError` into one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
import logging
import os
import sys

from absl import flags
import ml_collections

from segtube_jax.errors import ConfigError, SegtubeError

HELP_FLAGS = ("-h", "-?", "--help", "-help", "--helpshort", "--helpfull")
# This project's sources: the package and the entry scripts beside it (train.py, evaluate.py).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_PROJECT_DIR = os.path.dirname(_PACKAGE_DIR)
flags.disclaim_key_flags()  # Flags defined through this module belong to the calling tool.


class FloatsParser(flags.ArgumentParser):
  """Parses a comma-separated list of exactly ``count`` numbers into a tuple of floats."""

  def __init__(self, count: int, metavar: str):
    self.count = count
    self.metavar = metavar

  def parse(self, argument):
    if isinstance(argument, str):
      items = [s.strip() for s in argument.split(",")]
    else:
      items = list(argument)
    try:
      values = tuple(float(x) for x in items)
    except (TypeError, ValueError):
      values = None
    if values is None or len(values) != self.count:
      raise ValueError(
        f"expected {self.count} comma-separated numbers {self.metavar}, got {argument!r}"
      )
    return values

  def flag_type(self) -> str:
    return f"{self.count} comma-separated numbers"


def define_floats(
  name: str, default: Sequence[float], metavar: str, help_text: str, flag_values: flags.FlagValues
) -> None:
  """Defines ``--name=A,B,...``: exactly ``len(default)`` numbers, a tuple of floats."""
  flags.DEFINE(
    FloatsParser(len(default), metavar),
    name,
    ",".join(f"{x:g}" for x in default),
    f"{help_text} ({metavar})",
    flag_values=flag_values,
    serializer=flags.ListSerializer(","),
  )


def run_command(
  doc: str,
  define_flags: Callable[[flags.FlagValues], None],
  body: Callable[[flags.FlagValues], int],
  argv: Sequence[str] | None,
  prog: str,
) -> int:
  """Parses ``argv`` (program name excluded; None: ``sys.argv[1:]``) and runs ``body``.

  Returns ``body``'s exit status; 0 after printing the help; 2 after printing ``error: ...`` on
  stderr when a flag is unknown or bad, an argument is left over or ``body`` raises a
  SegtubeError.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  if any(a in HELP_FLAGS for a in argv):
    fv = flags.FlagValues()
    define_flags(fv)
    print(f"{doc.strip()}\n\nUsage: {prog} [flags]\n\n{fv.get_help()}")
    return 0
  try:
    return body(parse_flags(define_flags, argv, prog))
  except (SegtubeError, flags.Error) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


def parse_flags(
  define_flags: Callable[[flags.FlagValues], None], argv: Sequence[str], prog: str
) -> flags.FlagValues:
  """``argv`` (program name excluded) parsed into a fresh private FlagValues.

  Raises:
    flags.Error: an unknown flag or a bad value (absl's message names the flag).
    ConfigError: arguments left over.
  """
  fv = flags.FlagValues()
  define_flags(fv)
  rest = fv([prog, *argv])
  if len(rest) > 1:
    raise ConfigError(
      f"unexpected arguments {rest[1:]} (list values are comma-separated: --flag=a,b)"
    )
  return fv


def is_project_source(path: str) -> bool:
  """Whether ``path`` (a log record's pathname) is one of this project's own files."""
  path = os.path.abspath(path)
  return path.startswith(_PACKAGE_DIR + os.sep) or os.path.dirname(path) == _PROJECT_DIR


class ProjectInfoOnly(logging.Filter):
  """Lets warnings and errors through from anywhere, info and debug only from this project."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or is_project_source(record.pathname)


_QUIET = ProjectInfoOnly()


def quiet_library_logs(flag_values: flags.FlagValues = flags.FLAGS) -> bool:
  """A quiet console for the entry points: the project's progress lines and every warning.

  Libraries log pages of INFO lines (orbax about fifteen per checkpoint restore). Unless
  ``--verbosity`` was given on the command line, this hides INFO and DEBUG records that do not
  come from this project on the absl handler (which also prints Python logging's records).
  Returns whether the filter is on.
  """
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel

  handler = absl_logging.get_absl_handler()
  if "verbosity" in flag_values and flag_values["verbosity"].present:
    handler.removeFilter(_QUIET)
    return False
  handler.addFilter(_QUIET)
  return True


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: list[str]
) -> ml_collections.ConfigDict:
  """Applies ``--set key.path=value`` overrides (values parsed as Python literals) to ``config``.

  The spatial tools (``segtube_jax.segment_actors``, ``evaluation.davis``, ``bench/segment*.py``) take a
  segmentation config this way: its keys are relative to ``config.segmentation``.
  """
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
