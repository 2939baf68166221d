"""Runs a command-line tool on absl flags held in a private FlagValues (the tools' shared CLI).

A tool defines its flags in a function of a ``flags.FlagValues`` and its work in a function of
the parsed values; :func:`run_command` parses ``argv`` into a fresh FlagValues each call (so a
tool imported as a library defines no global flag, and tests can run it many times in one
process), prints the module docstring and the flags for ``--help``, and turns a bad flag or a
:class:`~segtube_jax.errors.SegtubeError` into one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import sys

from absl import flags

from segtube_jax.errors import ConfigError, SegtubeError

HELP_FLAGS = ("-h", "-?", "--help", "-help", "--helpshort", "--helpfull")
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
  fv = flags.FlagValues()
  define_flags(fv)
  if any(a in HELP_FLAGS for a in argv):
    print(f"{doc.strip()}\n\nUsage: {prog} [flags]\n\n{fv.get_help()}")
    return 0
  try:
    rest = fv([prog, *argv])
    if len(rest) > 1:
      raise ConfigError(
        f"unexpected arguments {rest[1:]} (list values are comma-separated: --flag=a,b)"
      )
    return body(fv)
  except (SegtubeError, flags.Error) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
