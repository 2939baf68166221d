"""bench/segment_seeds.py: the evaluation repeated per GMM seed and transform, and its statistics."""

import json

import numpy as np
import pytest

from segtube_jax.errors import ConfigError
from tests.conftest import load_bench
from tests.test_evaluation_davis import SEQUENCES, _make_root


def test_seed_study_runs_one_evaluation_per_seed_and_summarises_them(tmp_path):
  bench = load_bench("segment_seeds")
  root = _make_root(tmp_path / "data")
  out = tmp_path / "seeds"
  result = bench.seed_study(str(root), str(out), [0, 3], ["refine.enabled=False"], workers=1)
  assert result["seeds"] == [0, 3] and list(result["sequences"]) == list(SEQUENCES)
  assert result["runs"] == ["seed 0", "seed 3"] and result["transforms"] == ["none"]
  j = []
  for seed in (0, 3):
    report = json.loads((out / f"seed_{seed}" / "results.json").read_text())
    assert report["config"]["gmm"]["seed"] == seed
    assert report["config"]["refine"]["enabled"] is False
    assert not (out / f"seed_{seed}" / "sheets").exists()
    j.append([report["sequences"][name]["j_mean"] for name in SEQUENCES])
  j = np.array(j)
  for k, name in enumerate(SEQUENCES):
    row = result["sequences"][name]
    np.testing.assert_allclose(row["j"], j[:, k])
    np.testing.assert_allclose([row["mean"], row["std"]], [j[:, k].mean(), j[:, k].std()])
    np.testing.assert_allclose([row["range"], row["min"]], [np.ptp(j[:, k]), j[:, k].min()])
  np.testing.assert_allclose(result["run_means"], j.mean(axis=1))
  np.testing.assert_allclose(result["mean_std"], j.std(axis=0).mean())
  assert json.loads((out / "seeds.json").read_text()) == result
  table = bench.format_seed_table(result)
  assert all(name in table for name in SEQUENCES) and "seed 3" in table


def test_seed_study_at_a_lower_frame_rate_and_resolution(tmp_path):
  bench = load_bench("segment_seeds")
  root = _make_root(tmp_path / "data")
  out = tmp_path / "seeds"
  result = bench.seed_study(
    str(root), str(out), [1], ["refine.enabled=False"], workers=1, frame_step=2, height=32
  )
  assert result["frame_step"] == 2 and result["height"] == 32
  report = json.loads((out / "seed_1" / "results.json").read_text())
  assert report["summary"]["frame_step"] == 2 and report["summary"]["height"] == 32
  assert [report["sequences"][name]["frames"] for name in SEQUENCES] == [4, 4]
  assert result["sequences"][SEQUENCES[0]]["j"] == [report["sequences"][SEQUENCES[0]]["j_mean"]]


def test_seed_study_runs_the_seed_on_every_transform(tmp_path):
  bench = load_bench("segment_seeds")
  root = _make_root(tmp_path / "data")
  out = tmp_path / "seeds"
  result = bench.seed_study(
    str(root), str(out), [2], ["refine.enabled=False"], workers=1, transforms=["none", "flip"]
  )
  assert result["runs"] == ["none/2", "flip/2"] and result["transforms"] == ["none", "flip"]
  for folder, transform, k in (("seed_2", "none", 0), ("flip_seed_2", "flip", 1)):
    report = json.loads((out / folder / "results.json").read_text())
    assert report["summary"]["transform"] == transform
    assert report["config"]["gmm"]["seed"] == 2
    for name in SEQUENCES:
      assert result["sequences"][name]["j"][k] == report["sequences"][name]["j_mean"]
  assert "flip/2" in bench.format_seed_table(result)


@pytest.mark.parametrize(
  "transforms, message",
  [([], "--transforms"), (["flip", "flip"], "--transforms"), (["spin"], "transform: expected")],
)
def test_bad_transforms_are_refused_before_any_work(tmp_path, transforms, message):
  bench = load_bench("segment_seeds")
  with pytest.raises(ConfigError, match=message):
    bench.seed_study(str(tmp_path / "missing"), str(tmp_path / "out"), [0], transforms=transforms)
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seeds", [[], [1, 1], [-1]])
def test_bad_seeds_are_refused_before_any_work(tmp_path, seeds):
  bench = load_bench("segment_seeds")
  with pytest.raises(ConfigError, match="--seeds"):
    bench.seed_study(str(tmp_path / "missing"), str(tmp_path / "out"), seeds)
  assert not (tmp_path / "out").exists()
