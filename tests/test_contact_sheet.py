"""Tests of the contact sheet writer."""

import json
import pathlib

import numpy as np
from PIL import Image
import pytest

from segtube_jax.data import contact_sheet, synthetic
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.errors import DatasetError

RED = np.array(contact_sheet.MASK_COLOR)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> pathlib.Path:
  root = tmp_path_factory.mktemp("sheet") / "syn"
  synthetic.generate_dataset(root, 2, seed=0, size=64, min_frames=100, max_frames=100, workers=1)
  return root


@pytest.fixture
def davis_like(tmp_path) -> pathlib.Path:
  """A frame-folder dataset, DAVIS style: 5-digit names, a mask on every frame, no instances."""
  root = tmp_path / "davis"
  (root / "frames" / "bear").mkdir(parents=True)
  (root / "masks" / "bear").mkdir(parents=True)
  rng = np.random.default_rng(0)
  for f in range(12):
    Image.fromarray(rng.integers(0, 200, (96, 160, 3), dtype=np.uint8)).save(
      root / "frames" / "bear" / f"{f:05d}.jpg"
    )
    mask = np.zeros((96, 160), np.uint8)
    mask[20 + f : 60 + f, 40:100] = 255
    Image.fromarray(mask).save(root / "masks" / "bear" / f"{f:05d}.png")
  (root / "annotations.json").write_text(
    json.dumps(
      {
        "version": "test",
        "classes": ["bear"],
        "database": {
          "bear": {"subset": "validation", "fps": 25.0, "num_frames": 12, "annotations": []}
        },
      }
    )
  )
  return root


def _tiles(sheet: np.ndarray, num: int, tile_h: int, tile_w: int) -> list[np.ndarray]:
  _, boxes, _ = contact_sheet.sheet_layout(num, tile_h, tile_w)
  return [sheet[y : y + tile_h, x : x + tile_w] for x, y in boxes]


def _has_red(tile: np.ndarray) -> bool:
  return bool((tile == RED).all(-1).any())


def test_select_frames_even_and_around_instances():
  assert contact_sheet.select_frames(160, [], 16, "even") == list(range(5, 160, 10))
  assert contact_sheet.select_frames(5, [], 16) == [0, 1, 2, 3, 4]
  picks = contact_sheet.select_frames(300, [(100, 140)], 16)
  assert picks == sorted(set(picks)) and len(picks) == 16
  around = sum(90 <= f < 150 for f in picks)
  assert around >= 10  # 20 % of the video gets most of the tiles ...
  assert picks[0] < 90 and picks[-1] >= 150  # ... and the idle parts keep a few.
  with pytest.raises(ValueError, match="spacing"):
    contact_sheet.select_frames(10, [], 4, "random")


def test_sheet_of_a_synthetic_video(synth, tmp_path):
  ds = dataset_lib.load_dataset(synth)
  vid = sorted(ds.videos)[0]
  out = contact_sheet.write_contact_sheet(synth, vid, tmp_path / "s.png", num_frames=16)
  sheet = np.asarray(Image.open(out).convert("RGB"))
  (width, height), _, _ = contact_sheet.sheet_layout(16, 128, 128)  # 64 px frames -> 128 px tiles.
  assert (sheet.shape[1], sheet.shape[0]) == (width, height) and width == 8 * 130 + 2
  _, frames = contact_sheet.render_contact_sheet(ds, vid, 16)
  masks = ds.masks(vid)
  with_mask = [masks.has(f) for f in frames]
  assert any(with_mask) and not all(with_mask)
  for tile, has in zip(_tiles(sheet, 16, 128, 128), with_mask):
    assert _has_red(tile) == has
  # Red outline pixels lie on the (upscaled) mask of their frame.
  k = with_mask.index(True)
  tile = _tiles(sheet, 16, 128, 128)[k]
  big = masks.read_one(frames[k]).repeat(2, 0).repeat(2, 1)
  assert big[(tile == RED).all(-1)].all()


def test_sheet_of_a_frame_folder_dataset(davis_like, tmp_path):
  out = contact_sheet.write_contact_sheet(
    davis_like, "bear", tmp_path / "bear.png", num_frames=6, tile_size=128
  )
  sheet = np.asarray(Image.open(out).convert("RGB"))
  tile_h, tile_w = contact_sheet.tile_shape(96, 160, 128)
  assert (tile_h, tile_w) == (77, 128)
  (width, height), _, _ = contact_sheet.sheet_layout(6, tile_h, tile_w)
  assert (sheet.shape[1], sheet.shape[0]) == (width, height)
  assert all(_has_red(t) for t in _tiles(sheet, 6, tile_h, tile_w))


def test_unknown_video_and_cli(synth, tmp_path, capsys):
  with pytest.raises(DatasetError, match="no video 'nope'"):
    contact_sheet.write_contact_sheet(synth, "nope", tmp_path / "x.png")
  assert (
    contact_sheet.main(
      ["--root", str(synth), "--all", "--out", str(tmp_path / "all"), "--num_frames", "4"]
    )
    == 0
  )
  assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
    "synth_00000.png",
    "synth_00001.png",
  ]
  one = tmp_path / "one.png"
  assert (
    contact_sheet.main(["--root", str(synth), "--video_id", "synth_00001", "--out", str(one)]) == 0
  )
  assert Image.open(one).size[0] == 8 * 130 + 2
  assert contact_sheet.main(["--root", str(synth), "--video_id", "nope", "--out", str(one)]) == 2
  assert "no video 'nope'" in capsys.readouterr().err
