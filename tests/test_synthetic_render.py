"""Tests of one synthetic video's plan and rendering (segtube_jax.data.synthetic_render)."""

import collections

import numpy as np

from segtube_jax.data import synthetic_render


def test_first_instance_classes_go_round_robin_within_each_subset():
  opts = synthetic_render.Options(num_classes=6)
  plans = synthetic_render.plan_dataset(60, 0, opts)
  for subset, wanted in [("training", 36), ("validation", 12), ("testing", 12)]:
    firsts = [p.instances[0][0] for p in plans if p.subset == subset]
    assert len(firsts) == wanted
    assert collections.Counter(firsts) == {c: wanted // 6 for c in range(6)}


def test_timelines_respect_the_length_bounds_over_many_videos():
  opts = synthetic_render.Options(num_classes=7)
  plans = synthetic_render.plan_dataset(300, 3, opts)
  counts = collections.Counter(len(p.instances) for p in plans)
  assert set(counts) == {1, 2} and min(counts.values()) > 50
  same = [p.instances[0][0] == p.instances[1][0] for p in plans if len(p.instances) == 2]
  assert 0 < sum(same) < len(same)  # Two-instance videos: same class or different.
  for p in plans:
    assert 150 <= p.num_frames <= 400
    assert all(24 <= fe - fs <= 96 for _, fs, fe in p.instances)


def test_appearance_is_independent_of_the_class():
  """The class changes nothing but the motion: idle frames are pixel-identical across classes."""
  opts = synthetic_render.Options(size=32, min_frames=150, max_frames=150, num_classes=7)
  plans = [synthetic_render.plan_video(0, 5, "training", c, opts) for c in range(7)]
  fs = plans[0].instances[0][1]
  renders = [synthetic_render.render_video(p, opts) for p in plans]
  for p, (frames, masks) in zip(plans[1:], renders[1:]):
    assert [(s, e) for _, s, e in p.instances] == [(s, e) for _, s, e in plans[0].instances]
    np.testing.assert_array_equal(frames[:fs], renders[0][0][:fs])
    np.testing.assert_array_equal(masks[:fs], renders[0][1][:fs])
  # ... while the action frames differ between every pair of classes.
  for i in range(7):
    for j in range(i + 1, 7):
      assert (renders[i][1][fs : fs + 24] != renders[j][1][fs : fs + 24]).any()


def test_class_motions_are_strong_and_idling_is_calm():
  """Consecutive actor masks overlap much less during actions than while idling."""
  opts = synthetic_render.Options(
    size=64, min_frames=150, max_frames=200, num_classes=7, dash_prob=0.0
  )
  for c in range(7):
    plan = synthetic_render.plan_video(4, 10 + c, "training", c, opts)
    _, masks = synthetic_render.render_video(plan, opts)
    iou = (masks[1:] & masks[:-1]).sum((1, 2)) / (masks[1:] | masks[:-1]).sum((1, 2))
    action = np.zeros(plan.num_frames, bool)
    for _, fs, fe in plan.instances:
      action[fs:fe] = True
    pairs = action[1:] & action[:-1]
    idle = ~action[1:] & ~action[:-1]
    assert iou[pairs].mean() < 0.9 < iou[idle].mean(), synthetic_render.MOTIONS[c]
