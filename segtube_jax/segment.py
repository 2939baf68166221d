"""The former name of :mod:`segtube_jax.segment_actors`, kept as an alias.

Issue 12 and earlier notes run the spatial stage as ``python -m segtube_jax.segment --frames DIR
--out DIR``; the module was renamed ``segment_actors`` later (a name that says what it
segments). This alias runs the same command, with the same flags, output and exit status, and
names the new module on stderr.
"""

import sys

from segtube_jax import segment_actors


def main(argv: list[str] | None = None) -> int:
  """Runs :func:`segtube_jax.segment_actors.main` on ``argv``; returns its exit status."""
  print(
    "note: segtube_jax.segment is now segtube_jax.segment_actors (same flags); running that",
    file=sys.stderr,
  )
  return segment_actors.main(argv)


if __name__ == "__main__":
  sys.exit(main())
