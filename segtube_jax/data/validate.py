"""Checks a dataset folder and lists every problem.

Usage: ``python -m segtube_jax.data.validate <root> [--no-media]``; exits 1 when there is any problem.
"""

from __future__ import annotations

import sys

from absl import app, flags

from segtube_jax.data.dataset import validate_dataset

_NO_MEDIA = flags.DEFINE_bool(
  "no_media", False, "Check annotations.json only, not videos, frames and masks."
)


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    raise app.UsageError("usage: python -m segtube_jax.data.validate <dataset root> [--no_media]")
  problems = validate_dataset(argv[1], check_media=not _NO_MEDIA.value)
  for p in problems:
    print(p)
  if problems:
    print(f"{argv[1]}: {len(problems)} problem(s)", file=sys.stderr)
    return 1
  print(f"{argv[1]}: valid dataset")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
