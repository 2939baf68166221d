"""Result types shared by every layer: a temporal detection (``DetectedSegment``).

They live at the bottom of the package (beside ``errors`` and ``io_utils``) so that the
detector that makes them (``segtube_jax.detection``) and the scoring and writing that read
them (``segtube_jax.evaluation``) need not import each other.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class DetectedSegment:
  """One temporal detection of a video, in frames.

  Attributes:
    label: class name.
    class_index: 0-based index of ``label`` in the dataset's classes.
    start_frame: first frame of the segment.
    end_frame: one past the last frame (exclusive).
    score: confidence; higher ranks first.
    fps: frame rate of the video, to convert frames to seconds.
  """

  label: str
  class_index: int
  start_frame: int
  end_frame: int
  score: float
  fps: float

  def __post_init__(self):
    if not 0 <= self.start_frame < self.end_frame:
      raise ValueError(
        f"DetectedSegment {self.label!r}: expected 0 <= start_frame < end_frame, "
        f"got [{self.start_frame}, {self.end_frame})"
      )
    if self.class_index < 0:
      raise ValueError(
        f"DetectedSegment {self.label!r}: class_index must be >= 0, got {self.class_index}"
      )
    if not (math.isfinite(self.fps) and self.fps > 0):
      raise ValueError(f"DetectedSegment {self.label!r}: fps must be positive, got {self.fps}")
    if not math.isfinite(self.score):
      # JSON has no NaN/inf and the THUMOS14 reader rejects them.
      raise ValueError(f"DetectedSegment {self.label!r}: score must be finite, got {self.score}")

  @property
  def t0(self) -> float:
    """Start time in seconds."""
    return self.start_frame / self.fps

  @property
  def t1(self) -> float:
    """End time in seconds (the end of the last frame)."""
    return self.end_frame / self.fps

  @property
  def num_frames(self) -> int:
    return self.end_frame - self.start_frame
