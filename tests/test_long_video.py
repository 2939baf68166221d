"""Long videos in bounded memory: the streamed generator and ``detect`` chunk by chunk.

Memory cannot be asserted by timing or RSS on a shared CPU, so these tests assert what keeps it
flat: the generator renders scene by scene, detect decodes every frame once in forward reads of
at most one chunk plus context, and writes each chunk's masks and overlay frames before it
decodes the next; the detections do not depend on the chunk size.
"""

import json
import pathlib

import numpy as np
import pytest

from segtube_jax.data import long_video
from segtube_jax.data import video as video_lib
from segtube_jax.errors import ConfigError
from tests import detector_testing
from tests.test_detect_videos import cheap_copy

FRAMES = 192  # Three chunks of 64 frames.


@pytest.fixture(scope="module")
def cheap_workdir(tiny_synthetic, tmp_path_factory):
  """The whole-video detector (every window flagged as one class) with a quick segmentation stage."""
  source = detector_testing.biased_workdir(tiny_synthetic, tmp_path_factory)
  return cheap_copy(source, tmp_path_factory.mktemp("cheap") / "w")


@pytest.fixture(scope="module")
def long_mp4(tmp_path_factory):
  """A FRAMES-frame streamed synthetic video at 32x32 (two scenes)."""
  path = tmp_path_factory.mktemp("long") / "long.mp4"
  long_video.write_long_video(
    path, long_video.LongVideoOptions(num_frames=FRAMES, height=32, width=32, seed=3)
  )
  return path


def test_generator_writes_the_frames_and_instances_scene_by_scene(long_mp4, tmp_path):
  reader = video_lib.open_frames(long_mp4)
  assert (reader.num_frames, reader.height, reader.width, reader.fps) == (FRAMES, 32, 32, 25.0)
  record = json.loads(long_mp4.with_name("long.mp4.json").read_text())
  assert record["num_frames"] == FRAMES and record["classes"] == list(
    long_video.synthetic.MOTIONS[:6]
  )
  spans = [(fs, fe) for _, fs, fe in record["instances"]]
  assert spans and all(0 <= fs < fe <= FRAMES for fs, fe in spans) and spans == sorted(spans)
  opts = long_video.LongVideoOptions(
    num_frames=300, height=32, width=48, seed=3, min_scene=60, max_scene=90
  )
  scenes = list(long_video.iter_scenes(opts))
  assert [first for first, _, _ in scenes] == list(
    np.cumsum([0] + [len(f) for _, f, _ in scenes[:-1]])
  )
  assert sum(len(f) for _, f, _ in scenes) == 300 and max(len(f) for _, f, _ in scenes) <= 90
  assert all(f.shape[1:] == (32, 48, 3) and f.dtype == np.uint8 for _, f, _ in scenes)
  # A scene change is a cut: consecutive scenes differ in appearance.
  assert np.abs(scenes[0][1][-1].astype(int) - scenes[1][1][0].astype(int)).mean() > 10
  with pytest.raises(ConfigError, match="height must be an even number >= 32"):
    long_video.write_long_video(
      tmp_path / "x.mp4", long_video.LongVideoOptions(num_frames=10, height=31)
    )


def test_detect_streams_decode_masks_and_overlay_chunk_by_chunk(
  cheap_workdir, long_mp4, tmp_path, monkeypatch
):
  from segtube_jax import detect_videos  # pylint: disable=import-outside-toplevel

  out = tmp_path / "out"
  events = []  # (read start, read stop, mask files on disk, overlay frames encoded) at every decode.
  encoded = [0]
  read, write_video = video_lib.VideoReader.read, video_lib.write_video

  def counting_read(self, start=0, stop=None, size=None):
    masks = len(list((out / "masks").glob("*.png"))) if (out / "masks").is_dir() else 0
    events.append((start, stop, masks, encoded[0]))
    return read(self, start, stop, size)

  def counting_write(path, frames, fps=25.0, **kwargs):
    def counted():
      for frame in frames:
        yield frame
        encoded[0] += 1

    return write_video(path, counted(), fps, **kwargs)

  monkeypatch.setattr(video_lib.VideoReader, "read", counting_read)
  monkeypatch.setattr(video_lib, "write_video", counting_write)
  result = detect_videos.detect_video(str(long_mp4), str(cheap_workdir), str(out), chunk_frames=64)
  monkeypatch.undo()
  chunks = [c["frames"] for c in result["iterations"]]
  assert chunks == [[s, min(s + 64, FRAMES)] for s in range(0, FRAMES, 64)]
  # Forward reads only, each frame decoded once, never more than a chunk and its 32 frames of context each side.
  reads = [(a, b) for a, b, _, _ in events if b > a]
  assert (
    reads[0][0] == 0
    and reads[-1][1] == FRAMES
    and all(p[1] == n[0] for p, n in zip(reads, reads[1:]))
  )
  assert max(b - a for a, b in reads) <= 64 + 2 * 32
  # When chunk k + 1 is decoded, chunk k's masks are on disk and its overlay frames are encoded.
  mask_frames = sorted(int(p.stem) for p in (out / "masks").glob("*.png"))
  assert len(mask_frames) > FRAMES // 2  # The whole-video detector segments every localized frame.
  for (a, b, masks, frames), (_, stop) in zip([e for e in events if e[1] > e[0]][1:], chunks):
    assert frames == stop and masks == sum(t < stop for t in mask_frames), (a, b, stop)
  assert video_lib.open_frames(out / "overlay.mp4").num_frames == FRAMES == encoded[0]
  # The chunk size changes the memory, not the detections.
  whole = detect_videos.detect_video(
    str(long_mp4), str(cheap_workdir), str(tmp_path / "whole"), chunk_frames=FRAMES
  )
  assert [c["frames"] for c in whole["iterations"]] == [[0, FRAMES]]
  assert whole["detections"] == result["detections"] and result["detections"][0]["frames"] == [
    0,
    FRAMES,
  ]
  assert sorted(int(p.stem) for p in (tmp_path / "whole" / "masks").glob("*.png")) == mask_frames


def test_chunk_smaller_than_two_windows_is_a_clear_error(cheap_workdir, long_mp4, tmp_path):
  from segtube_jax import detect_videos  # pylint: disable=import-outside-toplevel

  with pytest.raises(
    ConfigError, match=r"chunk_frames must be >= 64 \(twice the longest window\), got 40"
  ):
    detect_videos.detect_video(
      str(long_mp4), str(cheap_workdir), str(tmp_path / "out"), chunk_frames=40
    )
  assert not (pathlib.Path(tmp_path / "out") / "detections.json").exists()
