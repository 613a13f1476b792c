"""Shared fixtures. Genuine data samples live in ../shared/data (skipped with a reason if absent)."""

from __future__ import annotations

import os
from pathlib import Path

# Two cores shared by test processes: oversubscribed OpenMP threads spin and slow torch ~30x.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"genuine data samples not found at {SHARED_DATA}")
    return SHARED_DATA
