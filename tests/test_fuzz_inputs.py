"""Property-based fuzzing of the input parsers: annotations.json, THUMOS14 text, detections, configs.

Every target generates valid inputs, which must read back to exactly the values written (so the
tests can fail on a silently wrong parse), and malformed ones: valid documents mutated (dropped
keys, wrong types, NaN / inf / negative / reversed segments, unknown labels, non-UTF-8 bytes,
truncation, extra columns, blank lines, huge numbers, duplicated ids) and raw bytes or token soup
checked against a small reference parser. A malformed input must raise its family's own error
(DatasetError, AnnotationError, DetectionFileError, ConfigError) naming the file and line or key;
any other exception escaping is a bug.

Example counts: 300 per target by default, deterministic (``derandomize=True``, no example
database written). A deeper run sets ``SEGTUBE_FUZZ_EXAMPLES``::

  SEGTUBE_FUZZ_EXAMPLES=3000 .venv/bin/pytest -q tests/test_fuzz_inputs.py
"""

from __future__ import annotations

import copy
import json
import math
import os
import pathlib
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from segtube_jax.data import dataset as dataset_lib
from segtube_jax.data import thumos14
from segtube_jax.errors import AnnotationError, DatasetError, DetectionFileError
from segtube_jax.evaluation import detection_files

EXAMPLES = int(os.environ.get("SEGTUBE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
  max_examples=EXAMPLES,
  deadline=None,
  derandomize=True,
  database=None,
  suppress_health_check=[
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
  ],
)

# Cheap to draw (regex strategies cost more than the parsers under test); never "Ambiguous".
CLASS_NAMES = st.sampled_from(
  [
    "A",
    "Run",
    "LongJump",
    "Diving",
    "CliffDiving",
    "Golf",
    "Bb",
    "X1",
    "PoleVault",
    "Shotput",
    "Cricket",
    "TennisSwing",
    "Billiards",
    "BasketballDunk",
  ]
)
VIDEO_IDS = st.integers(0, 60).map(lambda i: f"video_{i:07d}" if i % 3 else f"v{i}")
NAN, INF = float("nan"), float("inf")
# Not numbers at all, or numbers no parser should accept as a time or rate.
WRONG_TYPES = st.sampled_from(["1.5", None, True, False, [], {}, [1.0], {"a": 1}])
NON_FINITE = st.sampled_from([NAN, INF, -INF])
JUNK_BYTES = st.sampled_from(
  [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xfe\xff"]
)  # Never UTF-8.
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(
  JSON_SCALARS,
  lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
  max_leaves=8,
)
# JSON texts the standard library refuses beyond JSONDecodeError (RecursionError, ValueError) or
# turns into numbers nothing downstream can hold.
PATHOLOGICAL_JSON = st.sampled_from(
  [
    "[" * 100_000,
    '{"a":' * 50_000,
    "9" * 5000,
    "1e999",
    "\ufeff{}",
    '{"classes": ["A"], "database": {"v": ' + "[" * 30_000 + "}}",
  ]
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> pathlib.Path:
  # Thousands of tiny writes: in memory where the machine has a tmpfs (disk rmdir costs ms each).
  if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    path = pathlib.Path(tempfile.mkdtemp(prefix="segtube_fuzz_", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
  else:
    yield tmp_path_factory.mktemp("fuzz")


def _fresh(path: pathlib.Path) -> pathlib.Path:
  """An empty folder at ``path`` (its files removed, the folder kept)."""
  path.mkdir(parents=True, exist_ok=True)
  for child in path.iterdir():
    child.unlink()
  return path


@st.composite
def segments(draw, lo: float = 0.0, hi: float = 1e5) -> tuple[float, float]:
  """A finite ``(t0, t1)`` with ``lo <= t0 < t1 <= hi``."""
  t0 = draw(st.floats(lo, hi, exclude_max=True))
  return t0, draw(st.floats(t0, hi, exclude_min=True))


# ----------------------------------------------------------------------------------------------
# annotations.json (segtube_jax/data/dataset.py; the validator CLI runs validate_dataset).


@st.composite
def dataset_docs(draw, min_videos: int = 0):
  """A valid annotations.json document and the VideoInfo records it must parse to."""
  classes = draw(st.lists(CLASS_NAMES, min_size=1, max_size=4, unique=True))
  ids = draw(st.lists(VIDEO_IDS, min_size=min_videos, max_size=3, unique=True))
  database, expected = {}, {}
  for vid in ids:
    subset = draw(st.sampled_from(dataset_lib.SUBSETS))
    fps = draw(st.none() | st.floats(0.5, 240.0))
    num_frames = draw(st.none() | st.integers(1, 10**6))
    duration = draw(st.none() | st.floats(0.5, 1e5))
    filled = (
      duration if duration is not None else (num_frames / fps if fps and num_frames else None)
    )
    limit = filled if filled is not None else 1e5
    anns = draw(st.lists(st.tuples(st.sampled_from(classes), segments(0.0, limit)), max_size=3))
    amb = draw(st.lists(segments(0.0, limit), max_size=2))
    rec = {
      "subset": subset,
      "fps": fps,
      "num_frames": num_frames,
      "duration": duration,
      "annotations": [{"label": label, "segment": list(seg)} for label, seg in anns],
      "ambiguous": [list(seg) for seg in amb],
    }
    for key in ("fps", "num_frames", "duration", "ambiguous"):  # Optional keys may be left out.
      if not rec[key] and draw(st.booleans()):
        del rec[key]
    database[vid] = rec
    expected[vid] = dataset_lib.VideoInfo(
      vid,
      subset,
      fps,
      num_frames,
      filled,
      tuple(dataset_lib.Instance(l, *s) for l, s in anns),
      tuple(amb),
    )
  doc = {
    "version": draw(st.sampled_from(["", "1.3", "THUMOS14", "v\u00e9", "x" * 40])),
    "classes": classes,
    "database": database,
  }
  return doc, expected


def _bad_segment(draw, limit: float | None, negative: bool = True, empty: bool = True):
  """A segment no reader may accept; ``empty``: t_start == t_end counts as bad (not for detections)."""
  options = [
    st.tuples(st.floats(0, 1e4), st.floats(0, 1e4))
    .filter(lambda p: empty or p[0] != p[1])
    .map(lambda p: [max(p), min(p)]),  # reversed (or empty)
    st.tuples(NON_FINITE, st.floats(0, 1e4)).map(list),
    st.tuples(st.floats(0, 1e4), NON_FINITE).map(list),
    st.sampled_from(
      [
        [1.0],
        [0, 1, 2],
        "0-1",
        None,
        ["0", "1"],
        [True, 2],
        {"0": 1},
        [0, 10**400],
        [-(10**400), 1],
      ]
    ),
    WRONG_TYPES,
  ]
  if empty:
    options.append(st.floats(0, 1e4).map(lambda t: [t, t]))
  if negative:
    options.append(st.tuples(st.floats(-1e4, -1e-3), st.floats(0, 1e4)).map(list))
  if limit is not None:
    options.append(st.floats(limit + 10.0, limit + 1e6).map(lambda t: [0.0, t]))  # past the end
  return draw(st.one_of(options))


def _mutate_dataset(draw, doc: dict, strict: bool = True) -> str:
  """Breaks ``doc`` in place in one way; returns the text the error must contain.

  ``strict``: the dataset loader's rules; otherwise only what the ground-truth reader checks
  (it ignores fps, frame counts, durations and file-name safety of ids).
  """
  vid = sorted(doc["database"])[0]
  rec = doc["database"][vid]
  where = repr(vid)
  kinds = [
    "top",
    "classes",
    "database",
    "record",
    "subset",
    "annotations",
    "label",
    "segment",
    "ambiguous",
  ]
  kind = draw(
    st.sampled_from(kinds + (["fps", "num_frames", "duration", "video_id"] if strict else []))
  )
  if kind == "top":
    doc.clear()
    doc["__replace__"] = draw(st.sampled_from([[], "x", 3, None, [{"classes": ["A"]}]]))
    return "top level" if strict else "expected a JSON object"
  if kind == "classes":
    value = draw(
      st.sampled_from(
        [None, "Run", [], [1], [["Run"]], "missing", "dup"] + ([[""]] if strict else [])
      )
    )
    if value == "missing":
      del doc["classes"]
    elif value == "dup":
      doc["classes"] = doc["classes"] + doc["classes"][:1]
    else:
      doc["classes"] = value
    return "'classes'"
  if kind == "database":
    value = draw(st.sampled_from([None, [], "x", 3, "missing"]))
    if value == "missing":
      del doc["database"]
    else:
      doc["database"] = value
    return "'database'"
  if kind == "record":
    doc["database"][vid] = draw(st.sampled_from([None, [], "x", 3, [rec]]))
    return where
  if kind in ("subset", "fps", "num_frames", "duration"):
    bad = {
      "subset": st.sampled_from(["train", "test", "", "Testing"]) | WRONG_TYPES,
      "fps": st.sampled_from([0, -1, -0.5, 10**400]) | NON_FINITE | WRONG_TYPES,
      "num_frames": st.sampled_from([0, -1, 2.5, 25.0, 10**400, 2**31]) | NON_FINITE | WRONG_TYPES,
      "duration": st.sampled_from([0, -3.0, 10**400]) | NON_FINITE | WRONG_TYPES,
    }[kind]
    value = draw(bad.filter(lambda v: v is not None) if kind != "subset" else bad)
    rec[kind] = value
    return where
  if kind == "annotations":
    rec["annotations"] = draw(st.sampled_from([None, "x", 3, {"label": "A"}]))
    return where
  if kind == "label":
    segment = [0.0, 0.001]
    label = draw(st.sampled_from(["not_a_class", "", None, 3, ["Run"], {"a": 1}, "missing"]))
    ann = {"segment": segment} if label == "missing" else {"label": label, "segment": segment}
    rec.setdefault("annotations", []).append(
      draw(st.sampled_from([ann, "x", None, [label, segment]]))
    )
    return where
  if kind == "segment":
    # The end is checked against the duration only where fps gives the one-frame tolerance.
    limit = (
      (rec.get("duration") or (rec.get("num_frames") or 0) / rec["fps"]) if rec.get("fps") else None
    )
    limit = limit or None
    segment = _bad_segment(draw, limit if strict else None, negative=strict)
    rec.setdefault("annotations", []).append({"label": doc["classes"][0], "segment": segment})
    return where
  if kind == "ambiguous":
    value = draw(st.sampled_from(["list", "x", 3, {"a": 1}, 0, "", False]))
    if value == "list":
      rec.setdefault("ambiguous", []).append(_bad_segment(draw, None, negative=False))
    else:
      rec["ambiguous"] = value
    return where
  # A video id that is no file name: media lookups would escape videos/ or match nothing.
  bad_id = draw(st.sampled_from(["", ".", "..", "../x", "a/b", "/abs", "a\x00b"]))
  doc["database"][bad_id] = doc["database"].pop(vid)
  return "video id"


def _dump(doc: dict) -> str:
  if "__replace__" in doc:
    return json.dumps(doc["__replace__"])
  return json.dumps(doc)


def _break_text(draw, doc: dict) -> tuple[bytes, str]:
  """annotations.json text broken below the JSON level; returns (bytes, text the error must contain)."""
  text = json.dumps(doc, indent=draw(st.sampled_from([None, 1])))
  kind = draw(st.sampled_from(["truncate", "bytes", "duplicate", "pathological"]))
  if kind == "truncate":
    return text[: draw(st.integers(0, len(text) - 1))].encode(), "invalid JSON"
  if kind == "bytes":
    at = draw(st.integers(0, len(text)))
    return text.encode()[:at] + draw(JUNK_BYTES) + text.encode()[at:], "UTF-8"
  if kind == "duplicate":
    vid = sorted(doc["database"])[0]
    entries = list(doc["database"].items()) + [(vid, doc["database"][vid])]
    database = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in entries) + "}"
    return f'{{"classes": {json.dumps(doc["classes"])}, "database": {database}}}'.encode(), repr(
      vid
    )
  return draw(PATHOLOGICAL_JSON).encode(), "annotations.json"


@FUZZ
@given(dataset_docs(min_videos=1), st.data())
def test_dataset_documents(scratch, case, data):
  """Valid documents load to exactly the records written; each broken one fails naming what broke."""
  doc, expected = case
  root = _fresh(scratch / "ds")
  (root / "annotations.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
  ds = dataset_lib.load_dataset(root, check_media=False)
  assert ds.version == doc["version"] and ds.classes == doc["classes"]
  assert ds.videos == expected
  assert dataset_lib.validate_dataset(root, check_media=False) == []
  if data.draw(st.integers(0, 2)):
    bad = copy.deepcopy(doc)
    fragment = _mutate_dataset(data.draw, bad)
    raw = _dump(bad).encode()
  else:
    raw, fragment = _break_text(data.draw, doc)
  (root / "annotations.json").write_bytes(raw)
  with pytest.raises(DatasetError) as info:
    dataset_lib.load_dataset(root, check_media=False)
  assert "annotations.json" in str(info.value) and fragment in str(info.value)
  problems = dataset_lib.validate_dataset(root, check_media=False)  # What the validator CLI prints.
  assert (
    problems and all(isinstance(p, str) for p in problems) and any(fragment in p for p in problems)
  )


@st.composite
def dataset_shaped_json(draw):
  """Random JSON values in the places of a dataset's keys (types the schema does not expect)."""
  rec_keys = ["subset", "fps", "num_frames", "duration", "annotations", "ambiguous"]
  ann = st.dictionaries(
    st.sampled_from(["label", "segment"]), JSON_VALUES | st.sampled_from(["A", [0, 1]])
  )
  rec = st.dictionaries(
    st.sampled_from(rec_keys),
    JSON_VALUES | st.lists(ann, max_size=2) | st.sampled_from(["testing", 25.0, 10]),
  )
  top = {
    "classes": draw(JSON_VALUES | st.just(["A"])),
    "database": draw(
      JSON_VALUES | st.dictionaries(st.text(max_size=4), rec | JSON_VALUES, max_size=3)
    ),
  }
  return draw(st.sampled_from([top, draw(JSON_VALUES)]))


@FUZZ
@given(dataset_shaped_json() | st.binary(max_size=200))
def test_dataset_random_input_never_crashes(scratch, value):
  root = _fresh(scratch / "ds_random")
  raw = value if isinstance(value, bytes) else json.dumps(value).encode()
  (root / "annotations.json").write_bytes(raw)
  try:
    ds = dataset_lib.load_dataset(root, check_media=False)
  except DatasetError as e:
    assert "annotations.json" in str(e)
    return
  # Accepted: every record is a complete, typed VideoInfo.
  assert ds.classes and all(isinstance(c, str) for c in ds.classes)
  for info in ds.videos.values():
    assert info.subset in dataset_lib.SUBSETS
    assert all(inst.label in ds.classes and 0 <= inst.start < inst.end for inst in info.annotations)


@FUZZ
@given(dataset_docs(min_videos=1), st.data())
def test_ground_truth_json(scratch, case, data):
  """load_ground_truth on an annotations.json: exact arrays when valid, a named error when not."""
  doc, expected = case
  vid = sorted(doc["database"])[0]
  subset = expected[vid].subset
  path = _fresh(scratch / "gt_json") / "annotations.json"
  path.write_text(json.dumps(doc), encoding="utf-8")
  gt = detection_files.load_ground_truth(path, subset)
  infos = [expected[v] for v in doc["database"] if expected[v].subset == subset]
  assert gt.classes == tuple(doc["classes"])
  assert gt.video.tolist() == [i.video_id for i in infos for _ in i.annotations]
  assert gt.label.tolist() == [doc["classes"].index(a.label) for i in infos for a in i.annotations]
  assert gt.segment.tolist() == [[a.start, a.end] for i in infos for a in i.annotations]
  assert gt.ambiguous_segment.tolist() == [list(s) for i in infos for s in i.ambiguous]
  bad = copy.deepcopy(doc)
  fragment = _mutate_dataset(data.draw, bad, strict=False)
  path.write_text(_dump(bad), encoding="utf-8")
  with pytest.raises(DatasetError) as info:  # AnnotationError is a DatasetError.
    detection_files.load_ground_truth(path, subset)
  assert str(info.value).startswith(f"{path}:") and fragment in str(info.value)


# ----------------------------------------------------------------------------------------------
# THUMOS14 annotation folders (segtube_jax/data/thumos14.py) and the ground truth read from them.

CLASS_LIST = thumos14.CLASS_LIST_FILENAME


def _seconds(draw, ms: int) -> str:
  """A time written in one of the ways annotation files spell seconds (all exact for ``ms``)."""
  style = draw(st.sampled_from(["fixed", "repr", "exp", "int"]))
  if style == "int" and ms % 1000 == 0:
    return str(ms // 1000)
  if style == "exp":
    return f"{ms / 1000:.9e}"
  return repr(ms / 1000) if style == "repr" else f"{ms / 1000:.3f}"


def _layout(draw, rows: list[list[str]]) -> tuple[list[str], str]:
  """Physical lines of a text file holding ``rows``: blank lines, separators, padding, line ends."""
  sep = draw(st.sampled_from([" ", "\t", "  ", " \t "]))
  pad = draw(st.sampled_from(["", " ", "\t"]))
  lines = [pad + sep.join(fields) + pad[::-1] for fields in rows]
  for at in sorted(draw(st.lists(st.integers(0, len(lines)), max_size=2)), reverse=True):
    lines.insert(at, draw(st.sampled_from(["", " ", "\t  "])))
  return lines, draw(st.sampled_from(["\n", "\r\n"]))


def _text(lines: list[str], eol: str) -> str:
  return eol.join(lines) + (eol if lines else "")


@st.composite
def thumos_folders(draw):
  """(classes, subset, {file name: (rows, physical lines, eol)}) of a valid annotation folder."""
  classes = draw(st.lists(CLASS_NAMES, min_size=1, max_size=4, unique=True))
  subset = draw(st.sampled_from(sorted(thumos14.SUBSET_SUFFIXES)))
  suffix = thumos14.SUBSET_SUFFIXES[subset]
  videos = draw(st.lists(VIDEO_IDS, min_size=1, max_size=4, unique=True))
  rows = {
    CLASS_LIST: [[str(i + 1), classes[i]] for i in draw(st.permutations(range(len(classes))))]
  }
  for name in classes + [thumos14.AMBIGUOUS_CLASS]:
    rows[f"{name}_{suffix}.txt"] = []
    for _ in range(draw(st.integers(0, 3))):
      t0 = draw(st.integers(0, 10**7 - 1))
      t1 = draw(st.integers(t0 + 1, 10**7))
      rows[f"{name}_{suffix}.txt"].append(
        [draw(st.sampled_from(videos)), _seconds(draw, t0), _seconds(draw, t1)]
      )
  return classes, subset, {name: (r, *_layout(draw, r)) for name, r in rows.items()}


def _write_files(root: pathlib.Path, files: dict) -> pathlib.Path:
  _fresh(root)
  for name, content in files.items():
    (root / name).write_bytes(
      content if isinstance(content, bytes) else _text(*content[1:]).encode()
    )
  return root


def _expected_thumos(classes, subset, files) -> dict:
  suffix = thumos14.SUBSET_SUFFIXES[subset]
  database = {}
  for name in classes + [thumos14.AMBIGUOUS_CLASS]:
    for video, t0, t1 in files[f"{name}_{suffix}.txt"][0]:
      entry = database.setdefault(
        video,
        {
          "subset": subset,
          "fps": None,
          "num_frames": None,
          "duration": None,
          "annotations": [],
          "ambiguous": [],
        },
      )
      if name == thumos14.AMBIGUOUS_CLASS:
        entry["ambiguous"].append([float(t0), float(t1)])
      else:
        entry["annotations"].append({"label": name, "segment": [float(t0), float(t1)]})
  return {
    "version": thumos14.DATASET_VERSION,
    "classes": classes,
    "database": {v: database[v] for v in sorted(database)},
  }


def _check_thumos_round_trip(root: pathlib.Path, classes, subset, files) -> None:
  expected = _expected_thumos(classes, subset, files)
  assert thumos14.load_thumos14_annotations(root, subset) == expected
  assert dataset_lib.parse_annotations(expected)[3] == []  # The converted dataset is valid.
  if not expected["database"]:
    with pytest.raises(DatasetError, match="no video has subset"):
      detection_files.load_ground_truth(root, subset)
    return
  gt = detection_files.load_ground_truth(root, subset)
  anns = [(v, a) for v, e in expected["database"].items() for a in e["annotations"]]
  assert gt.classes == tuple(classes)
  assert gt.video.tolist() == [v for v, _ in anns]
  assert gt.label.tolist() == [classes.index(a["label"]) for _, a in anns]
  assert gt.segment.tolist() == [a["segment"] for _, a in anns]
  assert gt.ambiguous_segment.tolist() == [
    s for e in expected["database"].values() for s in e["ambiguous"]
  ]


BAD_INTERVAL_LINES = [
  "v",
  "v 1",
  "1 2",
  "v 1 2 3",
  "v abc 2",
  "v 1 2x",
  "v nan 2",
  "v 1 inf",
  "v -inf 2",
  "v 1 1e999",
  "v 5 2",
  "v 2 2",
  "v -1 2",
  "v 1,5 2",
  "v 0x1 2",
  "v 1 NaN",
  "v 1 2 # note",
]
BAD_CLASS_LINES = [
  "x Foo",
  "1",
  "1 Foo Bar",
  "1.0 Foo",
  "-1 Foo",
  "0 Foo",
  "{n} Ambiguous",
  "{n} {dup}",
  "1 Other",
  "{gap} Foo",
  "99999999999999999999 Foo",
]


@FUZZ
@given(thumos_folders(), st.data())
def test_thumos14_folders(scratch, case, data):
  """Valid folders convert to exactly the intervals written; each broken one fails naming file and line."""
  classes, subset, files = case
  _check_thumos_round_trip(_write_files(scratch / "th", files), classes, subset, files)
  files = dict(files)
  suffix = thumos14.SUBSET_SUFFIXES[subset]
  kind = data.draw(
    st.sampled_from(["line", "class_line", "bytes", "unknown_file", "missing_file", "empty_list"])
  )
  name = data.draw(st.sampled_from(sorted(n for n in files if n != CLASS_LIST)))
  rows, lines, eol = files[name]
  if kind in ("line", "class_line"):
    if kind == "class_line":
      name = CLASS_LIST
      rows, lines, eol = files[name]
      n = len(classes) + 1
      bad = data.draw(st.sampled_from(BAD_CLASS_LINES)).format(n=n, dup=classes[0], gap=n + 1)
    else:
      bad = data.draw(st.sampled_from(BAD_INTERVAL_LINES))
    at = data.draw(st.integers(0, len(lines)))
    lines = lines[:at] + [bad] + lines[at:]
    files[name] = (rows, lines, eol)
    # Class-list errors about the id set as a whole name the file only.
    fragment = f"{name}:{at + 1}:" if kind == "line" else name
  elif kind == "bytes":
    raw = _text(lines, eol).encode()
    at = data.draw(st.integers(0, len(raw)))
    files[name] = raw[:at] + data.draw(JUNK_BYTES) + raw[at:]
    fragment = f"{name}: expected a text file"
  elif kind == "unknown_file":
    name = f"Zzzzzzzzz_{suffix}.txt"  # No generated class has this name.
    files[name] = ([], ["v 1 2"], "\n")
    fragment = name
  elif kind == "missing_file":
    del files[name]
    fragment = name
  else:
    name = CLASS_LIST
    files[name] = ([], data.draw(st.sampled_from([[], [""], [" ", "\t"]])), "\n")
    fragment = name
  root = _write_files(scratch / "th", files)
  with pytest.raises(AnnotationError) as info:
    thumos14.load_thumos14_annotations(root, subset)
  assert fragment in str(info.value)
  with pytest.raises(AnnotationError) as info:
    detection_files.load_ground_truth(root, subset)
  assert fragment in str(info.value)


# Token soup: numbers in every spelling Python's float() takes or refuses, names, junk, odd whitespace.
TOKENS = st.sampled_from(
  [
    "video_a",
    "v.mp4",
    "x.mpeg",
    "1",
    "2.5",
    "-1",
    "0",
    "1e3",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "abc",
    "1_0",
    "+3",
    "0x1",
    "\u00e9t\u00e9",
    "\u0663",
    "3",
    "10",
    ".5",
    "5.",
    "1e-3",
  ]
)
SEPARATORS = st.sampled_from([" ", "\t", "  ", "\u3000", "\x0b", "\xa0"])
EOLS = st.sampled_from(["\n", "\r\n", "\r", "\x0c", "\x1e", "\x85", "\u2028"])


@st.composite
def token_texts(draw, width: int) -> str:
  lines = draw(
    st.lists(st.lists(TOKENS, min_size=max(0, width - 1), max_size=width + 1), max_size=5)
  )
  return "".join(draw(SEPARATORS).join(fields) + draw(EOLS) for fields in lines)


def _finite(text: str) -> float | None:
  try:
    value = float(text)
  except ValueError:
    return None
  return value if math.isfinite(value) else None


def _reference_intervals(text: str) -> list | None:
  """What read_interval_file must return for ``text`` (decoded), or None when it must refuse it."""
  rows = []
  for line in text.splitlines():
    fields = line.split()
    if not fields:
      continue
    if (
      len(fields) != 3
      or None in (t := (_finite(fields[1]), _finite(fields[2])))
      or not 0 <= t[0] < t[1]
    ):
      return None
    rows.append((fields[0], *t))
  return rows


def _write_soup(path: pathlib.Path, content: str | bytes) -> str | None:
  """Writes generated text (as UTF-8) or bytes to ``path``; returns the text a reader sees, or
  None when the bytes are not UTF-8 (the reader must then refuse the file)."""
  raw = content if isinstance(content, bytes) else content.encode("utf-8")
  path.write_bytes(raw)
  try:
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
  except UnicodeDecodeError:
    return None


@FUZZ
@given(
  token_texts(3)
  | st.binary(max_size=120).map(lambda b: b.decode("latin-1"))
  | st.binary(max_size=60)
)
def test_interval_file_matches_reference(scratch, content):
  path = _fresh(scratch / "th_soup") / "Run_test.txt"
  text = _write_soup(path, content)
  expected = None if text is None else _reference_intervals(text)
  if expected is None:
    with pytest.raises(AnnotationError) as info:
      thumos14.read_interval_file(path)
    assert str(info.value).startswith(f"{path}")
  else:
    assert thumos14.read_interval_file(path) == expected


# ----------------------------------------------------------------------------------------------
# Detection files (segtube_jax/evaluation/detection_files.py): THUMOS14 text and ActivityNet JSON.

FINITE = st.floats(-1e6, 1e6)


@st.composite
def detection_rows(draw, classes: list[str], max_rows: int = 6):
  """(video as written, video as read, class index, t0, t1, score) rows, t0 <= t1."""
  rows = []
  for _ in range(draw(st.integers(0, max_rows))):
    video = draw(VIDEO_IDS)
    written = video + draw(st.sampled_from(["", "", ".mp4", ".mpeg"]))
    t0, t1 = sorted((draw(FINITE), draw(FINITE)))
    rows.append((written, video, draw(st.integers(0, len(classes) - 1)), t0, t1, draw(FINITE)))
  return rows


def _number(draw, x: float) -> str:
  return draw(st.sampled_from([repr(x), f"{x:.17g}", f"{x:.17e}"]))


def _check_detections(dets, rows):
  assert dets.video.tolist() == [r[1] for r in rows]
  assert dets.label.tolist() == [r[2] for r in rows]
  assert dets.segment.reshape(-1).tolist() == [t for r in rows for t in r[3:5]]
  assert dets.score.tolist() == [r[5] for r in rows]


BAD_DETECTION_LINES = [
  "v 1 2 1",
  "v 1 2 1 0.5 extra",
  "v",
  "v 1 x 1 0.5",
  "v 1 2 1 nan",
  "v inf 2 1 0.5",
  "v 1 2 1.0 0.5",
  "v 1 2 0 0.5",
  "v 1 2 {n} 0.5",
  "v 5 2 1 0.5",
  "v 1 2 -1 0.5",
  "v 1 2 99999999999999999999999 0.5",
  "v 1 1e999 1 0.5",
  "v 1 2 1 -inf",
  "v 1 2 one 0.5",
]


@FUZZ
@given(st.lists(CLASS_NAMES, min_size=1, max_size=4, unique=True), st.data())
def test_thumos14_detection_files(scratch, classes, data):
  """Valid files read back exactly; a bad line or non-UTF-8 byte fails naming the file and line."""
  rows = data.draw(detection_rows(classes))
  fields = [
    [w, _number(data.draw, t0), _number(data.draw, t1), str(c + 1), _number(data.draw, s)]
    for w, _, c, t0, t1, s in rows
  ]
  lines, eol = _layout(data.draw, fields)
  path = _fresh(scratch / "det_txt") / data.draw(st.sampled_from(["dets.txt", "dets"]))
  path.write_text(_text(lines, eol), encoding="utf-8")
  _check_detections(detection_files.read_detections(path, classes), rows)
  if data.draw(st.booleans()):
    at = data.draw(st.integers(0, len(lines)))
    lines.insert(at, data.draw(st.sampled_from(BAD_DETECTION_LINES)).format(n=len(classes) + 1))
    path.write_text(_text(lines, eol), encoding="utf-8")
    fragment = f"{path}:{at + 1}: expected"
  else:
    raw = _text(lines, eol).encode()
    at = data.draw(st.integers(0, len(raw)))
    path.write_bytes(raw[:at] + data.draw(JUNK_BYTES) + raw[at:])
    fragment = f"{path}: expected a text file"
  with pytest.raises(DetectionFileError) as info:
    detection_files.read_detections(path, classes)
  assert str(info.value).startswith(fragment)


def _reference_detections(text: str, num_classes: int) -> list | None:
  rows = []
  for line in text.splitlines():
    f = line.split()
    if not f:
      continue
    if len(f) != 5:
      return None
    t0, t1, score = _finite(f[1]), _finite(f[2]), _finite(f[4])
    try:
      class_id = int(f[3])
    except ValueError:
      return None
    if None in (t0, t1, score) or t0 > t1 or not 1 <= class_id <= num_classes:
      return None
    video = f[0][:-4] if f[0].endswith(".mp4") else f[0][:-5] if f[0].endswith(".mpeg") else f[0]
    rows.append((f[0], video, class_id - 1, t0, t1, score))
  return rows


@FUZZ
@given(
  token_texts(5)
  | st.binary(max_size=120).map(lambda b: b.decode("latin-1"))
  | st.binary(max_size=60)
)
def test_thumos14_detections_match_reference(scratch, content):
  path = _fresh(scratch / "det_soup") / "dets.txt"
  text = _write_soup(path, content)
  expected = None if text is None else _reference_detections(text, 3)
  if expected is None:
    with pytest.raises(DetectionFileError) as info:
      detection_files.read_thumos14_detections(path, ["A", "B", "C"])
    assert str(info.value).startswith(f"{path}")
  else:
    _check_detections(detection_files.read_thumos14_detections(path, ["A", "B", "C"]), expected)


@st.composite
def activitynet_docs(draw):
  """(classes, document, rows) of a valid ActivityNet result file."""
  classes = draw(st.lists(CLASS_NAMES, min_size=1, max_size=4, unique=True))
  results, rows = {}, []
  for video in draw(st.lists(VIDEO_IDS, max_size=3, unique=True)):
    results[video] = []
    for _, _, c, t0, t1, score in draw(detection_rows(classes, 3)):
      item = {"label": classes[c], "score": score, "segment": [t0, t1]}
      if draw(st.booleans()):
        item = dict(reversed(list(item.items())), extra=draw(JSON_SCALARS.filter(lambda v: v == v)))
      results[video].append(item)
      rows.append((video, video, c, t0, t1, score))
  doc = {"results": results}
  for key in draw(st.lists(st.sampled_from(["version", "external_data"]), unique=True)):
    doc[key] = draw(JSON_SCALARS)
  return classes, doc, rows


def _mutate_activitynet(draw, doc: dict, classes: list[str]) -> tuple[str, str]:
  """Breaks ``doc`` in one way; returns (JSON text, text the error must contain)."""
  results = doc["results"]
  video = draw(VIDEO_IDS)
  results.setdefault(video, [])
  item = {"label": classes[0], "score": 0.5, "segment": [0.0, 1.0]}
  key = f"results[{video!r}]"
  kind = draw(
    st.sampled_from(
      ["top", "results", "items", "item", "missing", "label", "score", "segment", "duplicate"]
    )
  )
  if kind == "top":
    return json.dumps(draw(st.sampled_from([[], "x", 1, None, {"result": {}}, [doc]]))), "'results'"
  if kind == "results":
    doc["results"] = draw(st.sampled_from([[], "x", 1, None, [results]]))
    return json.dumps(doc), "'results'"
  if kind == "items":
    results[video] = draw(st.sampled_from([{}, "x", 1, None, item]))
    return json.dumps(doc), key
  j = len(results[video])
  if kind == "item":
    results[video].append(draw(st.sampled_from([None, 1, "x", [item]])))
    return json.dumps(doc), f"{key}[{j}]"
  if kind == "missing":
    del item[draw(st.sampled_from(sorted(item)))]
  elif kind == "duplicate":
    text = json.dumps(doc)
    dup = f"{json.dumps(video)}: {json.dumps([item])}, "
    return text.replace('"results": {', '"results": {' + dup, 1), repr(video)
  else:
    item[kind] = draw(
      {
        "label": st.sampled_from(["not_a_class", "", None, 1, ["A"], {"A": 1}]),
        "score": st.sampled_from([None, "0.5", True, [0.5], 10**400, -(10**400)]) | NON_FINITE,
        "segment": st.builds(
          _bad_segment, st.just(draw), st.none(), st.just(False), st.just(False)
        ),
      }[kind]
    )
  results[video].append(item)
  return json.dumps(doc), f"{key}[{j}]"


@FUZZ
@given(activitynet_docs(), st.data())
def test_activitynet_detections(scratch, case, data):
  classes, doc, rows = case
  folder = _fresh(scratch / "det_json")
  path = folder / data.draw(
    st.sampled_from(["dets.json", "dets.txt"])
  )  # Text files starting with '{' are JSON.
  path.write_text(json.dumps(doc, indent=data.draw(st.sampled_from([None, 2]))), encoding="utf-8")
  _check_detections(detection_files.read_detections(path, classes), rows)
  kind = data.draw(st.sampled_from(["mutate", "mutate", "truncate", "bytes", "pathological"]))
  text = json.dumps(doc)
  if kind == "mutate":
    text, fragment = _mutate_activitynet(data.draw, copy.deepcopy(doc), classes)
    raw = text.encode()
  elif kind == "truncate":
    raw, fragment = text[: data.draw(st.integers(1, len(text) - 1))].encode(), "invalid JSON"
  elif kind == "bytes":
    at = data.draw(st.integers(0, len(text)))
    raw, fragment = (
      text.encode()[:at] + data.draw(JUNK_BYTES) + text.encode()[at:],
      "expected a text file",
    )
  else:
    raw, fragment = data.draw(PATHOLOGICAL_JSON).encode(), "JSON"
  path = folder / "bad.json"
  path.write_bytes(raw)
  with pytest.raises(DetectionFileError) as info:
    detection_files.read_detections(path, classes)
  assert str(info.value).startswith(f"{path}") and fragment in str(info.value)


ACTIVITYNET_SHAPED = st.fixed_dictionaries(
  {
    "results": JSON_VALUES
    | st.dictionaries(
      st.text(max_size=4),
      JSON_VALUES
      | st.lists(
        st.dictionaries(st.sampled_from(["label", "score", "segment"]), JSON_VALUES | st.just("A")),
        max_size=2,
      ),
    )
  }
)


@FUZZ
@given(JSON_VALUES | ACTIVITYNET_SHAPED)
def test_activitynet_random_json_never_crashes(scratch, value):
  path = _fresh(scratch / "det_json_random") / "dets.json"
  path.write_text(json.dumps(value), encoding="utf-8")
  try:
    dets = detection_files.read_detections(path, ["A", "B"])
  except DetectionFileError as e:
    assert str(e).startswith(str(path))
    return
  assert np.isfinite(dets.segment).all() and np.isfinite(dets.score).all()
  assert (dets.segment[:, 0] <= dets.segment[:, 1]).all() and set(dets.label.tolist()) <= {0, 1}


# ----------------------------------------------------------------------------------------------
# Config overrides: --config.key=value parsed by ml_collections' config flag exactly as train.py does,
# then segtube_jax.schema.validate (which runs before anything is built).

CONFIG_FILE = pathlib.Path(__file__).resolve().parents[1] / "configs" / "synthetic.py"
_CHOICES = {
  "clips.mask_source": ("none", "saliency", "dataset", "folder"),
  "clips.saliency_mode": ("multiply", "blend_mean", "none"),
  "distributed": ("auto", "on", "off"),
  "optimizer.name": ("sgd", "adam"),
  "optimizer.schedule": ("constant", "step", "cosine"),
  "model.dtype": ("float32", "bfloat16"),
  "model.pool5_padding": ("torch", "caffe"),
  "model.conv_norm": ("none", "group"),
  "model.input_norm": ("kinetics", "c3d_sports1m"),
  "model.conv_impl": None,
  "dataset.encoding": ("png", "jpeg"),
}  # conv_impl: models.conv.CONV_IMPLS
_STRINGS = ["", "magic", "SGD", " adam", "runs/x", "none"]
_INTS = [
  "0",
  "1",
  "-1",
  "2",
  "3",
  "16",
  "17",
  "64",
  "100000",
  "4294967296",
  "-0",
  "0x10",
  "abc",
  "1.5",
  "",
  "1e3",
]
_FLOATS = [
  "0",
  "0.0",
  "0.5",
  "1",
  "1.0",
  "-0.1",
  "nan",
  "inf",
  "-inf",
  "1e309",
  "0.999",
  "1e-8",
  "2",
  "abc",
  "",
]
_BOOLS = ["true", "false", "True", "0", "1", "yes", "maybe"]
_TUPLES = [
  "()",
  "(16, 32)",
  "(8,)",
  "(16,)",
  "('a',)",
  "(16.5, 32)",
  "(16, None)",
  "((1, 2),)",
  "(0, 0)",
  "(-1, 5)",
  "(1e309,)",
  "(True, 32)",
  "(32, 16, 8)",
  "(36, 36)",
  "(16, 16)",
  "(112, 112)",
  "16",
  "(0.5, 0.8)",
  "(0.5, 1.5)",
  "(nan,)",
  "[16, 32]",
  "(16, 112, 112)",
  "(16, 16, 16)",
  "(16, 36, 36)",
  "(16, 0, 36)",
  "(16, 32, 32)",
  "(17, 32, 32)",
  "(16, 8, 8)",
  "(48, 64)",
]
_TRAINING_SECTIONS = ("dataset", "clips", "model", "optimizer", "train")


def _training_keys() -> dict[str, object]:
  from configs import synthetic  # pylint: disable=import-outside-toplevel

  config, keys = synthetic.get_config(), {}
  for key, value in config.items():
    if key in _TRAINING_SECTIONS:
      keys.update({f"{key}.{k}": v for k, v in value.items()})
    elif not isinstance(value, type(config)):
      keys[key] = value
  return keys


def _override_values(keys: dict[str, object]):
  pairs = []
  for key, default in sorted(keys.items()):
    if key in _CHOICES:
      from segtube_jax.models import conv  # pylint: disable=import-outside-toplevel

      values = list(_CHOICES[key] or conv.CONV_IMPLS) + _STRINGS
    else:
      values = {bool: _BOOLS, int: _INTS, float: _FLOATS, str: _STRINGS, tuple: _TUPLES}[
        type(default)
      ]
    pairs.append(st.tuples(st.just(key), st.sampled_from(values)))
  return st.one_of(pairs)


def _real(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v, low: int) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _pair(v) -> bool:
  return isinstance(v, (tuple, list)) and len(v) == 2 and all(_int(x, 1) for x in v)


def _invalid_keys(c) -> set[str]:
  """The reference: keys whose value training cannot use (independent of segtube_jax.schema)."""
  from segtube_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from segtube_jax.models import c3d, conv  # pylint: disable=import-outside-toplevel

  m, cl, o, t = c.model, c.clips, c.optimizer, c.train
  rules = {
    "seed": _int(c.seed, 0) and c.seed < 2**32,
    "dataset.root": bool(c.dataset.root),
    "dataset.frame_size": not c.dataset.frame_size or _pair(c.dataset.frame_size),
    "dataset.chunk_len": _int(c.dataset.chunk_len, 1),
    "dataset.encoding": c.dataset.encoding in _CHOICES["dataset.encoding"],
    "clips.window_lengths": bool(cl.window_lengths) and all(_int(x, 16) for x in cl.window_lengths),
    "clips.overlap": _real(cl.overlap) and 0 <= cl.overlap < 1,
    "clips.positive_coverage": _real(cl.positive_coverage) and 0 < cl.positive_coverage <= 1,
    "clips.background_coverage": _real(cl.background_coverage) and 0 <= cl.background_coverage < 1,
    "clips.seq_len": _int(cl.seq_len, 1),
    "clips.resize": not cl.resize or _pair(cl.resize),
    "clips.mask_source": cl.mask_source in _CHOICES["clips.mask_source"],
    "clips.mask_dir": cl.mask_source != "folder" or bool(cl.mask_dir),
    "clips.saliency_workers": _int(cl.saliency_workers, 0),
    "clips.saliency_mode": cl.saliency_mode in _CHOICES["clips.saliency_mode"],
    "clips.background_weight": _real(cl.background_weight) and 0 <= cl.background_weight <= 1,
    "model.width_multiplier": _real(m.width_multiplier) and m.width_multiplier > 0,
    "model.dropout_rate": _real(m.dropout_rate) and 0 <= m.dropout_rate < 1,
    "model.conv_impl": m.conv_impl in conv.CONV_IMPLS,
    **{
      f"model.{k}": m[k] in _CHOICES[f"model.{k}"]
      for k in ("dtype", "pool5_padding", "conv_norm", "input_norm")
    },
    **{
      f"model.{k}": _int(m[k], 1) for k in ("fc_dim", "lstm_features", "lstm_layers", "in_channels")
    },
    # Sports-1M weights fit only the plain C3D (their file is read later, by training).
    "model.pretrained_c3d": not m.pretrained_c3d or (m.conv_norm == "none" and not m.input_diff),
    "optimizer.name": o.name in _CHOICES["optimizer.name"],
    "optimizer.schedule": o.schedule in _CHOICES["optimizer.schedule"],
    "optimizer.learning_rate": _real(o.learning_rate) and o.learning_rate > 0,
    "optimizer.momentum": _real(o.momentum) and 0 <= o.momentum < 1,
    "optimizer.weight_decay": _real(o.weight_decay) and o.weight_decay >= 0,
    "optimizer.step_boundaries": all(_real(f) and 0 <= f <= 1 for f in o.step_boundaries),
    "optimizer.step_factor": _real(o.step_factor) and o.step_factor > 0,
    "optimizer.warmup_steps": _int(o.warmup_steps, 0),
    "optimizer.grad_clip_norm": _real(o.grad_clip_norm) and o.grad_clip_norm >= 0,
    **{
      f"train.{k}": _int(t[k], 1)
      for k in (
        "num_steps",
        "global_batch_size",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
      )
    },
    "train.microbatch_size": _int(t.microbatch_size, 0),
    "data_workers": _int(c.data_workers, -1),
    "data_threads": _int(c.data_threads, 0),
    "data_prefetch": _int(c.data_prefetch, 0),
    "distributed": c.get("distributed", "auto") in ("auto", "on", "off"),
  }
  shape = m.clip_shape
  try:
    shape_ok = (
      isinstance(shape, (tuple, list))
      and len(shape) == 3
      and all(_int(x, 1) for x in shape)
      and shape[0] == 16
      and c3d.c3d_pool5_shape(shape, m.pool5_padding) is not None
    )
  except ConfigError:
    shape_ok = False
  rules["model.clip_shape"] = shape_ok
  bad = {key for key, ok in rules.items() if not ok}
  if not bad and not cl.background_coverage < cl.positive_coverage:
    bad.add("clips.background_coverage")
  if not bad and cl.resize and (cl.resize[0] < shape[1] or cl.resize[1] < shape[2]):
    bad.add("clips.resize")
  if (
    not bad and cl.mask_source == "saliency" and not c.dataset.frame_size
  ):  # B_o is stored at that size.
    bad.add("clips.mask_source")
  # Microbatches split the batch into equal parts (a microbatch of the whole batch or more: no split).
  if (
    not bad
    and 0 < t.microbatch_size < t.global_batch_size
    and t.global_batch_size % t.microbatch_size
  ):
    bad.add("train.microbatch_size")
  return bad


def _parse_overrides(overrides: list[tuple[str, str]]):
  from absl import flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel

  argv = ["train.py", f"--config={CONFIG_FILE}", *(f"--config.{k}={v}" for k, v in overrides)]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    "config", None, flag_values=flag_values, lock_config=True, sys_argv=argv
  )
  flag_values(argv)
  return flag_values.config


@FUZZ
@given(
  st.lists(
    st.deferred(lambda: _override_values(_training_keys())),
    min_size=1,
    max_size=3,
    unique_by=lambda kv: kv[0],
  )
)
def test_config_overrides(overrides):
  """Type-invalid values fail in the flag parser, impossible ones in schema.validate, naming the key."""
  from absl import flags  # pylint: disable=import-outside-toplevel

  from segtube_jax import schema  # pylint: disable=import-outside-toplevel
  from segtube_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel

  try:
    config = _parse_overrides(overrides)
  except flags.Error as e:  # absl's own message: "flag --config.key=value: ..."
    assert any(f"--config.{k}={v}" in str(e) for k, v in overrides), str(e)
    return
  bad = _invalid_keys(config)
  if not bad:
    schema.validate(config, 1)
    return
  with pytest.raises(ConfigError) as info:
    schema.validate(config, 1)
  assert any(key.split(".")[-1] in str(info.value) for key in bad), (bad, str(info.value))
