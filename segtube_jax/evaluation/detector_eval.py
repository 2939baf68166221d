"""``evaluate.py --config --workdir``: the detector on a test subset, official metrics, a report.

Runs the alternating optimisation (segtube_jax.detection) with the latest checkpoint of the
workdir on every video of ``config.evaluation.subset`` and writes ``<workdir>/eval/``:

- ``detections.json`` (ActivityNet format) and ``detections.txt`` (THUMOS14 format);
- ``masks/<video_id>/<frame:06d>.png``: the actor masks of the localized frames;
- ``metrics.json``: temporal mAP (THUMOS14 and ActivityNet protocols), mask IoU / J / F
  (Table 3), the spatio-temporal video-mAP, iterations, timings, and any per-video error;
- ``report.md`` with figures.

A video that cannot be read is reported by name (console and metrics.json) and the others are
still processed; :func:`evaluate` then raises :class:`VideosFailed` after writing everything.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pathlib
import shutil
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from segtube_jax import io_utils, schema
from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import video as video_lib
from segtube_jax.detection import alternating
from segtube_jax.detection import localizer as localizer_lib
from segtube_jax.errors import ConfigError, SegtubeError
from segtube_jax.evaluation import (
  detection_files,
  detection_writers,
  report,
  score_detections,
  segmentation_metrics,
  spatiotemporal,
)
from segtube_jax.training import input_pipeline, saliency_cache


class VideosFailed(SegtubeError):
  """Some videos could not be processed; the rest were written and scored."""


def write_masks(
  folder: pathlib.Path, masks: np.ndarray, present: np.ndarray, offset: int = 0
) -> int:
  """One PNG (0/255) per frame that has a mask, named by frame ``offset + i``; returns how many.

  Each PNG is written atomically (temporary name, then rename), so a kill or a full disk never
  leaves a truncated mask under a frame's name.

  Raises:
    OutputError: the folder or a file cannot be written.
  """
  folder = io_utils.ensure_writable_dir(folder, "mask folder")  # Even when empty: scoring reads it.
  frames = np.flatnonzero(present)
  for i in frames:
    t = offset + int(i)
    io_utils.write_png_atomic(folder / f"{t:06d}.png", masks[i].astype(np.uint8) * 255, what="mask")
  return len(frames)


def fill_from_media(ds: dataset_lib.Dataset, videos: list[dataset_lib.VideoInfo]) -> dict[str, str]:
  """Completes ``videos`` (in place, and in ``ds``) from their media; returns {video_id: error}."""
  errors: dict[str, str] = {}
  for i, info in enumerate(videos):
    filled, problems = dataset_lib.fill_from_media(ds.root, info)
    ds.videos[info.video_id] = videos[i] = filled
    if problems:
      errors[info.video_id] = "DatasetError: " + "; ".join(problems)
      logging.error("video %s failed: %s", info.video_id, errors[info.video_id])
  return errors


def read_dataset_video(ds: dataset_lib.Dataset, video_id: str) -> tuple[np.ndarray, float]:
  """(uint8 frames [T, H, W, 3], fps) of a dataset video, read whole."""
  info = ds.videos[video_id]
  reader = ds.open_frames(video_id)
  frames = reader.read(0, None) if hasattr(reader, "read") else np.stack(list(reader))
  if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
    raise SegtubeError(
      f"{video_id}: decoded frames have shape {frames.shape}, expected [T, H, W, 3] with T > 0"
    )
  return frames, video_lib.frame_rate(info.fps)


def evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, Any]:
  """Runs the detector on ``config.evaluation.subset`` and writes ``<workdir>/eval``; returns the metrics.

  Raises:
    CheckpointError: the workdir has no checkpoint.
    OutputError: ``<workdir>/eval`` or a file in it cannot be written (checked before detecting).
    ConfigError, DatasetError: bad config or dataset.
    VideosFailed: after writing everything, when some videos could not be processed.
  """
  t_start = time.perf_counter()
  ev = config.evaluation
  schema.validate(config)
  workdir = pathlib.Path(workdir)
  ds, videos = _select_videos(config)
  errors = fill_from_media(ds, videos)
  localizer, step = localizer_lib.load_localizer(config, workdir, ds.classes)
  out = workdir / "eval"
  is_main = jax.process_index() == 0
  mask_dir = out / "masks"
  if is_main:
    _prepare_output(out, mask_dir)

  results: dict[str, list[detection_writers.DetectedSegment]] = {}
  states: dict[str, alternating.VideoState] = {}
  examples = set(v.video_id for v in videos[: ev.report_videos])
  kept: dict[str, alternating.VideoState] = {}
  t_detect = time.perf_counter()
  # One pool for every group: starting workers per group cost seconds each time.
  pool = alternating.segmentation_pool(min(ev.workers, len(videos)))
  try:
    decode_seconds = _detect_groups(
      config,
      ds,
      videos,
      localizer,
      pool,
      errors,
      results,
      states,
      kept,
      examples,
      mask_dir if is_main else None,
      _training_saliency(config, workdir),
    )
  finally:
    if pool is not None:
      pool.shutdown()
  detect_seconds = time.perf_counter() - t_detect
  failed = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
  if not states:  # Nothing to score (the ground truth of no video is an error of its own).
    raise VideosFailed(f"all {len(videos)} video(s) failed, nothing was scored: {failed}")
  # Ground truth and detections are built once, for the metrics and for the report.
  gt = ground_truth(ds, [v.video_id for v in videos if v.video_id in states], ev.subset)
  dets = detection_writers.as_detections(results, ds.classes)
  metrics = _score(config, ds, videos, results, states, errors, mask_dir, gt, dets)
  metrics.update(
    checkpoint_step=step,
    num_videos=len(videos),
    timings=_timings(states, detect_seconds, decode_seconds),
  )
  if is_main:
    detection_writers.write_activitynet_json(results, out / "detections.json")
    detection_writers.write_thumos14_txt(results, out / "detections.txt", ds.classes)
    metrics["timings"]["total_seconds"] = round(time.perf_counter() - t_start, 2)
    io_utils.write_json_atomic(out / "metrics.json", metrics, what="metrics file")
    _write_report(out, config, ds, metrics, kept, gt, dets)
  if errors:
    raise VideosFailed(
      f"{len(errors)} of {len(videos)} video(s) failed (the others were written to {out}): {failed}"
    )
  return metrics


def _select_videos(
  config: ml_collections.ConfigDict,
) -> tuple[dataset_lib.Dataset, list[dataset_lib.VideoInfo]]:
  """Loads the dataset and picks the (at most ``max_videos``) videos of the subset."""
  ev = config.evaluation
  # Media are checked per video below: one unreadable file fails its video, not the evaluation.
  ds = dataset_lib.load_dataset(config.dataset.root, check_media=False)
  videos = ds.subset(ev.subset)
  if ev.max_videos:
    videos = videos[: ev.max_videos]
  if not videos:
    raise ConfigError(
      f"config.evaluation.subset={ev.subset!r}: {config.dataset.root} has no such video"
    )
  return ds, videos


def _prepare_output(out: pathlib.Path, mask_dir: pathlib.Path) -> None:
  """Makes the output and (emptied) mask folders, failing early when unwritable."""
  # Fail now, not after detecting every video, when the results cannot be written.
  io_utils.ensure_writable_dir(out, "evaluation output folder")
  shutil.rmtree(mask_dir, ignore_errors=True)  # Stale masks of an earlier run would be scored.
  io_utils.ensure_writable_dir(mask_dir, "mask folder")


def _read_group(
  ds: dataset_lib.Dataset,
  infos: list,
  errors: dict[str, str],
  saliency: saliency_cache.SaliencyCache | None,
) -> tuple[list[alternating.VideoState], float]:
  """Decodes a group's videos (a video that fails is recorded in ``errors``); returns the states
  and the seconds spent decoding."""
  t0 = time.perf_counter()
  group = []
  for info in infos:
    if info.video_id in errors:
      continue
    try:
      frames, fps = read_dataset_video(ds, info.video_id)
    except Exception as e:  # pylint: disable=broad-except
      errors[info.video_id] = f"{type(e).__name__}: {e}"
      logging.error("video %s failed: %s", info.video_id, errors[info.video_id])
      continue
    state = alternating.VideoState(info.video_id, frames, fps)
    if saliency is not None and saliency.num_frames(info.video_id) == len(frames):
      state.saliency = saliency.read(info.video_id, 0, len(frames)).astype(np.float32)
    group.append(state)
  return group, time.perf_counter() - t0


def _detect_groups(
  config: ml_collections.ConfigDict,
  ds: dataset_lib.Dataset,
  videos: list,
  localizer,
  pool,
  errors: dict[str, str],
  results: dict,
  states: dict,
  kept: dict,
  examples: set[str],
  mask_dir: pathlib.Path | None,
  saliency: saliency_cache.SaliencyCache | None = None,
) -> float:
  """Runs the alternating loop on ``videos`` in groups of ``evaluation.group_size`` (fills the dicts).

  The next group is decoded in a thread while the networks and the segmentation pool work on
  this one. Masks are written under ``mask_dir`` (None: not written, on processes other than 0).
  B_o comes from the training run's ``saliency`` cache where it holds the video, else the loop
  computes it. Returns the seconds spent decoding.
  """
  size = config.evaluation.group_size
  groups = [videos[i : i + size] for i in range(0, len(videos), size)]
  decode_seconds = 0.0
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="segtube-decode") as reader:
    pending = reader.submit(_read_group, ds, groups[0], errors, saliency) if groups else None
    for k in range(len(groups)):
      group, seconds = pending.result()
      decode_seconds += seconds
      if k + 1 < len(groups):
        pending = reader.submit(_read_group, ds, groups[k + 1], errors, saliency)
      alternating.run_alternating(group, localizer, config, log=logging.info, pool=pool)
      for v in group:
        _keep_results(v, results, states, kept, examples, mask_dir)
  return decode_seconds


def _timings(states: dict, detect_seconds: float, decode_seconds: float) -> dict[str, Any]:
  """Wall time of the detector and where it went: decoding (a thread, overlapped with the rest),
  the networks (this process) and the segmentation (worker-process seconds, overlapped)."""
  frames = localized = 0
  for v in states.values():
    if v.localization is not None:
      n = len(v.localization.frame_score)
      frames += n
      localized += sum(e - s + 1 for s, e in alternating.merged_spans(v.segments, n))
  its = [it for v in states.values() for it in v.iterations]
  return {
    "detect_seconds": round(detect_seconds, 2),
    "seconds_per_video": round(detect_seconds / max(len(states), 1), 3),
    "frames": frames,
    "localized_frames": localized,
    "frames_per_second": round(frames / detect_seconds, 2) if detect_seconds > 0 else None,
    "decode_seconds": round(decode_seconds, 2),
    "localize_seconds": round(sum(it["localize_seconds"] for it in its), 2),
    "segment_seconds": round(sum(it["segment_seconds"] for it in its), 2),
  }


def _keep_results(v, results, states, kept, examples, mask_dir) -> None:
  """Stores one finished video's segments and loop record and writes its masks."""
  results[v.video_id] = v.segments
  if mask_dir is not None:
    write_masks(mask_dir / v.video_id, v.masks, v.present)
  states[v.video_id] = alternating.VideoState(
    v.video_id,
    np.empty((0,)),
    v.fps,
    localization=v.localization,
    iterations=v.iterations,
    converged=v.converged,
  )
  if v.video_id in examples:
    kept[v.video_id] = v


def _training_saliency(
  config: ml_collections.ConfigDict, workdir: pathlib.Path
) -> saliency_cache.SaliencyCache | None:
  """The B_o cache of the training run, when the config uses one and it exists."""
  if config.clips.mask_source != "saliency":
    return None
  data_dir, name = input_pipeline.tfds_location(config, workdir)
  folder = saliency_cache.cache_dir(config, data_dir, name)
  return (
    saliency_cache.SaliencyCache(folder) if (folder / saliency_cache.CACHE_FILE).is_file() else None
  )


def ground_truth(
  ds: dataset_lib.Dataset, video_ids: list[str], subset: str
) -> detection_files.GroundTruth:
  """The ground truth of ``video_ids`` (annotations.json of the dataset) for the mAP."""
  path = ds.root / "annotations.json"
  data = dataset_lib.read_annotations_json(path)
  return detection_files.ground_truth_from_dataset(
    {"classes": ds.classes, "database": {vid: data["database"][vid] for vid in video_ids}},
    subset,
    str(path),
  )


def _score(config, ds, videos, results, states, errors, mask_dir, gt, dets) -> dict[str, Any]:
  ev = config.evaluation
  ok = [v for v in videos if v.video_id in states]
  temporal = {
    p: score_detections.score_detection_file(dets, gt, p, tuple(ev.tious))
    for p in ("thumos14", "activitynet")
  }
  gt_frames = {
    v.video_id: [(i.label, *i.frame_span(video_lib.frame_rate(v.fps))) for i in v.annotations]
    for v in ok
  }
  video_class = {v.video_id: (v.annotations[0].label if v.annotations else "none") for v in ok}
  gt_dir = ds.root / "masks"
  with_masks = [v.video_id for v in ok if (gt_dir / v.video_id).is_dir()]
  segmentation = (
    segmentation_metrics.evaluate_mask_folders(mask_dir, gt_dir, with_masks, video_class)
    if with_masks
    else None
  )
  st = None
  if with_masks:
    frame_iou = segmentation_metrics.frame_iou_maps(mask_dir, gt_dir, with_masks)
    st = spatiotemporal.video_map(
      {k: results[k] for k in with_masks},
      {k: gt_frames[k] for k in with_masks},
      frame_iou,
      tuple(ev.st_ious),
      classes=ds.classes,
    )
  iterations = {vid: s.iterations for vid, s in states.items()}
  return {
    "protocol": ev.protocol,
    "temporal": temporal[ev.protocol],
    "temporal_by_protocol": temporal,
    "segmentation": segmentation,
    "spatiotemporal": st,
    "iterations": iterations,
    "loop": _loop_summary(states),
    "errors": errors,
  }


def _loop_summary(states: dict[str, alternating.VideoState]) -> dict[str, Any]:
  counts = [len(s.iterations) for s in states.values()]
  return {
    "mean_iterations": float(np.mean(counts)) if counts else None,
    "max_iterations": int(max(counts)) if counts else None,
    "converged_videos": int(sum(s.converged for s in states.values())),
    "videos": len(states),
  }


def _write_report(out: pathlib.Path, config, ds, metrics, kept, gt, dets) -> None:
  tiou = 0.5
  temporal = metrics["temporal"]
  key = score_detections.tiou_key(tiou)
  per_class_ap = {
    c: (temporal.get("AP_per_class", {}).get(key, {}) or {}).get(c) for c in ds.classes
  }
  curves = report.pr_curves(gt, dets, tiou)
  alpha_examples, overlays = [], []
  for vid, v in kept.items():
    info = ds.videos[vid]
    gt_segments = [(i.label, *i.frame_span(v.fps)) for i in info.annotations]
    alpha_examples.append(
      {
        "video_id": vid,
        "alpha": v.localization.alpha,
        "classes": ds.classes,
        "gamma": config.detector.gamma,
        "gt_segments": gt_segments,
        "detections": v.segments,
      }
    )
    frames_ids = np.flatnonzero(v.present)
    if frames_ids.size:
      gt_reader = ds.masks(vid)
      gt_masks = None
      if gt_reader is not None:
        gt_masks = np.stack([_gt_mask(gt_reader, int(t), v.masks.shape[1:]) for t in frames_ids])
      label = v.segments[0].label if v.segments else ""
      overlays.append(
        {
          "video_id": vid,
          "frames": v.frames[frames_ids],
          "masks": v.masks[frames_ids],
          "gt_masks": gt_masks,
          "frame_ids": [int(t) for t in frames_ids],
          "label": label,
        }
      )
  iterations = []
  for it in range(max((len(x) for x in metrics["iterations"].values()), default=0)):
    rows = [x[it] for x in metrics["iterations"].values() if len(x) > it]
    changes = [r["mask_change"] for r in rows if r["mask_change"] is not None]
    iterations.append(
      {
        "iteration": it,
        "num_segments": int(sum(r["num_segments"] for r in rows)),
        "mask_change": float(np.mean(changes)) if changes else None,
        "seconds": float(sum(r["localize_seconds"] + r["segment_seconds"] for r in rows)),
        "map_at_05": _map_at_iteration(metrics["iterations"], it, ds, gt, config, tiou),
        "mask_iou": None,
      }
    )
  report.write_report(
    out,
    metrics=metrics,
    per_class_ap=per_class_ap,
    pr_curves=curves,
    alpha_examples=alpha_examples,
    overlay_examples=overlays,
    iterations=iterations,
    tiou=tiou,
  )


def _map_at_iteration(
  logs: dict[str, list[dict[str, Any]]], it: int, ds, gt, config, tiou: float
) -> float | None:
  """mAP at ``tiou`` of the segments each video had after iteration ``it`` (its last, if it stopped earlier)."""
  results = {}
  for vid, rows in logs.items():
    if not rows:
      continue
    row = rows[min(it, len(rows) - 1)]
    fps = video_lib.frame_rate(ds.videos[vid].fps)
    results[vid] = [
      detection_writers.DetectedSegment(
        label, ds.classes.index(label), int(f_s), int(f_e), float(score), fps
      )
      for label, f_s, f_e, score in row["segments"]
    ]
  scored = score_detections.score_detection_file(
    detection_writers.as_detections(results, ds.classes), gt, config.evaluation.protocol, (tiou,)
  )
  return scored["mAP"][0]


def _gt_mask(reader, frame: int, shape) -> np.ndarray:
  try:
    masks, present = reader.read(frame, frame + 1)
  except Exception:  # pylint: disable=broad-except
    return np.zeros(shape, bool)
  return masks[0] if present[0] else np.zeros(shape, bool)


def summary_lines(metrics: dict[str, Any], workdir: str | os.PathLike) -> str:
  """A few console lines: mAP per tIoU, mask quality, loop and where the report is."""
  t = metrics["temporal"]
  lines = [
    f"detector evaluation of {workdir} (checkpoint step {metrics['checkpoint_step']}, "
    f"{metrics['num_videos']} videos, protocol {t.get('protocol', metrics['protocol'])})",
    "  mAP: "
    + ", ".join(
      f"tIoU {a:g}: {m * 100:.2f}" if m is not None else f"tIoU {a:g}: -"
      for a, m in zip(t["tiou"], t["mAP"])
    ),
  ]
  seg = metrics.get("segmentation")
  if seg:
    m = seg["mean"]
    lines.append(
      f"  masks: IoU {m['iou']:.4f}, J {m['J']:.4f}, F {m['F']:.4f} (frames with ground truth)"
    )
  st = metrics.get("spatiotemporal")
  if st:
    lines.append(
      "  video-mAP: "
      + ", ".join(f"ST-IoU {a:g}: {m * 100:.2f}" for a, m in zip(st["thresholds"], st["mAP"]))
    )
  loop = metrics["loop"]
  lines.append(
    f"  alternating loop: mean {loop['mean_iterations']:.2f} iterations, "
    f"{loop['converged_videos']}/{loop['videos']} videos converged"
  )
  lines.append(f"  time: {metrics['timings']['detect_seconds']:.1f} s detecting")
  lines.append(f"  report: {pathlib.Path(workdir) / 'eval' / 'report.md'}")
  if metrics.get("errors"):
    lines.append(f"  FAILED videos: {sorted(metrics['errors'])}")
  return "\n".join(lines)
