"""Fixtures for the tower tests (helpers live in ``synthetic.py``)."""

from __future__ import annotations

import pytest

from synthetic import make_batch
from recsys_hmtl.data.batch import Batch


@pytest.fixture
def batch() -> Batch:
    return make_batch()
