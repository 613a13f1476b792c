"""Fixtures of the data-layer tests: a small demo data set and a private copy of it per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_hmtl.data.demo import write_demo_data


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    write_demo_data(out, rows=4000, seed=3, users=60)
    return out


@pytest.fixture
def root(demo, tmp_path) -> Path:
    """A private copy of the demo files (tests touch and break them)."""
    for path in (demo / "data").iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path
