"""Smoke test of bench/detector_throughput.py on CPU: the whole detector, timed by part."""

import json

from absl import flags
import pytest

from tests.conftest import PROJECT_ROOT, load_bench

TINY = [  # The tiny networks of tests/conftest.py's training config, as config overrides.
  f"--config={PROJECT_ROOT / 'configs/synthetic.py'}",
  "--config.model.width_multiplier=0.0625",
  "--config.model.fc_dim=32",
  "--config.model.lstm_features=8",
  "--config.model.clip_shape=(16,16,16)",
  "--config.clips.resize=(18,18)",
  "--config.dataset.frame_size=(32,32)",
  "--config.clips.seq_len=2",
  "--config.train.global_batch_size=2",
]


def test_bench_runs_the_detector_on_cpu_and_splits_the_time(tmp_path, capsys):
  bench = load_bench("detector_throughput")
  out = tmp_path / "throughput.json"
  results = bench.main(
    [*TINY, "--videos", "2", "--size", "32", "--iterations", "1", "--json", str(out)]
  )
  assert results["backend"] == "cpu" and results["videos"] == 2
  assert results["segmentation_workers"] == results["cores"] >= 1
  assert results["frames"] >= 2 * 120 and results["frames_per_second"] > 0
  for part in ("decode_seconds", "localize_seconds", "segment_seconds"):
    assert results[part] >= 0
  assert results["localize_seconds"] > 0 and 0 <= results["localized_frame_fraction"] <= 1
  assert json.loads(out.read_text()) == results
  printed = capsys.readouterr().out
  assert "end to end" in printed and "segmentation" in printed and "localizer" in printed


def test_bench_rejects_a_bad_flag():
  bench = load_bench("detector_throughput")
  with pytest.raises(flags.IllegalFlagValueError, match="videos"):
    bench.main(["--videos", "0"])
