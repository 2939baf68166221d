"""The entry points' quiet console (segtube_jax.cli.quiet_library_logs)."""

import logging
import os

from absl import flags
from absl import logging as absl_logging

from segtube_jax import cli
from tests.conftest import PROJECT_ROOT


def _record(path: str, level: int) -> logging.LogRecord:
  return logging.LogRecord("x", level, path, 1, "message", None, None)


def test_project_info_passes_library_info_does_not_warnings_always_do():
  quiet = cli.ProjectInfoOnly()
  own = [str(PROJECT_ROOT / "segtube_jax/training/trainer.py"), str(PROJECT_ROOT / "train.py")]
  library = os.path.join(os.path.dirname(flags.__file__), "orbax_like.py")
  for path in own:
    assert quiet.filter(_record(path, logging.INFO))
  assert not quiet.filter(_record(library, logging.INFO))
  assert not quiet.filter(_record(library, logging.DEBUG))
  assert quiet.filter(_record(library, logging.WARNING))
  assert quiet.filter(_record(library, logging.ERROR))
  # A file that only looks like ours (a sibling folder with the package's name as prefix).
  assert not quiet.filter(_record(str(PROJECT_ROOT / "segtube_jax_old/x.py"), logging.INFO))


def test_verbosity_on_the_command_line_brings_library_logs_back():
  handler = absl_logging.get_absl_handler()
  fv = flags.FlagValues()
  flags.DEFINE_integer("verbosity", -1, "as absl's", flag_values=fv)
  try:
    fv(["prog"])
    assert cli.quiet_library_logs(fv) and any(
      isinstance(f, cli.ProjectInfoOnly) for f in handler.filters
    )
    fv(["prog", "--verbosity=0"])
    assert not cli.quiet_library_logs(fv)
    assert not any(isinstance(f, cli.ProjectInfoOnly) for f in handler.filters)
  finally:
    for f in [f for f in handler.filters if isinstance(f, cli.ProjectInfoOnly)]:
      handler.removeFilter(f)
