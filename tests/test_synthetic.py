"""Tests of the synthetic dataset generator."""

import hashlib
import json
import pathlib

import numpy as np
import pytest

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import synthetic
from segtube_jax.errors import ConfigError, DatasetError

# Tiny but complete: 6 videos -> 4 training, 1 validation, 1 testing.
SMALL = dict(size=64, min_frames=150, max_frames=180, workers=1)


def _hashes(root: pathlib.Path) -> dict[str, str]:
  return {
    str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
    for p in sorted(root.rglob("*"))
    if p.is_file()
  }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[pathlib.Path, dict]:
  root = tmp_path_factory.mktemp("syn") / "a"
  return root, synthetic.generate_dataset(root, 6, seed=1, **SMALL)


def test_same_arguments_give_the_same_bytes_whatever_the_workers(small, tmp_path):
  root, _ = small
  again = tmp_path / "b"
  synthetic.generate_dataset(again, 6, seed=1, **dict(SMALL, workers=2))
  first, second = _hashes(root), _hashes(again)
  assert any(name.endswith(".mp4") for name in first) and any(
    name.startswith("masks") for name in first
  )
  assert first == second


def test_another_seed_gives_other_videos(small, tmp_path):
  root, _ = small
  other = tmp_path / "c"
  synthetic.generate_dataset(other, 6, seed=2, **SMALL)
  first, second = _hashes(root), _hashes(other)
  assert first["annotations.json"] != second["annotations.json"]
  assert all(
    first[f"videos/synth_0000{i}.mp4"] != second[f"videos/synth_0000{i}.mp4"] for i in range(6)
  )


def test_dataset_loads_and_has_the_promised_structure(small):
  root, summary = small
  ds = dataset_lib.load_dataset(root)  # Also checks media headers against the annotations.
  assert len(ds.classes) >= 5 and ds.classes == list(synthetic.MOTIONS[:6])
  assert [len(ds.subset(s)) for s in dataset_lib.SUBSETS] == [4, 1, 1]
  mask_frames = 0
  for vid, info in ds.videos.items():
    assert 150 <= info.num_frames <= 180 and info.fps == 25.0
    reader = ds.open_frames(vid)
    assert (reader.num_frames, reader.height, reader.width) == (info.num_frames, 64, 64)
    spans = [inst.frame_span(info.fps) for inst in info.annotations]
    assert 1 <= len(spans) <= 2
    assert all(24 <= fe - fs <= 96 for fs, fe in spans)
    assert spans[0][0] >= 8 and spans[-1][1] <= info.num_frames - 8  # Idle before and after.
    if len(spans) == 2:
      assert spans[1][0] - spans[0][1] >= 16  # Idle frames between the instances.
    action = sorted(f for fs, fe in spans for f in range(fs, fe))
    masks = ds.masks(vid)
    assert masks.indices == action  # Mask files exactly on the instance frames.
    stack, present = masks.read(action[0], action[-1] + 1)
    assert present[np.array(action) - action[0]].all()
    assert stack[np.array(action) - action[0]].sum((1, 2)).min() > 10  # Non-empty.
    mask_frames += len(action)
  assert summary["mask_frames"] == mask_frames == summary["action_frames"]
  assert summary["videos_per_subset"] == {"training": 4, "validation": 1, "testing": 1}


def test_masks_on_disk_are_the_rendered_actor_support(small):
  root, _ = small
  opts = synthetic.Options(**SMALL)
  plan = synthetic.plan_dataset(6, 1, opts)[0]
  frames, masks = synthetic.render_video(plan, opts)
  reader = dataset_lib.load_dataset(root).masks(plan.video_id)
  for _, fs, fe in plan.instances:
    np.testing.assert_array_equal(reader.read(fs, fe)[0], masks[fs:fe])
  # The masked pixels show the actor's colour (up to texture), not the background.
  actor = plan.appearance["actor_color"]
  inside = frames[masks].astype(float).mean(0)
  outside = frames[~masks].astype(float).mean(0)
  assert np.linalg.norm(inside - actor) < np.linalg.norm(outside - actor)


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(num_videos=0), "num_videos"),
    (dict(size=16), "size"),
    (dict(size=63), "size"),
    (dict(min_frames=300, max_frames=200), "min_frames"),
    (dict(min_frames=30, max_frames=200), "min_frames"),
    (dict(num_classes=len(synthetic.MOTIONS) + 1), "num_classes"),
    (dict(min_instance=50, max_instance=40), "min_instance"),
    (dict(split=(0.5, 0.2, 0.2)), "split"),
    (dict(frame_format="gif"), "frame_format"),
    (dict(actor_size=(0.2, 0.1)), "actor_size must be a range"),
    (dict(actor_size=(0.01, 0.1)), "actor_size must be a range"),
    (dict(actor_size=(0.1, 0.3)), "actor_size must be a range"),
    (dict(colour="red"), "unknown"),
  ],
)
def test_bad_arguments_raise_clear_errors(tmp_path, kwargs, message):
  num_videos = kwargs.pop("num_videos", 2)
  with pytest.raises(ConfigError, match=message):
    synthetic.generate_dataset(tmp_path / "x", num_videos, 0, **kwargs)
  assert not (tmp_path / "x").exists()


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
  (tmp_path / "keep.txt").write_text("x")
  with pytest.raises(DatasetError, match="not empty"):
    synthetic.generate_dataset(
      tmp_path, 1, 0, min_frames=40, max_frames=40, min_instance=24, max_instance=24
    )
  summary = synthetic.generate_dataset(
    tmp_path, 1, 0, overwrite=True, min_frames=40, max_frames=40, min_instance=24, max_instance=24
  )
  assert summary["num_videos"] == 1 and (tmp_path / "keep.txt").exists()


def test_frame_folders_and_cli(tmp_path, capsys):
  out = tmp_path / "frames_ds"
  rc = synthetic.main(
    [
      "--out",
      str(out),
      "--num_videos",
      "3",
      "--seed",
      "0",
      "--size",
      "32",
      "--min_frames",
      "60",
      "--max_frames",
      "60",
      "--frame_format",
      "png",
      "--workers",
      "1",
    ]
  )
  assert rc == 0
  printed = capsys.readouterr().out
  assert "3 videos" in printed and "training 1, validation 1, testing 1" in printed
  ds = dataset_lib.load_dataset(out)
  assert sorted(p.name for p in (out / "frames").iterdir()) == sorted(ds.videos)
  assert ds.open_frames("synth_00000").read(0, 2).shape == (2, 32, 32, 3)
  data = json.loads((out / "annotations.json").read_text())
  assert data["generator"]["seed"] == 0 and data["version"] == synthetic.VERSION
  assert synthetic.main(["--out", str(tmp_path / "bad"), "--num_videos", "1", "--size", "20"]) == 2
  assert "size must be" in capsys.readouterr().err


def test_actor_size_sets_the_actor_scale(tmp_path, capsys):
  short = dict(size=32, min_frames=40, max_frames=40, min_instance=24, max_instance=24)
  areas = {}
  for lo, hi in ((0.05, 0.06), (0.22, 0.25)):
    opts = synthetic.Options(actor_size=(lo, hi), **short)
    axes = [synthetic.sample_appearance(0, i, opts)["a"] / opts.size for i in range(20)]
    assert lo <= min(axes) and max(axes) <= hi
    _, masks = synthetic.render_video(synthetic.plan_video(0, 1, "training", 0, opts), opts)
    areas[lo] = masks.sum(axis=(1, 2)).mean()
  assert areas[0.22] > 8 * areas[0.05]  # Area grows with the square of the size.
  out = tmp_path / "big"
  args = ["--out", str(out), "--num_videos", "1", "--workers", "1", "--actor_size=0.2,0.22"]
  for key, value in short.items():
    args += [f"--{key}", str(value)]
  assert synthetic.main(args) == 0
  assert json.loads((out / "annotations.json").read_text())["generator"]["actor_size"] == [
    0.2,
    0.22,
  ]
  assert (
    synthetic.main(["--out", str(tmp_path / "bad"), "--num_videos", "1", "--actor_size=0.3,0.2"])
    == 2
  )
  assert "actor_size must be a range" in capsys.readouterr().err
