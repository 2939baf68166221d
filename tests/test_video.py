"""Tests of segtube_jax.data.video: PyAV decoding, frame and mask folders, the writer."""

import numpy as np
from PIL import Image
import pytest

from segtube_jax.data import video
from segtube_jax.errors import VideoError


def _marked_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
  """Frames with a flat background and a bright square whose position encodes the frame index."""
  frames = np.full((n, h, w, 3), 40, np.uint8)
  for i in range(n):
    x = (i * 3) % (w - 8)
    frames[i, 8:16, x : x + 8] = 230
  return frames


def test_ucf101_clip(shared_data):
  reader = video.open_frames(shared_data / "ucf101" / "v_ApplyEyeMakeup_g01_c01.avi")
  assert (reader.num_frames, reader.width, reader.height, reader.fps) == (164, 320, 240, 25.0)
  frames = reader.read()
  assert frames.shape == (164, 240, 320, 3) and frames.dtype == np.uint8
  # Random access (backwards, then forwards) returns exactly the frames of a full decode.
  np.testing.assert_array_equal(reader.read(150, 160), frames[150:160])
  np.testing.assert_array_equal(reader.read(3, 5), frames[3:5])
  small = reader.read(10, 12, size=(112, 171))
  assert small.shape == (2, 112, 171, 3)
  chunks = list(reader.iter_chunks(50))
  assert [s for s, _ in chunks] == [0, 50, 100, 150]
  np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), frames)


def test_mp4_roundtrip_and_seek(tmp_path):
  frames = _marked_frames(120)
  path = tmp_path / "v.mp4"
  assert video.write_video(path, frames, fps=25) == 120
  reader = video.open_frames(path)
  assert (reader.num_frames, reader.height, reader.width, reader.fps) == (120, 48, 64, 25.0)
  full = reader.read()
  assert np.abs(full.astype(int) - frames).mean() < 3  # Lossy, but close.
  # A far jump seeks to a keyframe; its frames equal the sequential decode exactly.
  np.testing.assert_array_equal(reader.read(100, 110), full[100:110])
  np.testing.assert_array_equal(reader.read(5, 9), full[5:9])


def test_write_video_is_deterministic(tmp_path):
  frames = _marked_frames(30)
  video.write_video(tmp_path / "a.mp4", frames)
  video.write_video(tmp_path / "b.mp4", frames)
  assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
  assert not list(tmp_path.glob(".*tmp*"))  # No temporary file left behind.


def test_frame_and_mask_folders_davis(shared_data):
  seq = shared_data / "davis2016" / "blackswan"
  frames = video.open_frames(seq / "frames")
  masks = video.MaskFolderReader(seq / "masks", frames.num_frames)
  assert (frames.num_frames, frames.height, frames.width) == (50, 480, 854)
  assert frames.frame_names()[:2] == ["00000", "00001"]
  assert masks.indices == list(range(50))
  m, present = masks.read(0, 50)
  assert m.shape == (50, 480, 854) and present.all()
  assert 0.02 < m.mean() < 0.5
  f = frames.read(10, 12, size=(240, 427))
  assert f.shape == (2, 240, 427, 3)


def test_truncated_video_is_a_clear_error(tmp_path, shared_data):
  data = (shared_data / "ucf101" / "v_ApplyEyeMakeup_g01_c01.avi").read_bytes()
  bad = tmp_path / "truncated.avi"
  bad.write_bytes(data[: len(data) // 3])
  with pytest.raises(VideoError, match="truncated.avi"):
    video.open_frames(bad).read()


def test_not_a_video(tmp_path):
  bad = tmp_path / "notes.mp4"
  bad.write_text("this is not a video")
  with pytest.raises(VideoError, match="notes.mp4: not a readable video"):
    video.open_frames(bad)
  with pytest.raises(VideoError, match="no such video"):
    video.open_frames(tmp_path / "missing.mp4")


def test_frame_range_outside_video(tmp_path):
  video.write_video(tmp_path / "v.mp4", _marked_frames(10))
  with pytest.raises(VideoError, match=r"frame range \[5, 20\) is outside"):
    video.open_frames(tmp_path / "v.mp4").read(5, 20)


def test_frame_folder_errors(tmp_path):
  folder = tmp_path / "frames"
  folder.mkdir()
  with pytest.raises(VideoError, match="no frame images"):
    video.FrameFolderReader(folder)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "00000.png")
  Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(folder / "00001.png")
  reader = video.FrameFolderReader(folder)
  with pytest.raises(VideoError, match="00001.png: frame size 8x9 differs"):
    reader.read()
  (folder / "00005.png").write_bytes(b"not a png")
  with pytest.raises(VideoError, match="consecutive"):
    video.FrameFolderReader(folder)


def test_mask_size_mismatch(tmp_path):
  folder = tmp_path / "masks"
  folder.mkdir()
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "000000.png")
  with pytest.raises(VideoError, match="mask size 8x8 differs from the frame size 16x16"):
    video.MaskFolderReader(folder).read(0, 1, shape=(16, 16))
