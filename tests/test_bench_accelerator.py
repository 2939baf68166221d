"""Smoke test of bench/accelerator.py on CPU (the tiny model): every part runs, no timing asserted."""

import json
import sys

import pytest

from tests.conftest import PROJECT_ROOT, load_bench


def test_forward_flops_match_the_paper_c3d():
  """C3D at 16x112x112 is 38.5 GMACs = 77 GFLOPs forward (issue 6), counted from the layers."""
  bench = load_bench("accelerator")
  sys.path.insert(0, str(PROJECT_ROOT))
  from configs import thumos14

  flops = bench.forward_flops_per_clip(thumos14.get_config().model)
  assert flops / 1e9 == pytest.approx(77.09, abs=0.01)
  # conv1 alone: 27 taps x 3 x 64 channels x 16 x 112 x 112 positions, 2 FLOPs per MAC.
  assert flops > 2 * 27 * 3 * 64 * 16 * 112 * 112


def test_peak_lookup_by_device_kind():
  bench = load_bench("accelerator")

  class Dev:
    device_kind = "NVIDIA H100 80GB HBM3"

  assert bench.peak_tflops(Dev(), "bfloat16", None) == pytest.approx(989.4)
  assert bench.peak_tflops(Dev(), "float32", None) == pytest.approx(494.7)
  assert bench.peak_tflops(Dev(), "float32", 100.0) == 100.0
  Dev.device_kind = "cpu"
  assert bench.peak_tflops(Dev(), "bfloat16", None) is None


@pytest.mark.slow  # ~30 s on 2 CPU cores: compiling the tiny networks and packing 3 tiny videos.
def test_bench_runs_every_part_on_cpu(tmp_path, capsys):
  bench = load_bench("accelerator")
  out = tmp_path / "acc.json"
  results = bench.main(
    [
      "--model",
      "tiny",
      "--steps",
      "1",
      "--pipeline_threads",
      "1",
      "--pipeline_workers",
      "1",
      "--pipeline_worker_threads",
      "1",
      "--pipeline_batches",
      "2",
      "--json",
      str(out),
    ]
  )
  assert results["backend"] == "cpu" and results["model"] == "tiny"
  (train,) = results["train"]
  assert train["dtype"] == "float32" and train["clips_per_s"] > 0 and train["mfu"] is None
  assert [r["dtype"] for r in results["inference"]] == ["float32"]
  assert results["inference"][0]["clips_per_s"] > 0
  pipe, workers = results["pipeline"]
  assert pipe["workers"] == 0 and pipe["threads"] == 1 and pipe["clips_per_s"] > 0
  assert workers["workers"] == 1 and workers["threads"] == 1 and workers["clips_per_s"] > 0
  assert results["pipeline_workers_vs_threads"] > 0
  assert json.loads(out.read_text())["train"][0]["clips_per_s"] == train["clips_per_s"]
  printed = capsys.readouterr().out
  assert (
    "train  float32" in printed
    and "infer  float32" in printed
    and "input   1 threads" in printed
    and "input   1 workers x 1 threads" in printed
  )


def test_bad_parts_are_refused():
  bench = load_bench("accelerator")
  with pytest.raises(SystemExit, match="--parts"):
    bench.main(["--model", "tiny", "--parts", "train,fly"])
