"""Tests of segtube_jax.evaluation.tune_gamma: choosing Eq. (4)'s gamma on the validation videos."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.errors import ConfigError
from segtube_jax.evaluation import detection_writers, detector_eval, temporal_map, tune_gamma
from segtube_jax.training import checkpointing
from tests import detector_testing
from tests.conftest import PROJECT_ROOT, cached_env, tiny_training_config


def _localizers(config, tiny_synthetic, tmp_path_factory, gammas):
  """{gamma: Localizer with that gamma in its config}, on the trained tiny workdir's weights."""
  ds = dataset_lib.load_dataset(tiny_synthetic, check_media=False)
  _, params = checkpointing.latest_params(
    detector_testing.trained_workdir(tiny_synthetic, tmp_path_factory)
  )
  out = {}
  for gamma in gammas:
    c = copy.deepcopy(config)
    c.detector.gamma = gamma
    out[gamma] = localizer_lib.Localizer(c, params, ds.classes)
  return out


def test_gamma_argument_equals_a_config_with_that_gamma(tiny_synthetic, tmp_path_factory):
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides())
  # Hand-made window logits: flagged action windows whose class confidence ramps up over the
  # video, so alpha_t rises and each gamma cuts the action at another frame.
  starts = np.arange(0, 112, 4)
  ends = starts + 16
  pro = np.tile(np.array([[-5.0, 5.0]], np.float32), (len(starts), 1))
  cla = np.zeros((len(starts), 6), np.float32)
  cla[:, 2] = np.linspace(-3.0, 6.0, len(starts))
  runs = {}
  localizers = _localizers(config, tiny_synthetic, tmp_path_factory, (0.3, 0.5, 0.6, 0.9))
  for gamma in (0.3, 0.6, 0.9):
    expected = localizers[gamma].localize_windows(starts, ends, pro, cla, 128, 25.0)
    got = localizers[0.5].localize_windows(starts, ends, pro, cla, 128, 25.0, gamma=gamma)
    np.testing.assert_array_equal(got.frame_score, expected.frame_score)
    assert got.segments == expected.segments
    runs[gamma] = [(s.label, s.start_frame, s.end_frame) for s in got.segments]
  starts_by_gamma = [runs[g][0][1] for g in (0.3, 0.6, 0.9)]
  assert starts_by_gamma == sorted(starts_by_gamma) and len(set(starts_by_gamma)) == 3, runs
  assert all(
    label == "Hop" for run in runs.values() for label, _, _ in run
  )  # classes[1]: column 2.


@pytest.mark.parametrize(
  "gammas, message",
  [
    ([], "at least one gamma"),
    ([1.0], r"in \[0, 1\)"),
    ([-0.1], r"in \[0, 1\)"),
    ([float("nan")], r"in \[0, 1\)"),
    ([True], r"in \[0, 1\)"),
    (["0.5"], r"in \[0, 1\)"),
  ],
)
def test_bad_gammas(gammas, message):
  with pytest.raises(ConfigError, match=message):
    tune_gamma.check_gammas(gammas)
  assert tune_gamma.check_gammas([0.6, 0.2, 0.6]) == [0.2, 0.6]


def _cli(*args):
  return subprocess.run(
    [sys.executable, "-m", "segtube_jax.evaluation.tune_gamma", *args],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=cached_env(),
  )


def test_cli_sweep_matches_scoring_each_gamma_on_validation(
  tiny_synthetic, tmp_path_factory, tmp_path
):
  workdir = detector_testing.copy_workdir(
    detector_testing.trained_workdir(tiny_synthetic, tmp_path_factory), tmp_path / "w"
  )
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides())
  gammas = (0.0, 0.05, 0.6)
  done = _cli(
    "--config",
    "configs/synthetic.py",
    "--workdir",
    str(workdir),
    "--gammas",
    ",".join(map(str, gammas)),
    *detector_testing.cli_overrides(config),
  )
  assert done.returncode == 0, done.stderr[-3000:]
  sweep = json.loads((workdir / tune_gamma.SWEEP_FILE).read_text())
  assert (
    sweep["gammas"] == list(gammas)
    and sweep["subset"] == "validation"
    and sweep["checkpoint_step"] == 1
  )
  assert f"best gamma: {sweep['best_gamma']:g}" in done.stdout
  # Independently: the whole localize() path with the gamma in the config, scored as evaluate.py does.
  ds = dataset_lib.load_dataset(tiny_synthetic, check_media=False)
  videos = ds.subset("validation")
  assert sweep["videos"] == len(videos) > 0
  gt = detector_eval.ground_truth(ds, [v.video_id for v in videos], "validation")
  expected = []
  localizers = _localizers(config, tiny_synthetic, tmp_path_factory, gammas)
  for gamma in gammas:
    localizer = localizers[gamma]
    results = {}
    for info in videos:
      frames, fps = detector_eval.read_dataset_video(ds, info.video_id)
      results[info.video_id] = localizer.localize(
        localizer_lib.prepare_frames(frames, config), None, fps
      ).segments
    ap = temporal_map.average_precision(
      gt,
      detection_writers.as_detections(results, ds.classes),
      "thumos14",
      list(config.evaluation.tious),
    )
    expected.append(list(temporal_map.mean_average_precision(ap)))
  np.testing.assert_allclose(sweep["map"], expected, atol=1e-12)
  best = max(range(len(gammas)), key=lambda i: (expected[i][-1], np.mean(expected[i]), -gammas[i]))
  assert sweep["best_gamma"] == gammas[best]


def test_cli_bad_gammas_fail_by_name(tmp_path):
  done = _cli(
    "--config", "configs/synthetic.py", "--workdir", str(tmp_path), "--gammas", "0.2,high"
  )
  assert done.returncode == 2 and "--gammas must be comma-separated numbers" in done.stderr
