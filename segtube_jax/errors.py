"""Project-wide exception types.

Every error the project raises on bad input derives from :class:`SegtubeError` and carries a
message that names the offending thing (file, line, key, video) and what was expected. One
exception type per family lets callers and tests catch exactly one thing.
"""


class SegtubeError(Exception):
  """Base class of every error segtube-jax raises on bad input."""


class DatasetError(SegtubeError):
  """A dataset folder or its annotations.json violates the dataset format."""


class AnnotationError(DatasetError):
  """An annotation file (THUMOS14 text, annotations.json entry) is malformed."""


class VideoError(SegtubeError):
  """A video file or frame/mask folder cannot be read or is inconsistent."""


class ConfigError(SegtubeError):
  """A config value is unknown or impossible."""


class DetectionFileError(SegtubeError):
  """A detection file (THUMOS14 text or ActivityNet JSON) is malformed."""


class SegmentationError(SegtubeError):
  """The spatial segmentation stage was given input it cannot segment."""


class CheckpointError(SegtubeError):
  """A checkpoint is missing, corrupt or incompatible."""


class OutputError(SegtubeError, OSError):
  """An output file or folder cannot be written (permissions, full disk, read-only file system).

  Also an ``OSError`` carrying the original ``errno``, so ``except OSError`` still catches it.
  """
