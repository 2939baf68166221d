"""The package's layers run one way (docs/ARCHITECTURE.md), checked from the imports."""

import ast
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, cached_env

PACKAGE = PROJECT_ROOT / "segtube_jax"

# Bottom to top. A module may import its own package and anything on a lower level; on the
# same level only what ALSO_ALLOWED names. Entry points (top-level modules such as detect_videos.py,
# segment_actors.py, demo.py) sit above everything.
LEVELS = {
  "errors": 0,
  "io_utils": 1,
  "types": 1,
  "cli": 1,
  "schema": 1,
  "data": 2,
  "models": 3,
  "temporal": 3,
  "spatial": 3,
  "clips": 3,
  "training": 4,
  "detection": 4,
  "evaluation": 5,
}
ENTRY_POINTS = {"detect_videos", "segment_actors", "segment", "demo"}  # segment: an alias
ALSO_ALLOWED = {("detection", "training")}  # The detector runs the trained networks' steps.
# Modules that score any method's files: no JAX, nothing from training, detection or models.
SCORING = ["temporal_map", "detection_files", "masks", "segmentation_metrics", "spatiotemporal"]


def _unit(path: pathlib.Path) -> str:
  """The layer unit of a module: its subpackage, or its own name at the top level."""
  rel = path.relative_to(PACKAGE)
  return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports():
  """(importing unit, imported unit, file, line) for every import of segtube_jax, at any depth."""
  for path in sorted(PACKAGE.rglob("*.py")):
    src = _unit(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = (
          [node.module]
          if node.module != "segtube_jax"
          else [f"segtube_jax.{a.name}" for a in node.names]
        )
      for name in names:
        parts = name.split(".")
        if parts[0] == "segtube_jax" and len(parts) > 1 and parts[1] != src:
          yield src, parts[1], path.relative_to(PROJECT_ROOT), node.lineno


def test_every_unit_has_a_layer():
  units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
  assert units <= set(LEVELS) | ENTRY_POINTS, sorted(units - set(LEVELS) - ENTRY_POINTS)


def test_layers_run_one_way():
  bad = []
  for src, dst, path, line in _imports():
    if src in ENTRY_POINTS:
      continue
    if dst in ENTRY_POINTS:
      bad.append(f"{path}:{line}: {src} imports the entry point {dst}")
    elif LEVELS[dst] > LEVELS[src] or (
      LEVELS[dst] == LEVELS[src] and (src, dst) not in ALSO_ALLOWED
    ):
      bad.append(f"{path}:{line}: {src} (level {LEVELS[src]}) imports {dst} (level {LEVELS[dst]})")
  assert not bad, "\n".join(bad)


def test_no_package_cycle():
  edges = {}
  for src, dst, _, _ in _imports():
    edges.setdefault(src, set()).add(dst)

  def reaches(a, b, seen=()):
    return any(n == b or (n not in seen and reaches(n, b, seen + (n,))) for n in edges.get(a, ()))

  cycles = sorted(a for a in edges if reaches(a, a))
  assert not cycles, cycles


@pytest.mark.parametrize("module", SCORING)
def test_scoring_modules_import_no_jax(module):
  code = (
    f"import sys, segtube_jax.evaluation.{module}\n"
    "bad = [m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'optax') or "
    "m.startswith(('segtube_jax.training', 'segtube_jax.detection', 'segtube_jax.models'))]\n"
    "print(sorted(bad))"
  )
  done = subprocess.run(
    [sys.executable, "-c", code],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env=cached_env(),
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip() == "[]", done.stdout


# Config builders and flag definitions read as lists of settings; they may run long.
LONG_ALLOWED = {
  ("defaults.py", "experiment_config"),
  ("defaults.py", "segmentation_config"),
  ("accelerator.py", "define_flags"),
}


def test_no_function_over_80_lines():
  files = [
    *PACKAGE.rglob("*.py"),
    *(PROJECT_ROOT / "bench").glob("*.py"),
    PROJECT_ROOT / "train.py",
    PROJECT_ROOT / "evaluate.py",
  ]
  long = []
  for path in files:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lines = node.end_lineno - node.lineno + 1
        if lines > 80 and (path.name, node.name) not in LONG_ALLOWED:
          long.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} ({lines} lines)")
  assert not long, "\n".join(long)
