"""Peak memory and speed of ``python -m segtube_jax.detect_videos`` on long videos (issue 6).

Run from the repository root::

  nice -n 10 .venv/bin/python bench/long_video.py --workdir runs/demo \\
      --runs=27000@64x64,108000@64x64,8000@128x171

Each run is ``FRAMES@HEIGHTxWIDTH``: a synthetic long video (segtube_jax.data.long_video, cached
under ``--cache``) goes through detect in a subprocess; the bench reports frames, wall time, time
per frame and the subprocess's peak resident memory (``wait4`` rusage), plus the peak RSS in the
first and the second half of the run (sampled from /proc) and, for runs of the same frame size,
how the peak changes with length: streaming keeps it flat.
"""

from collections.abc import Sequence
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time

from absl import app, flags

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


_RUN = re.compile(r"(\d+)@(\d+)x(\d+)")


def _parse_run(text: str) -> tuple[int, int, int]:
  """``FRAMES@HEIGHTxWIDTH`` -> (frames, height, width); the flag's validator checked the form."""
  m = _RUN.fullmatch(text)
  return int(m[1]), int(m[2]), int(m[3])


def _video(cache: pathlib.Path, frames: int, height: int, width: int, seed: int) -> pathlib.Path:
  """The cached synthetic video, generated (in a subprocess: the bench stays small) when absent."""
  path = cache / f"long_{frames}f_{height}x{width}_s{seed}.mp4"
  if not path.is_file():
    print(f"generating {path} ...", flush=True)
    subprocess.run(
      [
        sys.executable,
        "-m",
        "segtube_jax.data.long_video",
        "--out",
        str(path),
        "--num_frames",
        str(frames),
        "--height",
        str(height),
        "--width",
        str(width),
        "--seed",
        str(seed),
      ],
      cwd=PROJECT_ROOT,
      check=True,
    )
  return path


def _sample_rss(pid: int, samples: list[tuple[float, int]], done: threading.Event) -> None:
  """Appends (seconds, VmRSS kB) of ``pid`` every second until ``done``."""
  t0 = time.perf_counter()
  while not done.wait(1.0):
    try:
      status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
      return
    m = re.search(r"VmRSS:\s+(\d+) kB", status)
    if m:
      samples.append((time.perf_counter() - t0, int(m[1])))


def run_detect(
  video: pathlib.Path, workdir: str, out: pathlib.Path, chunk_frames: int, log: pathlib.Path
) -> dict:
  """Runs detect on ``video`` in a subprocess; returns wall seconds, peak RSS and RSS samples."""
  shutil.rmtree(out, ignore_errors=True)
  cmd = [
    sys.executable,
    "-m",
    "segtube_jax.detect_videos",
    "--video",
    str(video),
    "--workdir",
    workdir,
    "--out",
    str(out),
    "--chunk_frames",
    str(chunk_frames),
  ]
  samples: list[tuple[float, int]] = []
  done = threading.Event()
  start = time.perf_counter()
  with open(log, "w") as f:
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=f, stderr=subprocess.STDOUT)
    sampler = threading.Thread(target=_sample_rss, args=(proc.pid, samples, done), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
  seconds = time.perf_counter() - start
  done.set()
  sampler.join()
  if proc.returncode != 0:
    raise SystemExit(
      f"detect failed on {video} (exit {proc.returncode}); log: {log}\n" + log.read_text()[-3000:]
    )
  return {
    "seconds": seconds,
    "peak_rss_mb": usage.ru_maxrss / 1024,
    "samples": samples,
    "result": json.loads((out / "detections.json").read_text()),
  }


def _half_peaks(samples: list[tuple[float, int]]) -> tuple[float | None, float | None]:
  if len(samples) < 2:
    return None, None
  mid = samples[-1][0] / 2
  first = [kb for t, kb in samples if t <= mid]
  second = [kb for t, kb in samples if t > mid]
  return max(first) / 1024, max(second) / 1024


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the bench's flags (when it runs as a program, never at import)."""
  flags.DEFINE_string("workdir", "runs/demo", "Trained workdir (read only).", flag_values=fv)
  flags.DEFINE_list(
    "runs",
    ["27000@64x64", "108000@64x64", "8000@128x171"],
    "Comma-separated videos to run, FRAMES@HEIGHTxWIDTH each.",
    flag_values=fv,
  )
  flags.register_validator(
    "runs",
    lambda runs: bool(runs) and all(_RUN.fullmatch(r) for r in runs),
    "expected comma-separated FRAMES@HEIGHTxWIDTH (e.g. 27000@64x64,108000@64x64)",
    flag_values=fv,
  )
  flags.DEFINE_integer("chunk_frames", 2048, "detect's --chunk_frames.", flag_values=fv)
  flags.DEFINE_string(
    "cache", "/tmp/segtube_long", "Folder for the generated videos and the outputs.", flag_values=fv
  )
  flags.DEFINE_integer("seed", 0, "Seed of the synthetic videos.", flag_values=fv)
  flags.DEFINE_bool("keep_outputs", False, "Keep each run's detect output folder.", flag_values=fv)
  flags.DEFINE_string("json", "", "Also write the figures to this JSON file.", flag_values=fv)


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  args = flags.FLAGS
  cache = pathlib.Path(args.cache)
  cache.mkdir(parents=True, exist_ok=True)
  rows = []
  for frames, height, width in map(_parse_run, args.runs):
    video = _video(cache, frames, height, width, args.seed)
    name = video.stem
    out = cache / f"out_{name}"
    print(f"detect on {video} ({frames} frames, {width}x{height}) ...", flush=True)
    run = run_detect(video, args.workdir, out, args.chunk_frames, cache / f"{name}.detect.log")
    first, second = _half_peaks(run["samples"])
    result = run["result"]
    masks = sum(1 for _ in (out / "masks").iterdir()) if (out / "masks").is_dir() else 0
    row = {
      "video": str(video),
      "frames": result["num_frames"],
      "size": f"{width}x{height}",
      "chunks": len(result["iterations"]),
      "detections": len(result["detections"]),
      "mask_frames": masks,
      "seconds": round(run["seconds"], 1),
      "ms_per_frame": round(1000 * run["seconds"] / frames, 2),
      "peak_rss_mb": round(run["peak_rss_mb"], 1),
      "peak_rss_first_half_mb": first and round(first, 1),
      "peak_rss_second_half_mb": second and round(second, 1),
      # RSS every 10 s (seconds, MB), for --json: shows whether it creeps up chunk after chunk.
      "rss_trace_mb": [(round(t), round(kb / 1024)) for t, kb in run["samples"][::10]],
    }
    rows.append(row)
    print(
      f"  {row['frames']} frames {row['size']}: {row['seconds']:.1f} s ({row['ms_per_frame']:.2f} ms/frame), "
      f"peak RSS {row['peak_rss_mb']:.0f} MB (first half {first or 0:.0f} MB, second half {second or 0:.0f} MB), "
      f"{row['chunks']} chunks, {row['detections']} detections, {row['mask_frames']} mask frames",
      flush=True,
    )
    if not args.keep_outputs:
      shutil.rmtree(out, ignore_errors=True)

  print(
    f"\n{'frames':>8} {'size':>8} {'wall s':>8} {'ms/frame':>9} {'peak RSS MB':>12} {'1st half':>9} {'2nd half':>9}"
  )
  for r in rows:
    print(
      f"{r['frames']:>8} {r['size']:>8} {r['seconds']:>8.1f} {r['ms_per_frame']:>9.2f} {r['peak_rss_mb']:>12.0f} "
      f"{r['peak_rss_first_half_mb'] or 0:>9.0f} {r['peak_rss_second_half_mb'] or 0:>9.0f}"
    )
  for size in sorted({r["size"] for r in rows}):
    same = sorted((r for r in rows if r["size"] == size), key=lambda r: r["frames"])
    if len(same) > 1:
      lo, hi = same[0], same[-1]
      print(
        f"peak RSS at {size}: {lo['frames']} frames {lo['peak_rss_mb']:.0f} MB -> {hi['frames']} frames "
        f"{hi['peak_rss_mb']:.0f} MB ({hi['frames'] / lo['frames']:.1f}x the length, "
        f"{100 * (hi['peak_rss_mb'] / lo['peak_rss_mb'] - 1):+.1f}% memory)"
      )
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
