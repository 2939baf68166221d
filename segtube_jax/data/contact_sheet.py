"""Writes contact sheets: a PNG grid of a video's frames with ground-truth masks and labels.

Each tile shows one frame (upscaled with nearest neighbour when small, so 64 px frames become
128 px tiles), the outline of its ground-truth mask in red when the dataset has one for that
frame, and a caption with the frame index and the label: the instance's class inside an annotated
instance, else "background". Frames are spread evenly over the video, or concentrated around the
instances (the default) so that the action and its boundaries are visible. Works on any dataset
in the project's format (video files or frame folders, masks optional).

Usage::

  python -m segtube_jax.data.contact_sheet --root DIR --video_id ID --out sheet.png
  python -m segtube_jax.data.contact_sheet --root DIR --all --max_videos 8 --out sheets/
"""

from __future__ import annotations

from collections.abc import Sequence
import math
import os
import pathlib
import sys

from absl import flags
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.segmentation import find_boundaries

from segtube_jax import cli
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.errors import ConfigError, DatasetError

SPACINGS = ("instances", "even")
GAP = 2  # Pixels between tiles and around the grid.
MASK_COLOR = (255, 0, 0)
PRED_COLOR = np.array([0.0, 230.0, 80.0])  # A predicted mask's overlay (render_scored_sheet).
PRED_ALPHA = 0.45
BACKGROUND = (24, 24, 24)
_INSTANCE_WEIGHT = 6.0  # Frame density inside (padded) instances relative to elsewhere.


def select_frames(
  num_frames: int, spans: list[tuple[int, int]], count: int, spacing: str = "instances"
) -> list[int]:
  """Picks ``min(count, num_frames)`` distinct sorted frame indices.

  Args:
    num_frames: frames in the video.
    spans: instance frame ranges ``[f_s, f_e)``.
    count: how many frames to show.
    spacing: "even" spreads frames uniformly; "instances" picks them at the quantiles of a
      density that is higher inside instances padded by a quarter of their length, so the
      action and both of its boundaries get most tiles while the idle parts keep a few.

  Raises:
    ValueError: unknown spacing or non-positive counts.
  """
  if spacing not in SPACINGS:
    raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
  if num_frames < 1 or count < 1:
    raise ValueError(f"need num_frames >= 1 and count >= 1, got {num_frames}, {count}")
  count = min(count, num_frames)
  density = np.ones(num_frames)
  if spacing == "instances":
    for fs, fe in spans:
      pad = max(2, (fe - fs) // 4)
      density[max(0, fs - pad) : min(num_frames, fe + pad)] = _INSTANCE_WEIGHT
  cdf = np.concatenate([[0.0], np.cumsum(density)])
  quantiles = (np.arange(count) + 0.5) / count * cdf[-1]
  picks = np.searchsorted(cdf, quantiles, side="right") - 1
  # Make the picks distinct while keeping them sorted and inside the video.
  for i in range(1, count):
    picks[i] = max(picks[i], picks[i - 1] + 1)
  for i in range(count - 1, -1, -1):
    picks[i] = min(picks[i], num_frames - 1 if i == count - 1 else picks[i + 1] - 1)
  return [int(p) for p in picks]


def load_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
  """Pillow's default font at ``size`` pixels (the fixed bitmap font when FreeType is missing)."""
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font.
    return ImageFont.load_default()


def render_tile(frame: np.ndarray, mask: np.ndarray | None, tile_h: int, tile_w: int) -> np.ndarray:
  """Resizes one frame to the tile and draws the mask outline (inner boundary) in red."""
  h, w = frame.shape[:2]
  upscale = tile_h >= h and tile_w >= w
  img = np.asarray(
    Image.fromarray(frame).resize((tile_w, tile_h), Image.NEAREST if upscale else Image.BILINEAR)
  )
  if mask is None:
    return img
  # The boundary is computed at tile resolution so that it stays a thin visible line.
  big = (
    np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((tile_w, tile_h), Image.NEAREST))
    > 0
  )
  img = img.copy()
  img[find_boundaries(big, mode="inner")] = MASK_COLOR
  return img


def tile_shape(height: int, width: int, tile_size: int) -> tuple[int, int]:
  """(tile height, tile width): the frame scaled so that its longer side is ``tile_size``."""
  scale = tile_size / max(height, width)
  return max(1, round(height * scale)), max(1, round(width * scale))


def sheet_layout(
  num_tiles: int, tile_h: int, tile_w: int, columns: int | None = None, font_size: int = 11
) -> tuple[tuple[int, int], list[tuple[int, int]], int]:
  """Returns ((width, height), the top-left (x, y) of every tile, caption line height).

  A title line, then rows of ``columns`` tiles (default: up to 8), each tile followed by a
  two-line caption, everything separated by ``GAP`` pixels.
  """
  columns = max(1, min(num_tiles, columns or 8))
  rows = math.ceil(num_tiles / columns)
  line = load_font(font_size).getbbox("Ag#0")[3] + 2
  caption_h, title_h = 2 * line + 2, line + 4
  size = (columns * (tile_w + GAP) + GAP, title_h + rows * (tile_h + caption_h + GAP) + GAP)
  boxes = [
    (GAP + (k % columns) * (tile_w + GAP), title_h + (k // columns) * (tile_h + caption_h + GAP))
    for k in range(num_tiles)
  ]
  return size, boxes, line


def render_scored_sheet(
  title: str,
  frames: np.ndarray,
  pred: np.ndarray,
  gt: np.ndarray,
  indices: Sequence[int],
  scores: Sequence[float],
  tile_size: int = 256,
  columns: int = 3,
) -> Image.Image:
  """A sheet of scored frames: each tile a frame, its predicted mask overlaid in green, the
  ground-truth outline in red, and its score (e.g. J) in the caption.

  Args:
    title: The first line.
    frames: uint8 [T,H,W,3]; pred, gt: bool [T,H,W].
    indices: The frames to show, in order; scores: their J (the captions).
    tile_size: The longer side of a tile in pixels.
    columns: Tiles per row.
  """
  tile_h, tile_w = tile_shape(frames.shape[1], frames.shape[2], tile_size)
  size, boxes, line = sheet_layout(max(len(indices), 1), tile_h, tile_w, columns)
  font = load_font(11)
  sheet = Image.new("RGB", size, BACKGROUND)
  draw = ImageDraw.Draw(sheet)
  draw.text((GAP, 2), title, fill="white", font=font)
  for t, j, (x, y) in zip(indices, scores, boxes):
    frame = frames[t].astype(np.float32)
    frame[pred[t]] = (1 - PRED_ALPHA) * frame[pred[t]] + PRED_ALPHA * PRED_COLOR
    tile = render_tile(frame.astype(np.uint8), gt[t], tile_h, tile_w)
    sheet.paste(Image.fromarray(tile), (x, y))
    draw.text((x + 1, y + tile_h + 1), f"#{t}", fill="white", font=font)
    draw.text((x + 1, y + tile_h + 1 + line), f"J {j:.3f}", fill=(255, 220, 60), font=font)
  return sheet


def render_contact_sheet(
  dataset: dataset_lib.Dataset,
  video_id: str,
  num_frames: int = 16,
  *,
  tile_size: int = 128,
  columns: int | None = None,
  spacing: str = "instances",
) -> tuple[Image.Image, list[int]]:
  """Draws the contact sheet of one video of a loaded dataset; returns (image, frame indices).

  See :func:`write_contact_sheet` for the arguments and :func:`sheet_layout` for the layout.
  """
  if video_id not in dataset.videos:
    known = sorted(dataset.videos)
    raise DatasetError(
      f"{dataset.root}: no video {video_id!r} in annotations.json "
      f"(it has {len(known)} videos, e.g. {known[:3]})"
    )
  if tile_size < 16:
    raise ValueError(f"tile_size must be >= 16 pixels, got {tile_size}")
  info = dataset.videos[video_id]
  reader = dataset.open_frames(video_id)
  masks = dataset.masks(video_id)
  fps = info.fps or reader.fps
  spans = [(inst.label, *inst.frame_span(fps)) for inst in info.annotations]
  frames = select_frames(reader.num_frames, [(fs, fe) for _, fs, fe in spans], num_frames, spacing)
  tile_h, tile_w = tile_shape(reader.height, reader.width, tile_size)
  size, boxes, line = sheet_layout(len(frames), tile_h, tile_w, columns)
  font = load_font(11)
  sheet = Image.new("RGB", size, BACKGROUND)
  draw = ImageDraw.Draw(sheet)
  described = ", ".join(f"{label} [{fs}, {fe})" for label, fs, fe in spans) or "no instances"
  draw.text(
    (GAP, 2),
    f"{video_id} ({info.subset}, {reader.num_frames} frames): {described}",
    fill="white",
    font=font,
  )
  for f, (x, y) in zip(frames, boxes):
    frame = reader.read(f, f + 1)[0]
    mask = masks.read_one(f) if masks is not None and masks.has(f) else None
    sheet.paste(Image.fromarray(render_tile(frame, mask, tile_h, tile_w)), (x, y))
    labels = [label for label, fs, fe in spans if fs <= f < fe]
    draw.text((x + 1, y + tile_h + 1), f"#{f}", fill="white", font=font)
    draw.text(
      (x + 1, y + tile_h + 1 + line),
      "+".join(labels) or "background",
      fill=(255, 220, 60) if labels else (150, 150, 150),
      font=font,
    )
  return sheet, frames


def write_contact_sheet(
  root_or_dataset: str | os.PathLike | dataset_lib.Dataset,
  video_id: str,
  out_png: str | os.PathLike,
  num_frames: int = 16,
  *,
  tile_size: int = 128,
  columns: int | None = None,
  spacing: str = "instances",
) -> pathlib.Path:
  """Writes a PNG contact sheet of ``video_id`` and returns its path.

  Args:
    root_or_dataset: a dataset folder or a loaded :class:`~segtube_jax.data.dataset.Dataset`.
    video_id: the video to show.
    out_png: the PNG file to write (its folder is created).
    num_frames: tiles to show (fewer if the video is shorter).
    tile_size: the longer side of each tile in pixels.
    columns: tiles per row (default: up to 8).
    spacing: "instances" (concentrated around annotated instances) or "even".

  Layout (see :func:`sheet_layout`): a title line, then rows of tiles each with a two-line
  caption (frame index, label); the image is ``columns * (tile_w + GAP) + GAP`` pixels wide.

  Raises:
    DatasetError: the dataset or the video is missing or invalid.
    VideoError: the video's frames or masks cannot be read.
  """
  if isinstance(root_or_dataset, dataset_lib.Dataset):
    ds = root_or_dataset
  else:
    ds = dataset_lib.load_dataset(root_or_dataset, check_media=False)
  sheet, _ = render_contact_sheet(
    ds, video_id, num_frames, tile_size=tile_size, columns=columns, spacing=spacing
  )
  out = pathlib.Path(out_png)
  out.parent.mkdir(parents=True, exist_ok=True)
  sheet.save(out)
  return out


def define_flags(fv: flags.FlagValues) -> None:
  """Defines the command's flags on ``fv``."""
  flags.DEFINE_string("root", None, "Dataset folder.", flag_values=fv)
  flags.DEFINE_multi_string("video_id", [], "Video to show (repeatable).", flag_values=fv)
  flags.DEFINE_bool(
    "all", False, "One sheet per video (sorted ids, up to --max_videos).", flag_values=fv
  )
  flags.DEFINE_integer("max_videos", None, "With --all: only the first N videos.", flag_values=fv)
  flags.DEFINE_string(
    "out", None, "PNG file for one video, else a folder of <video_id>.png.", flag_values=fv
  )
  flags.DEFINE_integer("num_frames", 16, "Frames (tiles) per sheet.", flag_values=fv)
  flags.DEFINE_integer("tile_size", 128, "Tile size in pixels.", flag_values=fv)
  flags.DEFINE_integer("columns", None, "Tiles per row (default: up to 8).", flag_values=fv)
  flags.DEFINE_enum(
    "spacing",
    "instances",
    SPACINGS,
    "Frames around the instances, or evenly spread.",
    flag_values=fv,
  )
  flags.mark_flags_as_required(["root", "out"], flag_values=fv)


def _write_sheets(fv: flags.FlagValues) -> int:
  try:
    ds = dataset_lib.load_dataset(fv.root, check_media=False)
    ids = sorted(ds.videos)[: fv.max_videos] if fv.all else fv.video_id
    if not ids:
      raise ConfigError("give --video_id ID (repeatable) or --all")
    single = len(ids) == 1 and not fv.all and fv.out.lower().endswith(".png")
    for vid in ids:
      out = pathlib.Path(fv.out) if single else pathlib.Path(fv.out) / f"{vid}.png"
      write_contact_sheet(
        ds, vid, out, fv.num_frames, tile_size=fv.tile_size, columns=fv.columns, spacing=fv.spacing
      )
      print(out)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit status (0 ok, 2 bad input)."""
  return cli.run_command(
    __doc__, define_flags, _write_sheets, argv, "python -m segtube_jax.data.contact_sheet"
  )


if __name__ == "__main__":
  sys.exit(main())
