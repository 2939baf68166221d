"""Tests of segtube_jax.detection.localizer: Eqs. (1)-(4) on whole videos, class assignment, NMS, clips.

The networks are replaced by a fake ``_predict`` that reads each window's position from its clip
(frame t of the test videos is filled with the value t), so the windows it flags are known exactly.
"""

import numpy as np
import pytest

from segtube_jax import clips as clips_lib
from segtube_jax import schema, temporal
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import pipeline as chunk_pipeline
from segtube_jax.data import video as video_lib
from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.errors import ConfigError
from segtube_jax.training import input_pipeline, saliency_cache
from segtube_jax.types import DetectedSegment
from tests.conftest import tiny_training_config

CLASSES = ["A", "B", "C", "D", "E"]
T = 150


def _config(**overrides):
  # The paper's gamma; configs/synthetic.py tunes its own on validation videos.
  return tiny_training_config("unused", **{"detector.gamma": 0.6, **overrides})


def _index_frames(num_frames=T, size=32):
  """Frame t is filled with the value t: a clip tells which frames it was sampled from."""
  return np.broadcast_to(
    np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, size, size, 3)
  ).copy()


def _fake_predict(rule, num_classes=len(CLASSES), calls=None):
  """A stand-in for the networks: ``rule(start, end)`` -> None or (class id >= 1, logit)."""

  def predict(params, clips):
    del params
    clips = np.asarray(clips).astype(np.int64)
    if calls is not None:
      calls.append(clips.shape)
    first = clips[:, :, 0, 0, 0, 0]
    length = 16 * (clips[:, :, 1, 0, 0, 0] - first)  # 16-frame windows: step 1; 32-frame: step 2.
    pro = np.tile(np.float32([4.0, -4.0]), first.shape + (1,))
    cla = np.zeros(first.shape + (num_classes + 1,), np.float32)
    cla[..., 0] = 8.0
    for idx in np.ndindex(first.shape):
      out = rule(int(first[idx]), int(first[idx] + length[idx])) if length[idx] > 0 else None
      if out is not None:
        k, logit = out
        pro[idx] = [-4.0, 4.0]
        cla[idx] = 0.0
        cla[idx][k] = logit
    return pro, cla

  return predict


def _localizer(rule, calls=None, **overrides):
  loc = localizer_lib.Localizer(_config(**overrides), None, CLASSES)
  loc._predict = _fake_predict(rule, calls=calls)  # pylint: disable=protected-access
  return loc


def _inside(lo, hi, k, logit=12.0):
  return lambda s, e: (k, logit) if lo <= s and e <= hi else None


def _reference_runs(starts, ends, pro, cla, gamma, min_len, num_frames=T):
  """Eqs. (1)-(4) written out frame by frame (class-agnostic alpha_t): the runs [start, end)."""
  probs = np.exp(cla - cla.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  total, count = np.zeros(num_frames), np.zeros(num_frames)
  for s, e, p, q in zip(starts, ends, pro, probs):
    count[s:e] += 1
    if p[1] > p[0] and q.argmax() > 0:
      total[s:e] += q.max()
  above = np.concatenate([[False], total / np.maximum(count, 1) > gamma, [False]])
  edges = np.flatnonzero(np.diff(above.astype(int)))
  return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_len]


def test_window_logits_are_aligned_with_their_windows_whatever_the_batch():
  calls = []
  rule = _inside(40, 100, 2)
  frames = _index_frames()
  starts, ends, pro, cla = _localizer(rule, calls, **{"detector.batch_size": 4}).window_logits(
    frames, None
  )
  windows = clips_lib.enumerate_windows(T, (16, 32), 0.75)
  np.testing.assert_array_equal(starts, windows.starts)
  np.testing.assert_array_equal(ends, windows.ends)
  flagged = np.array([rule(s, e) is not None for s, e in zip(starts, ends)])
  assert 0 < flagged.sum() < len(flagged)
  np.testing.assert_array_equal(pro[:, 1] > pro[:, 0], flagged)
  np.testing.assert_array_equal(cla.argmax(-1), np.where(flagged, 2, 0))
  # Sequences of seq_len=2 windows of one scale, 4 per call; the last call is padded to 4.
  num_sequences = sum(-(-len(windows.of_scale(s)) // 2) for s in (0, 1))
  assert len(calls) == -(-num_sequences // 4) and all(c[:2] == (4, 2) for c in calls)
  again = _localizer(rule, **{"detector.batch_size": 16}).window_logits(frames, None)
  for a, b in zip((starts, ends, pro, cla), again):
    np.testing.assert_array_equal(a, b)


def test_one_flagged_stretch_gives_one_segment_of_its_class():
  loc = _localizer(_inside(40, 100, 2))
  result = loc.localize(_index_frames(), fps=25.0)
  starts, ends, pro, cla = loc.window_logits(_index_frames(), None)
  expected = _reference_runs(starts, ends, pro, cla, 0.6, 8)
  assert len(expected) == 1
  assert len(result.segments) == 1
  seg = result.segments[0]
  assert (seg.class_index, seg.label) == (1, "B")
  assert (seg.start_frame, seg.end_frame) == expected[0]
  assert 40 <= seg.start_frame <= 56 and 84 <= seg.end_frame <= 100  # Roughly [40, 100).
  # 'segment' score: the run's mean frame score times the share of its class (all of it here).
  assert seg.score == pytest.approx(
    result.frame_score[seg.start_frame : seg.end_frame].mean(), rel=1e-5
  )
  assert 0.6 < seg.score <= 1.0 and seg.fps == 25.0
  assert result.num_windows == len(starts) and result.flagged == int((pro[:, 1] > pro[:, 0]).sum())
  assert result.alpha.shape == (T, len(CLASSES)) and result.frame_score.shape == (T,)
  assert (
    (result.alpha[:, [0, 2, 3, 4]] == 0).all()
    and result.alpha[:40].sum() == 0
    and result.alpha[100:].sum() == 0
  )


@pytest.mark.parametrize(
  "mode, expected",
  [
    ("segment", [(0, "A"), (2, "C")]),
    ("frame", [(0, "A"), (2, "C")]),
  ],
)
def test_two_classes_in_two_runs(mode, expected):
  first, second = _inside(10, 60, 1, logit=4.0), _inside(90, 140, 3, logit=12.0)
  loc = _localizer(lambda s, e: first(s, e) or second(s, e), **{"detector.class_assignment": mode})
  segments = loc.localize(_index_frames()).segments
  assert [(s.class_index, s.label) for s in segments] == expected
  assert segments[0].end_frame <= 60 and segments[1].start_frame >= 90
  assert 10 <= segments[0].start_frame and segments[1].end_frame <= 140


def test_paper_rule_two_classes_in_two_runs_keeps_only_the_run_of_k_prime():
  # The removed 'video' mode stamped k' on both runs; Eq. (3) conditioned on k' keeps the other
  # class's frames out of alpha_t(f_t | k'), so only the run of k' (highest mean v_spe) remains.
  first, second = _inside(10, 60, 1, logit=4.0), _inside(90, 140, 3, logit=12.0)
  loc = _localizer(
    lambda s, e: first(s, e) or second(s, e), **{"detector.class_assignment": "paper"}
  )
  result = loc.localize(_index_frames())
  assert result.video_class == 3
  assert [(s.class_index, s.label) for s in result.segments] == [(2, "C")]
  assert result.segments[0].start_frame >= 90 and result.segments[0].end_frame <= 140
  np.testing.assert_array_equal(result.frame_score, result.alpha[:, 2])
  assert not result.frame_score[:70].any()


def test_nothing_flagged_gives_no_segment():
  result = _localizer(lambda s, e: None).localize(_index_frames())
  assert result.segments == [] and result.flagged == 0
  assert result.num_windows == len(clips_lib.enumerate_windows(T, (16, 32), 0.75))
  assert not result.alpha.any() and not result.frame_score.any()


def test_gamma_is_respected():
  rule = _inside(40, 100, 2, logit=float(np.log(5.0)))  # v_spe = e^l / (e^l + 5) = 0.5.
  weak = _localizer(rule).localize(_index_frames())
  assert weak.segments == [] and 0.49 < weak.frame_score.max() < 0.51
  low = _localizer(rule, **{"detector.gamma": 0.4}).localize(_index_frames())
  assert [s.class_index for s in low.segments] == [1]


def test_min_segment_frames_is_respected():
  rule = _inside(40, 100, 2)
  length = _localizer(rule).localize(_index_frames()).segments[0].num_frames
  assert (
    len(
      _localizer(rule, **{"detector.min_segment_frames": length}).localize(_index_frames()).segments
    )
    == 1
  )
  assert (
    _localizer(rule, **{"detector.min_segment_frames": length + 1})
    .localize(_index_frames())
    .segments
    == []
  )


def _seg(k, s, e, score):
  return DetectedSegment(CLASSES[k], k, s, e, score, 25.0)


def test_nms_removes_a_duplicate_of_the_same_class_only():
  best, duplicate = _seg(0, 10, 50, 0.9), _seg(0, 12, 50, 0.8)  # tIoU 0.95.
  other_class, apart = _seg(1, 12, 50, 0.7), _seg(0, 60, 80, 0.5)
  kept = localizer_lib._nms([duplicate, apart, best, other_class], 0.5)  # pylint: disable=protected-access
  assert kept == [best, other_class, apart]
  assert len(localizer_lib._nms([duplicate, best], 0.99)) == 2  # pylint: disable=protected-access


def test_segments_apply_nms_when_enabled(monkeypatch):
  runs = [temporal.Segment(1, 10, 50, 0.9), temporal.Segment(1, 12, 50, 0.8)]
  monkeypatch.setattr(localizer_lib.temporal, "extract_segments", lambda *a, **k: list(runs))
  labels, alpha = np.zeros(T, np.int32), np.zeros((T, len(CLASSES)), np.float32)
  for nms_iou, count in ((0.0, 2), (0.5, 1)):
    loc = localizer_lib.Localizer(
      _config(**{"detector.class_assignment": "frame", "detector.nms_iou": nms_iou}), None, CLASSES
    )
    out = loc._segments(labels, alpha, alpha.max(-1), 25.0)  # pylint: disable=protected-access
    assert len(out) == count and out[0].start_frame == 10 and out[0].score == pytest.approx(0.9)


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("class_assignment", "clip", "class_assignment must be one of"),
    ("gamma", 1.0, r"gamma must be in \[0, 1\)"),
    ("min_segment_frames", 0, "min_segment_frames"),
    ("max_iterations", 0, "max_iterations"),
    ("nms_iou", 1.5, "nms_iou"),
    ("converged_mask_iou", 0.0, "converged_mask_iou"),
  ],
)
def test_validate_detector_names_the_key(key, value, match):
  with pytest.raises(ConfigError, match=match):
    schema.validate_detector(_config(**{f"detector.{key}": value}))
  with pytest.raises(ConfigError, match=match):
    localizer_lib.Localizer(_config(**{f"detector.{key}": value}), None, CLASSES)


def test_prepare_frames_resizes_to_the_training_frame_size():
  frames = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
  assert localizer_lib.prepare_frames(frames, _config()).shape == (3, 32, 32, 3)
  same = _config(**{"dataset.frame_size": (48, 64)})
  assert localizer_lib.prepare_frames(frames, same) is frames


def test_window_clips_shapes_and_centre_crop():
  config = _config()
  frames = np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
  starts, ends = np.array([0, 8, 28]), np.array([16, 40, 60])
  out = localizer_lib.window_clips(frames, None, starts, ends, config)
  assert out.shape == (3, 16, 16, 16, 3) and out.dtype == np.uint8
  resized = video_lib.resize_frames(frames, (18, 18))
  for clip, s, e in zip(out, starts, ends):
    np.testing.assert_array_equal(
      clip, resized[clips_lib.clip_frame_indices(s, e - s, 16), 1:17, 1:17]
    )


def test_window_clips_saliency_changes_only_background_pixels():
  config = _config(**{"clips.resize": (16, 16)})  # No resampling: pixels compare one to one.
  frames = np.random.default_rng(1).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
  masks = np.zeros((32, 16, 16), bool)
  masks[:, 4:12, 2:9] = True
  starts, ends = np.array([0, 16]), np.array([16, 32])
  plain = localizer_lib.window_clips(frames, None, starts, ends, config)
  salient = localizer_lib.window_clips(frames, masks, starts, ends, config)
  actor = np.broadcast_to(masks[:16][None, :, :, :, None], plain.shape)
  np.testing.assert_array_equal(salient[actor], plain[actor])
  assert (salient[~actor] != plain[~actor]).mean() > 0.9
  ones = localizer_lib.window_clips(frames, np.ones_like(masks, np.float32), starts, ends, config)
  np.testing.assert_array_equal(ones, plain)


@pytest.mark.parametrize("mask_source", ["none", "saliency"])
def test_window_clips_equal_the_eval_input_pipeline(tiny_synthetic, tmp_path, mask_source):
  config = tiny_training_config(tiny_synthetic, **{"clips.mask_source": mask_source})
  data_dir, name = input_pipeline.ensure_built(config, tmp_path)
  source = chunk_pipeline.open_chunk_source(data_dir, name, "testing")
  ds = dataset_lib.load_dataset(tiny_synthetic)
  video_id = sorted(source.videos)[0]
  sequences = [
    s
    for s in input_pipeline.build_sequences(source, config.clips, balance_seed=None)
    if s.video_id == video_id
  ]
  cache = None
  frames = localizer_lib.prepare_frames(ds.open_frames(video_id).read(0, None), config)
  masks = None
  if mask_source == "saliency":
    cache = saliency_cache.SaliencyCache(saliency_cache.cache_dir(config, data_dir, name))
    original = ds.open_frames(video_id).read(0, None)  # What the detector computes:
    masks = saliency_cache.video_b_o_array(original, frames.shape[1:3], config.segmentation)
    np.testing.assert_array_equal(
      masks, cache.read(video_id, 0, len(frames))
    )  # What training read.
  load = input_pipeline.LoadClips(
    source, config.clips, tuple(config.model.clip_shape), train=False, saliency=cache
  )
  checked = 0
  for seq in sequences[::3]:
    expected = load(seq)["clips"][seq.valid]
    got = localizer_lib.window_clips(
      frames, masks, seq.starts[seq.valid], seq.ends[seq.valid], config
    )
    np.testing.assert_array_equal(got, expected)
    checked += len(got)
  assert checked >= 8


# The paper's class rule, Eqs. (3)-(4) ('paper'), against a NumPy reference written from the paper.

_K3 = CLASSES[:3]
_T3 = 160


def _paper_windows(class3_logit=1.0):
  """Hand-made window logits over 160 frames, 3 classes: (starts, ends, pro [H, 2], cla [H, 4]).

  [8, 64): flagged class 2 (v_spe 0.980); [72, 136): flagged class 1 (v_spe 0.973); windows
  starting in [48, 72) otherwise: flagged class 3 (they overlap both runs: frames covered by
  windows of two classes); starting at 136 or later: flagged but background; the rest are not
  flagged although their class logits say class 1 with v_spe ~ 1.
  """
  windows = clips_lib.enumerate_windows(_T3, (16, 32), 0.75)
  starts, ends = windows.starts, windows.ends
  pro = np.tile(np.float32([-3.0, 3.0]), (len(starts), 1))
  cla = np.zeros((len(starts), len(_K3) + 1), np.float32)
  for j, (s, e) in enumerate(zip(starts, ends)):
    if 8 <= s and e <= 64:
      cla[j, 2] = 5.0
    elif 72 <= s and e <= 136:
      cla[j, 1] = 4.7
    elif 48 <= s < 72:
      cla[j, 3] = class3_logit
    elif s >= 136:
      cla[j, 0] = 6.0
    else:
      pro[j] = [3.0, -3.0]
      cla[j, 1] = 30.0
  return starts, ends, pro, cla


def _paper_reference(starts, ends, pro, cla, gamma, min_len, num_frames=_T3):
  """Eqs. (1)-(4) as the paper writes them, frame by frame: (k', alpha_t(f|k') [T], runs)."""
  probs = np.exp(cla.astype(np.float64) - cla.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  l_fla = pro[:, 1] > pro[:, 0]  # Eq. (1).
  l_spe, v_spe = probs.argmax(-1), probs.max(-1)  # Eq. (2).
  # k': the action label with the highest mean v_spe over the (flagged) windows given that label.
  means = {
    k: v_spe[l_fla & (l_spe == k)].mean()
    for k in range(1, cla.shape[1])
    if (l_fla & (l_spe == k)).any()
  }
  k_prime = max(means, key=lambda k: (means[k], -k)) if means else 0
  alpha = np.zeros(num_frames)
  for t in range(num_frames):
    containing = [j for j in range(len(starts)) if starts[j] <= t < ends[j]]
    if containing and k_prime:  # Eq. (3): windows labelled k' over all windows containing f_t.
      alpha[t] = sum(v_spe[j] for j in containing if l_fla[j] and l_spe[j] == k_prime) / len(
        containing
      )
  labels = np.where(alpha > gamma, k_prime, 0)  # Eq. (4).
  runs, t = [], 0
  while t < num_frames:
    if labels[t]:
      e = t
      while e < num_frames and labels[e]:
        e += 1
      if e - t >= min_len:
        runs.append((k_prime, t, e, alpha[t:e].mean()))
      t = e
    else:
      t += 1
  return k_prime, alpha, runs


def _paper_localizer(**overrides):
  return localizer_lib.Localizer(
    _config(**{"detector.class_assignment": "paper", **overrides}), None, _K3
  )


@pytest.mark.parametrize(
  "class3_logit, gamma, k_prime",
  [
    (1.0, 0.6, 2),
    (1.0, 0.3, 2),
    (1.0, 0.9, 2),
    (8.0, 0.3, 3),  # Class 3's few windows have the highest mean (not sum) v_spe: k' = 3.
  ],
)
def test_paper_rule_matches_a_numpy_reference(class3_logit, gamma, k_prime):
  starts, ends, pro, cla = _paper_windows(class3_logit)
  loc = _paper_localizer(**{"detector.gamma": gamma})
  want_k, want_alpha, want_runs = _paper_reference(
    starts, ends, pro, cla, gamma, loc.config.detector.min_segment_frames
  )
  assert want_k == k_prime
  assert np.abs(want_alpha - gamma).min() > 1e-4  # No frame sits on the threshold.
  # The data hold every case: frames covered by flagged windows of two classes, unflagged windows
  # whose class logits would change k' if they counted, flagged background windows.
  labelled = [(pro[:, 1] > pro[:, 0]) & (cla.argmax(-1) == k) for k in (1, 2, 3)]
  cover = np.stack([[((starts <= t) & (t < ends) & m).any() for t in range(_T3)] for m in labelled])
  assert (cover.sum(0) >= 2).any()
  assert ((pro[:, 1] <= pro[:, 0]) & (cla.argmax(-1) > 0)).any()
  assert ((pro[:, 1] > pro[:, 0]) & (cla.argmax(-1) == 0)).any()
  if k_prime == 2:  # Counting the unflagged windows too would make class 1 k'.
    assert (
      _paper_reference(starts, ends, np.tile([-1.0, 1.0], (len(starts), 1)), cla, gamma, 1)[0] == 1
    )

  result = loc.localize_windows(starts, ends, pro, cla, _T3, 25.0)
  assert result.video_class == want_k
  np.testing.assert_allclose(result.frame_score, want_alpha, atol=2e-6)
  np.testing.assert_allclose(result.alpha[:, want_k - 1], want_alpha, atol=2e-6)
  assert want_runs
  assert [(s.class_index + 1, s.label, s.start_frame, s.end_frame) for s in result.segments] == [
    (k, _K3[k - 1], s, e) for k, s, e, _ in want_runs
  ]
  np.testing.assert_allclose(
    [s.score for s in result.segments], [r[3] for r in want_runs], rtol=1e-5
  )


def test_paper_rule_frames_of_another_class_are_not_k_prime_detections():
  # The removed 'video' rule thresholded the sum over every class and stamped k' on the runs:
  # the class-1 stretch [72, 136) became a class-2 detection. Eq. (3) conditioned on k' = 2 does not.
  starts, ends, pro, cla = _paper_windows()
  result = _paper_localizer().localize_windows(starts, ends, pro, cla, _T3, 25.0)
  assert result.video_class == 2
  old_sum = result.alpha.sum(-1)  # What 'video' thresholded.
  assert (old_sum[80:128] > 0.6).all()
  assert not result.frame_score[80:128].any()
  assert [s.class_index for s in result.segments] == [1]
  assert all(s.end_frame <= 72 for s in result.segments)
  # 'segment' keeps the class-1 stretch, as class 1.
  other = localizer_lib.Localizer(_config(**{"detector.class_assignment": "segment"}), None, _K3)
  segments = other.localize_windows(starts, ends, pro, cla, _T3, 25.0).segments
  assert any(s.class_index == 0 and s.start_frame >= 64 for s in segments)


def test_paper_rule_without_action_labels_gives_no_segment():
  starts, ends, pro, cla = _paper_windows()
  cla[pro[:, 1] > pro[:, 0]] = np.float32(
    [6.0, 0.0, 0.0, 0.0]
  )  # Every flagged window is background.
  for gamma in (0.6, 0.0):
    result = _paper_localizer().localize_windows(starts, ends, pro, cla, _T3, 25.0, gamma=gamma)
    assert result.video_class == 0 and result.segments == [] and not result.frame_score.any()
    assert _paper_reference(starts, ends, pro, cla, gamma, 1)[0] == 0


def test_paper_rule_gamma_argument_equals_a_config_with_that_gamma():
  starts, ends, pro, cla = _paper_windows()
  loc = _paper_localizer(**{"detector.gamma": 0.5})
  runs = {}
  for gamma in (0.3, 0.6, 0.9):
    expected = _paper_localizer(**{"detector.gamma": gamma}).localize_windows(
      starts, ends, pro, cla, _T3, 25.0
    )
    got = loc.localize_windows(starts, ends, pro, cla, _T3, 25.0, gamma=gamma)
    np.testing.assert_array_equal(got.frame_score, expected.frame_score)
    assert got.segments == expected.segments and got.video_class == expected.video_class == 2
    runs[gamma] = [(s.start_frame, s.end_frame) for s in got.segments]
  assert len(set(map(tuple, runs.values()))) == 3, runs  # Each gamma cuts elsewhere.


def test_paper_rule_replaces_video_which_is_rejected():
  assert localizer_lib.CLASS_ASSIGNMENTS == ("paper", "segment", "frame")
  assert "video" not in localizer_lib.CLASS_ASSIGNMENTS
  config = _config(**{"detector.class_assignment": "video"})
  with pytest.raises(ConfigError, match="'video' was removed: use 'paper'"):
    schema.validate_detector(config)
  with pytest.raises(ConfigError, match="use 'paper'"):
    localizer_lib.Localizer(config, None, _K3)
  schema.validate_detector(_config(**{"detector.class_assignment": "paper"}))


def test_paper_rule_default_stays_segment():

  assert schema.experiment_config().detector.class_assignment == "segment"
