"""Tests of segtube_jax.evaluation.davis: segmenting and scoring DAVIS-style folders."""

import contextlib
import io
import json
import math
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
from PIL import Image
import pytest
from scipy import ndimage

from segtube_jax.cli import apply_overrides
from segtube_jax.data import contact_sheet
from segtube_jax.errors import ConfigError
from segtube_jax.evaluation import davis, video_transforms
from segtube_jax.schema import segmentation_config
from segtube_jax.spatial import initial_masks, segment_video
from segtube_jax.spatial.testing import moving_actor_clip
from tests.conftest import PROJECT_ROOT

SEQUENCES = ("actor-a", "actor-b")
SIZE = (64, 96)
SET = ["refine.enabled=False"]
WORST = 3


def _write_sequence(root, name, num_frames, seed, empty=()):
  frames, masks = moving_actor_clip(num_frames=num_frames, size=SIZE, seed=seed)
  masks[list(empty)] = False
  (root / name / "frames").mkdir(parents=True)
  (root / name / "masks").mkdir(parents=True)
  for t, (frame, mask) in enumerate(zip(frames, masks)):
    Image.fromarray(frame).save(root / name / "frames" / f"{t:05d}.jpg", quality=95)
    Image.fromarray(mask.astype(np.uint8) * 255).save(root / name / "masks" / f"{t:05d}.png")


def _make_root(root):
  _write_sequence(root, SEQUENCES[0], 7, seed=0)
  _write_sequence(root, SEQUENCES[1], 8, seed=1, empty=(2, 3, 7))  # Some empty ground truth.
  return root


def _cli(*args):
  """(exit status, stdout, stderr) of the command run in this process."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    status = davis.main(["davis", *map(str, args)])
  return status, out.getvalue(), err.getvalue()


def _cli_one_worker(root, out, *args):
  """The command on one worker with the tests' config overrides."""
  return _cli("--root", root, "--out", out, "--workers", 1, *args, *[f"--set={s}" for s in SET])


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
  """The dataset, the output folder and the printed table of one CLI run (workers=1)."""
  root = _make_root(tmp_path_factory.mktemp("davis") / "data")
  out = root.parent / "eval"
  status, stdout, stderr = _cli(
    "--root",
    root,
    "--out",
    out,
    "--workers",
    1,
    "--save_masks",
    "--worst",
    WORST,
    *[f"--set={s}" for s in SET],
  )
  assert status == 0, stderr
  return root, out, stdout


# An independent reference: IoU and a disk-dilation boundary F, as the DAVIS 2016 code does.
def _bmap(seg):
  e, s, se = (np.zeros_like(seg) for _ in range(3))
  e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
  b = (seg ^ e) | (seg ^ s) | (seg ^ se)
  b[-1, :] = seg[-1, :] ^ e[-1, :]
  b[:, -1] = seg[:, -1] ^ s[:, -1]
  b[-1, -1] = False
  return b


def _boundary_f(pred, gt):
  r = math.ceil(0.008 * math.hypot(*gt.shape))
  y, x = np.mgrid[-r : r + 1, -r : r + 1]
  disk = x**2 + y**2 <= r**2
  pb, gb = _bmap(pred), _bmap(gt)
  n_p, n_g = pb.sum(), gb.sum()
  if n_p == 0 or n_g == 0:
    precision, recall = (1.0 if n_p == 0 else 0.0), (1.0 if n_g == 0 else 0.0)
  else:
    precision = (pb & ndimage.binary_dilation(gb, structure=disk)).sum() / n_p
    recall = (gb & ndimage.binary_dilation(pb, structure=disk)).sum() / n_g
  return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _reference(root, out, name):
  stems = sorted(p.stem for p in (root / name / "masks").glob("*.png"))
  gt = [np.asarray(Image.open(root / name / "masks" / f"{s}.png")) > 127 for s in stems]
  pred = [np.asarray(Image.open(out / "masks" / name / f"{s}.png")) > 127 for s in stems]
  j, f = [], []
  for p, g in zip(pred[1:-1], gt[1:-1]):
    union = (p | g).sum()
    j.append(1.0 if union == 0 else (p & g).sum() / union)
    f.append(_boundary_f(p, g))
  return np.array(j), np.array(f)


def _table_rows(text):
  rows = {}
  for line in text.splitlines():
    parts = line.split()
    if len(parts) == 5 and parts[0] in (*SEQUENCES, "all"):
      rows[parts[0]] = (int(parts[1]), float(parts[2]), float(parts[3]), float(parts[4]))
  return rows


def test_cli_scores_match_a_numpy_reference(cli_run):
  root, out, stdout = cli_run
  report = json.loads((out / davis.RESULTS_FILE).read_text())
  assert list(report["sequences"]) == list(SEQUENCES)
  assert report["config"]["refine"]["enabled"] is False  # --set reached the config.
  rows = _table_rows(stdout)
  md_rows = _table_rows((out / davis.TABLE_FILE).read_text().replace("|", " "))
  j_means, f_means = [], []
  for name, frames in zip(SEQUENCES, (7, 8)):
    seq = report["sequences"][name]
    j, f = _reference(root, out, name)
    assert seq["frames"] == frames and seq["scored_frames"] == list(range(1, frames - 1))
    np.testing.assert_allclose(seq["j"], j, atol=1e-12)
    np.testing.assert_allclose(seq["f"], f, atol=1e-12)
    assert seq["j_mean"] == pytest.approx(j.mean(), abs=1e-12)
    assert seq["f_mean"] == pytest.approx(f.mean(), abs=1e-12)
    assert seq["fps"] == pytest.approx(frames / seq["seconds"])
    for table in (rows, md_rows):
      assert table[name][:3] == (frames, round(j.mean(), 3), round(f.mean(), 3))
    j_means.append(j.mean())
    f_means.append(f.mean())
  s = report["summary"]
  assert s["j_mean"] == pytest.approx(np.mean(j_means), abs=1e-12)
  assert s["f_mean"] == pytest.approx(np.mean(f_means), abs=1e-12)
  assert (
    s["j_min"] == pytest.approx(min(j_means))
    and s["j_min_sequence"] == SEQUENCES[int(np.argmin(j_means))]
  )
  assert s["frames"] == 15 and s["fps"] == pytest.approx(15 / s["wall_seconds"])
  assert rows["all"] == (15, round(s["j_mean"], 3), round(s["f_mean"], 3), round(s["fps"], 2))
  assert f"min J {s['j_min']:.3f} ({s['j_min_sequence']})" in stdout


def _numpy_j(pred, gt):
  """DAVIS J of every frame but the first and last."""
  return [
    1.0 if not (p | g).any() else (p & g).sum() / (p | g).sum()
    for p, g in zip(pred[1:-1], gt[1:-1])
  ]


def test_stages_score_b_o_and_the_cut(cli_run, tmp_path):
  root, out, _ = cli_run
  before = json.loads((out / davis.RESULTS_FILE).read_text())
  status, stdout, stderr = _cli(
    "--root", root, "--out", tmp_path / "eval", "--workers", 1, "--worst", 0, "--stages",
    *[f"--set={s}" for s in SET],
  )  # fmt: skip
  assert status == 0, stderr
  report = json.loads((tmp_path / "eval" / davis.RESULTS_FILE).read_text())
  config = apply_overrides(segmentation_config(), SET)
  b_o_means = []
  for name in SEQUENCES:
    seq, plain = report["sequences"][name], before["sequences"][name]
    assert "j_initial_mean" not in plain and "j_cut_mean" not in plain
    assert seq["j"] == plain["j"]  # Scoring the steps does not change the result.
    files = sorted((root / name / "frames").glob("*.jpg"))
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])
    gt = np.stack(
      [np.asarray(Image.open(root / name / "masks" / f"{p.stem}.png")) > 127 for p in files]
    )
    b_o_means.append(np.mean(_numpy_j(initial_masks(frames, config=config), gt)))
    assert seq["j_initial_mean"] == pytest.approx(b_o_means[-1], abs=1e-12)
    assert seq["j_cut_mean"] == pytest.approx(seq["j_mean"], abs=1e-12)  # No refinement here.
  assert report["summary"]["j_initial_mean"] == pytest.approx(np.mean(b_o_means), abs=1e-12)
  lines = stdout.splitlines()
  assert lines[0].split()[-4:] == ["J", "B_o", "J", "cut"]
  row = next(line.split() for line in lines if line.startswith(SEQUENCES[0]))
  assert float(row[-2]) == round(b_o_means[0], 3)


def test_sheets_show_the_worst_frames(cli_run):
  _, out, _ = cli_run
  report = json.loads((out / davis.RESULTS_FILE).read_text())
  tile_h, tile_w = contact_sheet.tile_shape(*SIZE, davis.TILE_SIZE)
  (width, height), _, _ = contact_sheet.sheet_layout(WORST, tile_h, tile_w, 3)
  for name in SEQUENCES:
    seq = report["sequences"][name]
    j = dict(zip(seq["scored_frames"], seq["j"]))
    assert len(seq["worst_frames"]) == WORST
    assert [j[t] for t in seq["worst_frames"]] == sorted(j.values())[:WORST]
    with Image.open(out / "sheets" / f"{name}.png") as im:
      assert im.format == "PNG" and im.size == (width, height)


def test_workers_1_and_2_give_identical_scores(cli_run, tmp_path):
  root, out, _ = cli_run
  before = json.loads((out / davis.RESULTS_FILE).read_text())
  config = apply_overrides(segmentation_config(), SET)
  report = davis.evaluate_folder(
    root, tmp_path / "eval2", config=config, workers=2, worst=0, progress=False
  )
  assert report["summary"]["workers"] == 2
  assert not (tmp_path / "eval2" / "sheets").exists()
  assert json.loads((tmp_path / "eval2" / davis.RESULTS_FILE).read_text()) == json.loads(
    json.dumps(report)
  )
  for name in SEQUENCES:
    for key in ("j", "f", "j_mean", "f_mean", "scored_frames"):
      assert report["sequences"][name][key] == before["sequences"][name][key], (name, key)


def test_frame_step_scores_the_sequences_at_a_lower_frame_rate(cli_run, tmp_path):
  """--frame_step 2 gives what a folder holding every second frame and mask gives."""
  root, _, _ = cli_run
  status, stdout, stderr = _cli_one_worker(
    root, tmp_path / "eval", "--save_masks", "--worst", 0, "--frame_step", 2
  )
  assert status == 0, stderr
  report = json.loads((tmp_path / "eval" / davis.RESULTS_FILE).read_text())
  thin = tmp_path / "thin"
  for name in SEQUENCES:
    for sub in ("frames", "masks"):
      (thin / name / sub).mkdir(parents=True)
      for path in sorted((root / name / sub).iterdir())[::2]:
        shutil.copy(path, thin / name / sub)
  config = apply_overrides(segmentation_config(), SET)
  ref = davis.evaluate_folder(
    thin, tmp_path / "ref", config=config, workers=1, worst=0, progress=False
  )
  assert report["summary"]["frame_step"] == 2 and ref["summary"]["frame_step"] == 1
  for name, frames in zip(SEQUENCES, (7, 8)):
    seq = report["sequences"][name]
    assert seq["frames"] == len(range(0, frames, 2))
    written = sorted(p.name for p in (tmp_path / "eval" / "masks" / name).glob("*.png"))
    assert written == [f"{t:05d}.png" for t in range(0, frames, 2)]
    for key in ("j", "f", "scored_frames", "j_mean", "f_mean"):
      assert seq[key] == ref["sequences"][name][key], (name, key)
  assert stdout.startswith(davis.format_table(report).splitlines()[0])
  assert "one frame in 2 of each sequence (--frame_step)" in stdout
  assert "--frame_step" not in davis.format_table(ref)


def test_frame_step_below_1_is_refused_before_any_work(cli_run, tmp_path):
  root, _, _ = cli_run
  with pytest.raises(ConfigError, match=r"frame_step: expected an integer >= 1, got 0"):
    davis.evaluate_folder(root, tmp_path / "eval", frame_step=0, progress=False)
  assert not (tmp_path / "eval").exists()


def test_height_scores_the_sequences_at_a_lower_resolution(cli_run, tmp_path):
  """--height 32: the frames and masks scaled down by area, segmented and scored there."""
  root, _, _ = cli_run
  status, stdout, stderr = _cli_one_worker(
    root, tmp_path / "eval", "--save_masks", "--worst", 1, "--height", 32
  )
  assert status == 0, stderr
  report = json.loads((tmp_path / "eval" / davis.RESULTS_FILE).read_text())
  assert report["summary"]["height"] == 32
  assert "frames and masks scaled to 32 rows (--height)" in stdout
  config = apply_overrides(segmentation_config(), SET)
  for name in SEQUENCES:
    stems = sorted(p.stem for p in (root / name / "masks").glob("*.png"))
    frames = np.stack([np.asarray(Image.open(root / name / "frames" / f"{t}.jpg")) for t in stems])
    small = np.stack([cv2.resize(f, (48, 32), interpolation=cv2.INTER_AREA) for f in frames])
    pred = np.stack(
      [np.asarray(Image.open(tmp_path / "eval" / "masks" / name / f"{t}.png")) > 127 for t in stems]
    )
    assert pred.shape == (len(stems), 32, 48)
    np.testing.assert_array_equal(pred, segment_video(small, config=config))
    gt = [np.asarray(Image.open(root / name / "masks" / f"{t}.png")) for t in stems]
    gt = [cv2.resize(g, (48, 32), interpolation=cv2.INTER_AREA) > 127 for g in gt]
    seq = report["sequences"][name]
    np.testing.assert_allclose(seq["j"], _numpy_j(pred, gt), atol=1e-12)
    np.testing.assert_allclose(
      seq["f"], [_boundary_f(p, g) for p, g in zip(pred[1:-1], gt[1:-1])], atol=1e-12
    )


@pytest.mark.parametrize(
  "height, message",
  [
    (8, r"height: expected 0 \(as stored\) or an integer >= 16, got 8"),
    (65, r"height: 65 rows is more than sequence 'actor-a' has \(64\)"),
  ],
)
def test_bad_height_is_refused_before_any_work(cli_run, tmp_path, height, message):
  root, _, _ = cli_run
  with pytest.raises(ConfigError, match=message):
    davis.evaluate_folder(root, tmp_path / "eval", height=height, progress=False)
  assert not (tmp_path / "eval").exists()
  status, stdout, stderr = _cli("--root", root, "--out", tmp_path / "eval", "--height", height)
  assert status == 2 and stdout == "" and re.search(message, stderr), stderr


@pytest.mark.parametrize("name", ["reverse", "pan", "exposure"])
def test_transform_segments_and_scores_the_transformed_sequences(cli_run, tmp_path, name):
  """--transform: the stage sees the transformed frames, scored against the masks transformed
  alike; saved masks keep their source frame's name."""
  root, _, _ = cli_run
  status, stdout, stderr = _cli_one_worker(
    root, tmp_path / "eval", "--save_masks", "--worst", 1, "--transform", name
  )
  assert status == 0, stderr
  report = json.loads((tmp_path / "eval" / davis.RESULTS_FILE).read_text())
  assert report["summary"]["transform"] == name
  assert f"frames and masks transformed: {name} (--transform)" in stdout
  config = apply_overrides(segmentation_config(), SET)
  for seq_name in SEQUENCES:
    stems = sorted(p.stem for p in (root / seq_name / "masks").glob("*.png"))
    frames = np.stack(
      [np.asarray(Image.open(root / seq_name / "frames" / f"{t}.jpg")) for t in stems]
    )
    gt = np.stack(
      [np.asarray(Image.open(root / seq_name / "masks" / f"{t}.png")) > 127 for t in stems]
    )
    frames, gt = video_transforms.apply_transform(name, frames, gt)
    expected = segment_video(frames, config=config)
    order = video_transforms.source_frames(name, len(stems))
    saved = np.stack(
      [
        np.asarray(Image.open(tmp_path / "eval" / "masks" / seq_name / f"{stems[k]}.png")) > 127
        for k in order
      ]
    )
    np.testing.assert_array_equal(saved, expected)
    if name == "pan":
      assert saved.shape[1:] == (round(0.8 * SIZE[0]), round(0.8 * SIZE[1]))
    np.testing.assert_allclose(
      report["sequences"][seq_name]["j"], _numpy_j(expected, gt), atol=1e-12
    )


def test_unknown_transform_exits_2_before_any_work(cli_run, tmp_path):
  root, _, _ = cli_run
  status, stdout, stderr = _cli("--root", root, "--out", tmp_path / "eval", "--transform", "spin")
  assert status == 2 and stdout == "" and "--transform" in stderr and "spin" in stderr, stderr
  with pytest.raises(ConfigError, match="transform: expected one of"):
    davis.evaluate_folder(root, tmp_path / "eval", transform="spin", progress=False)
  assert not (tmp_path / "eval").exists()


def _drop_masks(root):
  shutil.rmtree(root / "actor-b" / "masks")


def _drop_one_mask(root):
  (root / "actor-b" / "masks" / "00004.png").unlink()


def _resize_a_mask(root):
  Image.fromarray(np.zeros((32, 48), np.uint8)).save(root / "actor-b" / "masks" / "00002.png")


def _rename_a_mask(root):
  (root / "actor-b" / "masks" / "00005.png").rename(root / "actor-b" / "masks" / "00055.png")


def _corrupt_a_frame(root):
  (root / "actor-b" / "frames" / "00003.jpg").write_bytes(b"not a jpeg")


@pytest.mark.parametrize(
  "damage, args, expected",
  [
    (_drop_masks, (), r"actor-b.*masks/ folder"),
    (_drop_one_mask, (), r"actor-b.*8 frames but 7 masks"),
    (_resize_a_mask, (), r"actor-b.*00002\.png is 48x32, expected the frame size 96x64"),
    (
      _rename_a_mask,
      (),
      r"actor-b.*no mask for frames \['00005\.jpg'\], no frame for masks \['00055\.png'\]",
    ),
    (_corrupt_a_frame, (), r"actor-b/frames/00003\.jpg: expected a readable image"),
    (None, ("--sequences", "actor-a,nope"), r"no sequence 'nope'"),
    (None, ("--set", "no.such_key=1"), r"no config key 'no.such_key'"),
    (None, ("--frame_step", "0"), r"frame_step"),
  ],
)
def test_bad_input_exits_2_before_any_work(tmp_path, damage, args, expected):
  root = _make_root(tmp_path / "data")
  if damage is not None:
    damage(root)
  status, stdout, stderr = _cli("--root", root, "--out", tmp_path / "eval", "--workers", 1, *args)
  assert status == 2 and stdout == ""
  assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1, stderr
  assert re.search(expected, stderr), stderr
  assert not (tmp_path / "eval" / "sheets").exists()  # actor-a was not segmented either.


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_frame_found_while_segmenting_exits_2(tmp_path, workers):
  root = _make_root(tmp_path / "data")
  path = root / "actor-b" / "frames" / "00006.jpg"
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])  # The header is whole: it passes the layout check.
  status, _, stderr = _cli("--root", root, "--out", tmp_path / "eval", "--workers", workers)
  last = stderr.splitlines()[-1]  # After the progress bar.
  assert status == 2 and last.startswith("error: ") and "Traceback" not in stderr
  assert "actor-b/frames/00006.jpg: expected a readable image" in last, stderr
  assert not (tmp_path / "eval" / davis.RESULTS_FILE).exists()


def test_missing_root_as_a_program(tmp_path):
  done = subprocess.run(
    [
      sys.executable,
      "-m",
      "segtube_jax.evaluation.davis",
      "--root",
      str(tmp_path / "none"),
      "--out",
      str(tmp_path / "eval"),
    ],
    cwd=PROJECT_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 2
  assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
  assert str(tmp_path / "none") in done.stderr


@pytest.mark.slow
def test_two_real_davis_sequences(shared_data, tmp_path):
  source = shared_data / "davis2016"
  names = ("blackswan", "car-shadow")
  if not all((source / n).is_dir() for n in names):
    pytest.skip(f"DAVIS 2016 sequences {names} not found under {source}")
  for name in names:
    for sub, suffix in (("frames", "jpg"), ("masks", "png")):
      (tmp_path / "data" / name / sub).mkdir(parents=True)
      for t in range(12):
        shutil.copy(source / name / sub / f"{t:05d}.{suffix}", tmp_path / "data" / name / sub)
  status, stdout, stderr = _cli(
    "--root", tmp_path / "data", "--out", tmp_path / "eval", "--workers", 2
  )
  assert status == 0, stderr
  rows = {
    k: v
    for k, v in ((line.split()[0], line.split()) for line in stdout.splitlines() if line.strip())
  }
  for name in names:
    assert rows[name][1] == "12" and 0.0 <= float(rows[name][2]) <= 1.0, stdout
    assert (tmp_path / "eval" / "sheets" / f"{name}.png").is_file()
