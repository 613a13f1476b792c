"""Mergeable per-shard counts: shards merged == the whole, exactly; state round trips."""

from __future__ import annotations

import io
import math
import pickle

import numpy as np
import pytest

from recsys_hmtl.evaluation import ScoreCounts, auc, gauc
from recsys_hmtl.evaluation import counts as counts_mod

TASKS = ["click", "like", "hate"]


def data(seed: int = 0, n: int = 9_000):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.4, 0.1, 0.01]).astype(np.int64)
    s = (np.floor((rng.random((n, 3)) + 0.3 * y) * 50) / 50).astype(np.float32)  # many ties
    g = rng.integers(0, 300, n)
    return y, s, g


def assert_same_as_whole(c: ScoreCounts, y, s, g):
    assert c.rows == len(y)
    for j, t in enumerate(TASKS):
        assert c.auc(t) == auc(y[:, j], s[:, j])  # exact, not approximate
        assert c.gauc(t) == gauc(y[:, j], s[:, j], g)
        assert c.positives(t) == int(y[:, j].sum())


def shards(y, s, g, cuts=(1_000, 5_500)):
    parts = []
    for lo, hi in zip((0, *cuts), (*cuts, len(y))):
        c = ScoreCounts(TASKS)
        c.update(y[lo:hi], s[lo:hi], g[lo:hi])
        parts.append(c)
    return parts


def test_three_shards_merged_equal_the_whole_exactly():
    y, s, g = data()
    a, b, c = shards(y, s, g)
    assert_same_as_whole(a + b + c, y, s, g)
    assert_same_as_whole(ScoreCounts.merge_all([c, a, b]), y, s, g)  # order does not matter
    assert a.rows == 1_000  # merging leaves the inputs alone
    assert a.auc("click") == auc(y[:1_000, 0], s[:1_000, 0])


def test_many_small_updates_with_compaction(monkeypatch):
    monkeypatch.setattr(counts_mod, "_COMPACT_MIN_ROWS", 64)
    y, s, g = data(1, 5_000)
    c = ScoreCounts(TASKS)
    for lo in range(0, len(y), 97):
        c.update(y[lo:lo + 97], s[lo:lo + 97], g[lo:lo + 97])
    assert_same_as_whole(c, y, s, g)
    # distinct scores only: at most 2·50 grid values (+ the 0.3 shift) per task, not 5000 rows
    assert max(len(v) for v in c.to_state()["values"]) < 200


def test_state_round_trip_through_pickle_and_torch_save():
    y, s, g = data(2)
    parts = shards(y, s, g)
    # what all_gather_object does: pickle each rank's state
    states = [pickle.loads(pickle.dumps(p.to_state())) for p in parts]
    assert_same_as_whole(ScoreCounts.merge_all(ScoreCounts.from_state(st) for st in states), y, s, g)
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save([p.to_state(as_tensors=True) for p in parts], buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert_same_as_whole(ScoreCounts.merge_all(ScoreCounts.from_state(st) for st in loaded), y, s, g)


def test_auc_only_mode_and_single_task_1d_input():
    y, s, _ = data(3)
    c = ScoreCounts(["click"], with_groups=False)
    c.update(y[:, 0], s[:, 0])
    assert c.auc("click") == auc(y[:, 0], s[:, 0])
    assert set(c.to_state()) == {"tasks", "rows", "with_groups", "values", "positives", "negatives"}
    with pytest.raises(ValueError, match="with_groups=True"):
        c.gauc("click")
    with pytest.raises(ValueError, match="with_groups=False"):
        c.update(y[:, 0], s[:, 0], np.zeros(len(y)))


def test_caller_buffers_can_be_reused_after_update():
    y, s, g = data(4, 1_000)
    ref = (auc(y[:, 1], s[:, 1]), gauc(y[:, 1], s[:, 1], g))
    c = ScoreCounts(TASKS)
    yb, sb, gb = y.copy(), s.copy(), g.copy()
    c.update(yb, sb, gb)
    yb[:], sb[:], gb[:] = 0, 0.5, 0  # e.g. a pinned batch buffer reused for the next batch
    assert (c.auc("like"), c.gauc("like")) == ref


def test_single_class_task_is_nan_and_errors_are_clear():
    c = ScoreCounts(["a", "b"])
    c.update(np.array([[0, 1], [0, 0]]), np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([1, 2]))
    assert math.isnan(c.auc("a")) and c.auc("b") == 0.0
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        c.update(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="pass groups"):
        c.update(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        c.update(np.full((1, 2), 3), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="unknown task 'c'"):
        c.auc("c")
    with pytest.raises(ValueError, match="cannot merge"):
        c.merge(ScoreCounts(["b", "a"]))
    with pytest.raises(ValueError, match="missing keys"):
        ScoreCounts.from_state({"tasks": ["a"]})
