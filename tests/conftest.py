"""Shared test fixtures."""

import os
import pathlib

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("SEGTUBE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """The read-only real reference data (../shared/data); skips the test when absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"shared reference data not found at {SHARED_DATA} (set SEGTUBE_SHARED_DATA)")
  return SHARED_DATA
