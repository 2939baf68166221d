"""Tests of the per-frame thread policy (segtube_jax.spatial.parallel) and its use."""

import concurrent.futures
import multiprocessing
import os

import numpy as np

from segtube_jax.schema import segmentation_config
from segtube_jax.spatial import flow, parallel, segment_video, testing


def _threads_in_a_worker() -> int:
  return parallel.frame_threads(0)


def test_frame_threads_every_core_here_one_in_a_pool_worker():
  assert parallel.frame_threads(3) == 3
  assert parallel.frame_threads(0) == len(os.sched_getaffinity(0))
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
    assert pool.submit(_threads_in_a_worker).result() == 1


def test_map_frames_keeps_the_order():
  items = list(range(7))
  assert parallel.map_frames(lambda x: x * x, items, 3) == [x * x for x in items]
  assert parallel.map_frames(lambda x: x, [], 4) == []


def test_masks_do_not_depend_on_the_thread_count():
  frames = testing.moving_actor_clip(6, (48, 64))[0]
  config = segmentation_config()
  masks = {}
  for threads in (1, 2):
    with config.unlocked():
      config.threads = threads
    masks[threads] = segment_video(frames, config=config)
  assert masks[1].any()
  np.testing.assert_array_equal(masks[1], masks[2])


def test_flow_does_not_depend_on_the_thread_count():
  frames = testing.moving_actor_clip(7, (96, 128), seed=3)[0]
  one = flow.dense_flows(frames, "fast", (64, 85), 1, threads=1)
  for threads in (2, 3):
    many = flow.dense_flows(frames, "fast", (64, 85), 1, threads=threads)
    assert np.abs(one[0]).max() > 0.5  # The actor moves: the fields are not trivially equal.
    for a, b in zip(one, many):
      np.testing.assert_array_equal(a, b)
