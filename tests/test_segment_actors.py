"""Tests of the segmentation CLI (python -m segtube_jax.segment_actors)."""

import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from segtube_jax import cli as cli_lib
from segtube_jax import segment_actors as cli
from segtube_jax.errors import ConfigError
from segtube_jax.evaluation.masks import region_similarity
from segtube_jax.schema import segmentation_config
from segtube_jax.spatial import testing


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory):
  frames, masks = testing.moving_actor_clip(6, (48, 64), seed=3)
  folder = tmp_path_factory.mktemp("frames")
  for i, f in enumerate(frames):
    Image.fromarray(f).save(folder / f"{i + 10:05d}.jpg", quality=95)
  return folder, masks


def _masks(folder: pathlib.Path) -> tuple[list[str], np.ndarray]:
  files = sorted(folder.glob("*.png"))
  return [p.name for p in files], np.stack([np.asarray(Image.open(p)) for p in files])


def test_frames_folder_with_span(frame_folder, tmp_path, capsys):
  folder, masks = frame_folder
  assert (
    cli.main(["--frames", str(folder), "--out", str(tmp_path), "--start", "1", "--end", "4"]) == 0
  )
  assert "wrote 6 masks" in capsys.readouterr().out
  names, out = _masks(tmp_path)
  assert names == [f"{i:05d}.png" for i in range(10, 16)]  # Stems of the frames.
  assert set(np.unique(out)) <= {0, 255}
  assert not out[0].any() and not out[5].any()
  assert region_similarity(out[1:5] > 0, masks[1:5]).mean() > 0.8


def test_video_file_masks_are_numbered(tmp_path):
  video = pytest.importorskip("segtube_jax.data.video")
  frames, masks = testing.moving_actor_clip(6, (48, 64), seed=4)
  try:
    video.write_video(tmp_path / "clip.mp4", frames, fps=25)
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"no video encoder: {e}")
  assert (
    cli.main(
      [
        "--video",
        str(tmp_path / "clip.mp4"),
        "--out",
        str(tmp_path / "m"),
        "--set",
        "refine.enabled=False",
        "--start",
        "2",
      ]
    )
    == 0
  )
  names, out = _masks(tmp_path / "m")
  assert names == [f"{i:05d}.png" for i in range(6)]
  assert not out[:2].any()
  assert region_similarity(out[2:] > 0, masks[2:]).mean() > 0.7


@pytest.mark.parametrize(
  "args, message",
  [
    (["--start", "4", "--end", "2"], "empty"),
    (["--end", "99"], "frames"),
    (["--set", "beta=2.0"], "beta"),
    (["--set", "nope=1"], "no config key"),
  ],
)
def test_bad_arguments_exit_2(frame_folder, tmp_path, capsys, args, message):
  assert cli.main(["--frames", str(frame_folder[0]), "--out", str(tmp_path)] + args) == 2
  assert message in capsys.readouterr().err


def test_missing_input_exits_2(tmp_path, capsys):
  assert cli.main(["--frames", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert "no such video file or frame folder" in err and err.count("nothing") == 1


def test_overrides():
  c = cli_lib.apply_overrides(
    segmentation_config(), ["flow.preset=medium", "lambda_spatial=2.0", "refine.enabled=False"]
  )
  assert c.flow.preset == "medium" and c.lambda_spatial == 2.0 and not c.refine.enabled
  with pytest.raises(ConfigError, match="key=value"):
    cli_lib.apply_overrides(segmentation_config(), ["beta"])
  with pytest.raises(ConfigError, match="type"):
    cli_lib.apply_overrides(segmentation_config(), ["work_height='tall'"])


@pytest.mark.parametrize("module", ["segment_actors", "segment"])
def test_module_entry_point(frame_folder, tmp_path, module):
  """Both the module and its former name (issue 12's command), which says the new one."""
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      f"segtube_jax.{module}",
      "--frames",
      str(frame_folder[0]),
      "--out",
      str(tmp_path),
    ],
    capture_output=True,
    text=True,
    check=False,
    cwd=pathlib.Path(__file__).resolve().parents[1],
  )
  assert proc.returncode == 0, proc.stderr
  assert "wrote 6 masks" in proc.stdout
  assert len(list(tmp_path.glob("*.png"))) == 6
  assert ("is now segtube_jax.segment_actors" in proc.stderr) == (module == "segment")
