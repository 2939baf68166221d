"""How much the spatial stage's quality depends on its random seed and on nuisance transforms.

The GMMs of Eq. (6) are fitted to a seeded subsample and start from a seeded k-means++: the seed
alone moves the mean J over the 20 development sequences by up to 0.01 and single sequences by
up to 0.2 (docs/spatial.md, "Colour models on pixels"). A comparison of two settings at one seed
cannot tell such differences from noise. Nuisance transforms of the sequences (mirrored, played
backwards, reframed, an added camera pan or shake, sensor noise, an exposure drift, motion blur,
JPEG compression:
:mod:`segtube_jax.evaluation.video_transforms`) make new, equally valid test cases from the same
sequences, so that a change can be judged on more than 20 items. This runs the evaluation
command's library call (``segtube_jax.evaluation.davis.evaluate_folder``) once per transform
and ``gmm.seed`` and reports, per sequence, J in every run, its mean, standard deviation, range
and minimum, and the mean J of each run.

Usage:
  .venv/bin/python bench/segment_seeds.py --root ../shared/data/davis2016 --out runs/seeds \\
      [--seeds 0,1,2,3] [--transforms none,flip,reverse,crop,pan,shake,noise,exposure,blur,jpeg] \\
      [--set gmm.color_features=superpixels] [--sequences a,b] [--workers N] \\
      [--frame_step N] [--height H]

``--frame_step`` and ``--height`` are the evaluation command's: every Nth frame, or the frames
scaled down to H rows (e.g. 180 for THUMOS14's 320x180).

Writes ``<out>/seed_<S>/`` (transform "none") or ``<out>/<transform>_seed_<S>/`` (the evaluation
command's results.json and table.md per run, no contact sheets) and ``<out>/seeds.json`` with the
table's numbers.
"""

from collections.abc import Sequence
import copy
import pathlib
import sys
from typing import Any

from absl import app, flags
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from segtube_jax import io_utils, schema
from segtube_jax.cli import apply_overrides
from segtube_jax.errors import ConfigError
from segtube_jax.evaluation import video_transforms
from segtube_jax.evaluation.davis import evaluate_folder

# pylint: enable=g-import-not-at-top,wrong-import-position


def _run_label(transform: str, seed: int, transforms: Sequence[str]) -> tuple[str, str]:
  """(output subfolder, table column) of one run."""
  if list(transforms) == ["none"]:
    return f"seed_{seed}", f"seed {seed}"
  folder = f"seed_{seed}" if transform == "none" else f"{transform}_seed_{seed}"
  return folder, f"{transform}/{seed}"


def seed_study(
  root: str,
  out: str,
  seeds: Sequence[int],
  overrides: Sequence[str] = (),
  workers: int | None = None,
  sequences: Sequence[str] | None = None,
  frame_step: int = 1,
  height: int = 0,
  transforms: Sequence[str] = ("none",),
) -> dict[str, Any]:
  """Evaluates the folder once per transform and GMM seed; gathers J per sequence and run.

  Args:
    root: DAVIS-style folder (``<seq>/frames``, ``<seq>/masks``).
    out: Output folder; each run's evaluation goes to a subfolder (see the module docstring).
    seeds: Distinct non-negative values of ``gmm.seed``.
    overrides: Segmentation config overrides KEY=VALUE, applied before the seed.
    workers: Processes per evaluation (None: one per CPU).
    sequences: Names to evaluate; None for all.
    frame_step, height: As :func:`evaluate_folder`'s (every Nth frame; frames scaled to H rows).
    transforms: Distinct names of :data:`segtube_jax.evaluation.video_transforms.TRANSFORMS`;
      every seed runs on every transform.

  Returns:
    ``{"seeds", "transforms", "overrides", "frame_step", "height", "runs": [column labels],
    "sequences": {name: {"j": [per run], "mean", "std", "range", "min"}}, "run_means": [mean J
    over sequences, per run], "mean", "mean_std", "widest", "lowest"}``, also written to
    ``<out>/seeds.json``. Runs are ordered transform-major.

  Raises:
    ConfigError: no seeds, repeated or negative seeds, no or repeated or unknown transforms, a
      bad override, frame_step or height.
  """
  seeds = [int(s) for s in seeds]
  if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
    raise ConfigError(f"--seeds: expected distinct non-negative integers, got {seeds}")
  transforms = list(transforms)
  if not transforms or len(set(transforms)) != len(transforms):
    raise ConfigError(f"--transforms: expected distinct transform names, got {transforms}")
  for name in transforms:
    video_transforms.check_transform(name)
  base = apply_overrides(schema.segmentation_config(), list(overrides))
  per_run, labels = [], []
  for transform in transforms:
    for seed in seeds:
      config = apply_overrides(copy.deepcopy(base), [f"gmm.seed={seed}"])
      folder, label = _run_label(transform, seed, transforms)
      report = evaluate_folder(
        root,
        pathlib.Path(out) / folder,
        config,
        workers,
        sequences,
        worst=0,
        progress=False,
        frame_step=frame_step,
        height=height,
        transform=transform,
      )
      per_run.append({name: r["j_mean"] for name, r in report["sequences"].items()})
      labels.append(label)
  result = {
    "seeds": seeds,
    "transforms": transforms,
    "overrides": list(overrides),
    "frame_step": frame_step,
    "height": height,
    "runs": labels,
    **_run_statistics(per_run),
  }
  io_utils.write_json_atomic(pathlib.Path(out) / "seeds.json", result, what="seed study")
  return result


def _run_statistics(per_run: list[dict[str, float]]) -> dict[str, Any]:
  """Per-sequence and per-run statistics of J (one {sequence: J} per run)."""
  names = list(per_run[0])
  j = np.array([[run[name] for name in names] for run in per_run])  # [runs, sequences]
  return {
    "sequences": {
      name: {
        "j": j[:, k].tolist(),
        "mean": float(j[:, k].mean()),
        "std": float(j[:, k].std()),
        "range": float(j[:, k].max() - j[:, k].min()),
        "min": float(j[:, k].min()),
      }
      for k, name in enumerate(names)
    },
    "run_means": j.mean(axis=1).tolist(),
    "mean": float(j.mean()),
    "mean_std": float(j.std(axis=0).mean()),
    "widest": names[int(np.argmax(j.max(axis=0) - j.min(axis=0)))],
    "lowest": names[int(np.argmin(j.mean(axis=0)))],
  }


def format_seed_table(result: dict[str, Any]) -> str:
  """The study as a text table: J per run, mean, std, range and min per sequence, then the means."""
  width = max(9, *(len(label) + 2 for label in result["runs"]))
  head = f"{'sequence':18s}" + "".join(f"{label:>{width}s}" for label in result["runs"])
  lines = [head + f"{'mean':>8s}{'std':>8s}{'range':>8s}{'min':>8s}"]
  for name, row in result["sequences"].items():
    cells = "".join(f"{v:{width}.3f}" for v in row["j"])
    lines.append(
      f"{name:18s}{cells}{row['mean']:8.3f}{row['std']:8.3f}{row['range']:8.3f}{row['min']:8.3f}"
    )
  cells = "".join(f"{v:{width}.3f}" for v in result["run_means"])
  lines.append(f"{'mean':18s}{cells}{result['mean']:8.3f}{result['mean_std']:8.3f}")
  widest, lowest = result["widest"], result["lowest"]
  lines.append(
    f"mean J {result['mean']:.4f} over {len(result['runs'])} runs (seeds {result['seeds']}, "
    f"transforms {', '.join(result['transforms'])}); a sequence's J varies between runs by "
    f"std {result['mean_std']:.4f} on average, most on {widest} "
    f"(range {result['sequences'][widest]['range']:.3f}); lowest mean: {lowest} "
    f"({result['sequences'][lowest]['mean']:.3f})"
  )
  return "\n".join(lines)


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags (when it runs as a program, never at import)."""
  flags.DEFINE_string("root", None, "DAVIS-style folder with frames and masks.", flag_values=fv)
  flags.DEFINE_string("out", None, "Output folder.", flag_values=fv)
  flags.DEFINE_list("seeds", ["0", "1", "2", "3"], "Values of gmm.seed.", flag_values=fv)
  flags.DEFINE_list("transforms", ["none"], "Nuisance transforms of the sequences.", flag_values=fv)
  flags.DEFINE_multi_string("set", [], "Segmentation config override KEY=VALUE.", flag_values=fv)
  flags.DEFINE_list("sequences", None, "Sequences to evaluate (default: all).", flag_values=fv)
  flags.DEFINE_integer("workers", None, "Processes per evaluation.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("frame_step", 1, "Every Nth frame and mask.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer(
    "height", 0, "Scale frames and masks to H rows (0: as stored).", lower_bound=0, flag_values=fv
  )
  flags.mark_flags_as_required(["root", "out"], flag_values=fv)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  args = flags.FLAGS
  try:
    seeds = [int(s) for s in args.seeds]
  except ValueError as e:
    raise app.UsageError(f"--seeds: expected integers, got {args.seeds}") from e
  result = seed_study(
    args.root,
    args.out,
    seeds,
    args.set,
    args.workers,
    args.sequences,
    frame_step=args.frame_step,
    height=args.height,
    transforms=args.transforms,
  )
  print(format_seed_table(result))


if __name__ == "__main__":
  define_flags()
  app.run(main)
