"""Tests of segtube_jax.detection.alternating: span merging, the stopping rule, and the loop on a video."""

import numpy as np
import pytest

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.detection import alternating
from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.training import saliency_cache, trainer
from segtube_jax.types import DetectedSegment
from tests import detector_testing
from tests.conftest import tiny_training_config

LOG_KEYS = {
  "iteration",
  "num_segments",
  "segments",
  "mask_change",
  "segments_unchanged",
  "converged",
  "localize_seconds",
  "segment_seconds",
}


def _seg(s, e, k=0):
  return DetectedSegment("A", k, s, e, 1.0, 25.0)


def test_merged_spans_merge_overlapping_and_adjacent_segments():
  segments = [_seg(50, 60), _seg(15, 30, k=1), _seg(10, 20), _seg(30, 40), _seg(140, 160)]
  assert alternating.merged_spans(segments, 150) == [(10, 39), (50, 59), (140, 149)]
  assert alternating.merged_spans([_seg(10, 20), _seg(21, 30)], 150) == [
    (10, 19),
    (21, 29),
  ]  # A gap of one frame.
  assert alternating.merged_spans([_seg(10, 20), _seg(12, 15)], 150) == [(10, 19)]  # Contained.
  assert alternating.merged_spans([], 150) == []


def test_mask_change():
  masks = np.zeros((4, 8, 8), bool)
  masks[1, :4] = True
  masks[2, :, :4] = True
  present = np.array([False, True, True, False])
  assert alternating.mask_change(None, None, masks, present) is None
  assert alternating.mask_change(masks, present, masks.copy(), present.copy()) == 1.0
  other = masks.copy()
  other[1, :2] = False  # IoU 1/2 on frame 1, 1 on frame 2.
  assert alternating.mask_change(masks, present, other, present) == pytest.approx(0.75)
  # A frame only the new iteration has a mask for counts, with IoU 0 against nothing.
  extra, extra_present = masks.copy(), np.array([True, True, True, False])
  extra[0, 3:5] = True
  assert alternating.mask_change(masks, present, extra, extra_present) == pytest.approx(2 / 3)
  nothing = np.zeros(4, bool)
  assert alternating.mask_change(masks, nothing, masks, nothing) == 1.0


def test_network_masks():
  masks = np.zeros((3, 20, 40), bool)
  masks[1, :, :20] = True
  assert alternating.network_masks(None, None, (10, 10)) is None
  assert alternating.network_masks(masks, np.zeros(3, bool), (10, 10)) is None
  out = alternating.network_masks(masks, np.array([False, True, False]), (10, 20))
  assert out.shape == (3, 10, 20) and out.dtype == np.float32
  assert (out[0] == 1).all() and (out[2] == 1).all()  # No mask: no attenuation.
  np.testing.assert_array_equal(out[1], np.repeat([[1.0] * 10 + [0.0] * 10], 10, axis=0))


@pytest.fixture(scope="module")
def setup(tiny_synthetic, tmp_path_factory):
  """(config, localizer of the one-step model, a test video's frames and fps)."""
  workdir = detector_testing.trained_workdir(tiny_synthetic, tmp_path_factory)
  _, classes = trainer.load_experiment(workdir)
  config = tiny_training_config(tiny_synthetic, **detector_testing.fast_overrides())
  localizer, step = localizer_lib.load_localizer(config, workdir, classes)
  assert step == 1
  ds = dataset_lib.load_dataset(tiny_synthetic)
  info = ds.subset("testing")[0]
  return config, localizer, ds.open_frames(info.video_id).read(0, None), info.fps


def test_segment_spans_masks_only_the_span_frames(setup):
  config, _, frames, _ = setup
  masks, present = alternating.segment_spans(
    frames, [(40, 59), (90, 99)], None, config.segmentation
  )
  expected = np.zeros(len(frames), bool)
  expected[40:60] = expected[90:100] = True
  np.testing.assert_array_equal(present, expected)
  assert not masks[~present].any() and masks[present].sum(axis=(1, 2)).min() > 0


def _controlled(monkeypatch, localizer, lo, hi, k, seen):
  """The real networks run, then windows inside [lo, hi) are flagged as class k and others not."""
  real = localizer.window_logits

  def window_logits(frames, masks):
    seen.append(None if masks is None else np.array(masks))
    starts, ends, pro, cla = real(frames, masks)
    inside = (starts >= lo) & (ends <= hi)
    pro = np.where(inside[:, None], [-4.0, 4.0], [4.0, -4.0]).astype(np.float32)
    cla = np.zeros_like(cla)
    cla[~inside, 0] = 8.0
    cla[inside, k] = 12.0
    return starts, ends, pro, cla

  monkeypatch.setattr(localizer, "window_logits", window_logits)


def _run(setup, config, **detector):
  base, localizer, frames, fps = setup
  for key, value in detector.items():
    config.detector[key] = value
  state = alternating.VideoState("v", frames, fps)
  lines = []
  alternating.run_alternating([state], localizer, config, log=lines.append)
  assert len(lines) == len(state.iterations)
  return state


def test_masks_only_on_localized_frames_and_fed_back_to_the_networks(setup, monkeypatch):
  config, localizer, frames, _ = setup
  seen = []
  _controlled(monkeypatch, localizer, 40, 100, 2, seen)
  first = _run(setup, config.copy_and_resolve_references(), max_iterations=1)
  assert [(s.class_index, s.label) for s in first.segments] == [(1, localizer.classes[1])]
  seg = first.segments[0]
  assert 40 <= seg.start_frame < seg.end_frame <= 100
  localized = np.zeros(len(frames), bool)
  localized[seg.start_frame : seg.end_frame] = True
  np.testing.assert_array_equal(first.present, localized)
  assert not first.masks[~first.present].any() and first.masks[first.present].any()
  assert first.masks.shape == frames.shape[:3] and first.masks.dtype == bool

  seen.clear()
  second = _run(
    setup, config.copy_and_resolve_references(), max_iterations=2, converged_mask_iou=1.0
  )
  assert len(second.iterations) == 2
  assert seen[0] is None  # Iteration 0: no masks yet, plain clips.
  expected = alternating.network_masks(first.masks, first.present, (32, 32))
  np.testing.assert_array_equal(seen[1], expected)  # Iteration 1: the masks of iteration 0.
  assert (seen[1][~first.present] == 1).all()
  np.testing.assert_array_equal(second.present, localized)


def test_saliency_clips_from_b_o_at_iteration_0_and_kept_outside_the_spans(setup, monkeypatch):
  config, localizer, frames, _ = setup
  config = config.copy_and_resolve_references()
  config.clips.mask_source = "saliency"
  seen = []
  _controlled(monkeypatch, localizer, 40, 100, 2, seen)
  first = _run(setup, config.copy_and_resolve_references(), max_iterations=1)
  seen.clear()
  _run(setup, config, max_iterations=2, converged_mask_iou=1.0)
  net = alternating.localizer_lib.prepare_frames(frames, config)
  b_o = saliency_cache.video_b_o_array(frames, net.shape[1:3], config.segmentation).astype(
    np.float32
  )
  np.testing.assert_array_equal(first.saliency, b_o)
  assert 0 < b_o.mean() < 1
  np.testing.assert_array_equal(seen[0], b_o)  # Iteration 0: B_o on every frame, as in training.
  loop_masks = alternating.network_masks(first.masks, first.present, net.shape[1:3])
  outside = ~first.present
  assert outside.any() and first.present.any()
  np.testing.assert_array_equal(
    seen[1][outside], b_o[outside]
  )  # B_o kept where the loop has no mask.
  np.testing.assert_array_equal(seen[1][first.present], loop_masks[first.present])


def test_stops_when_converged_or_at_max_iterations(setup, monkeypatch):
  config, localizer, _, _ = setup
  _controlled(monkeypatch, localizer, 40, 100, 2, [])
  once = _run(setup, config.copy_and_resolve_references(), max_iterations=1)
  assert len(once.iterations) == 1 and not once.converged
  # The segments never change; with a loose mask criterion the loop stops after iteration 1.
  loose = _run(
    setup, config.copy_and_resolve_references(), max_iterations=4, converged_mask_iou=0.01
  )
  assert [e["iteration"] for e in loose.iterations] == [0, 1] and loose.converged
  log = loose.iterations
  assert all(set(e) == LOG_KEYS for e in log)
  assert (
    log[0]["mask_change"] is None and not log[0]["segments_unchanged"] and not log[0]["converged"]
  )
  assert (
    0.01 <= log[1]["mask_change"] <= 1.0 and log[1]["segments_unchanged"] and log[1]["converged"]
  )
  seg = loose.segments[0]
  assert log[1]["segments"] == [[seg.label, seg.start_frame, seg.end_frame, round(seg.score, 6)]]
  assert all(
    e["num_segments"] == 1 and e["localize_seconds"] >= 0 and e["segment_seconds"] > 0 for e in log
  )


def _snapshot(state):
  log = [{k: v for k, v in e.items() if not k.endswith("_seconds")} for e in state.iterations]
  return state.segments, state.masks, state.present, state.localization.alpha, log


def test_one_step_model_is_deterministic(setup):
  config, _, frames, _ = setup
  # The whole video is segmented at iteration 0, so the second iteration sees masks whatever the model finds.
  a = _snapshot(
    _run(setup, config.copy_and_resolve_references(), initial_saliency_whole_video=True)
  )
  b = _snapshot(
    _run(setup, config.copy_and_resolve_references(), initial_saliency_whole_video=True)
  )
  assert a[0] == b[0]
  for x, y in zip(a[1:4], b[1:4]):
    np.testing.assert_array_equal(x, y)
  assert (
    a[4] == b[4]
    and 1 <= len(a[4]) <= 2
    and set(a[4][0]) == LOG_KEYS - {"localize_seconds", "segment_seconds"}
  )
  assert a[2].dtype == bool and a[2].shape == (len(frames),)
  assert a[4][0]["mask_change"] is None


def test_shared_worker_pool_gives_the_in_process_results(setup):
  # evaluate.py opens one pool for all groups and submits each video's job as it is localized.
  config, localizer, frames, fps = setup
  config = config.copy_and_resolve_references()
  config.detector.initial_saliency_whole_video = (
    True  # Segment whole videos: real work for the workers.
  )
  config.detector.max_iterations = 1
  runs = {}
  pool = alternating.segmentation_pool(2)
  try:
    for name, executor in (("in_process", None), ("pool", pool)):
      videos = [
        alternating.VideoState("a", frames, fps),
        alternating.VideoState("b", frames[::-1].copy(), fps),
      ]
      alternating.run_alternating(videos, localizer, config, workers=1, pool=executor)
      runs[name] = [_snapshot(v) for v in videos]
  finally:
    pool.shutdown()
  assert alternating.segmentation_pool(1) is None
  for a, b in zip(runs["in_process"], runs["pool"]):
    assert a[0] == b[0] and a[4] == b[4]
    for x, y in zip(a[1:4], b[1:4]):
      np.testing.assert_array_equal(x, y)
  assert runs["pool"][0][2].all() and runs["pool"][1][2].all()  # The workers segmented every frame.
