"""Fixtures for the main-job tests (helpers live in ``mainjob.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_hmtl.data.demo import write_demo_data


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small KuaiRand-1K-format demo data set shared by the main-job tests."""
    root = tmp_path_factory.mktemp("demo")
    write_demo_data(root, rows=8000, seed=3)
    return root
