"""The stage support table (priority/support.py): every registered stage declares what it supports
and costs, and the README's copy is the generated one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recsys_hmtl.priority import available_stages, build_stage
from recsys_hmtl.priority.registry import STAGES
from recsys_hmtl.priority.support import COLUMNS, RANKS, StageProfile, support_rows, support_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_stage_declares_a_profile():
    rows = support_rows()
    assert [r[0] for r in rows] == [f"`{name}`" for name in available_stages()]
    assert all(len(r) == len(COLUMNS) for r in rows)
    for name in available_stages():
        cls = STAGES.get(name)
        assert isinstance(cls.profile, StageProfile), name
        # gradient stages combine task gradients, and only they say so
        assert (cls.profile.weights == "gradients") == cls.needs_task_grads, name


def test_the_readme_table_is_the_generated_one():
    text = README.read_text()
    block = re.search(r"<!-- stage-support:begin -->\n(.*?)<!-- stage-support:end -->", text, re.S)
    assert block, "README lost its stage-support markers"
    assert block.group(1) == support_table(), "regenerate: python -m recsys_hmtl.priority.support"


def test_profiles_are_checked():
    with pytest.raises(ValueError, match="weights must be one of"):
        StageProfile("vibes", "O(K)", "O(K)")
    assert set(RANKS) == {"fixed", "random", "learned", "losses", "gradients"}
