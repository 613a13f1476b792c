"""Exact AUC / GAUC (SPEC §7): against sklearn on tied data, by hand, torch input, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from recsys_hmtl.evaluation import auc, gauc


def tied_data(seed: int, n: int, pos_rate: float, levels: int, dtype=np.float32):
    """Scores on a coarse grid (many ties), mildly informative about the labels."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_rate).astype(np.int64)
    s = np.floor((rng.random(n) + 0.4 * y) * levels) / levels
    return y, s.astype(dtype)


def sklearn_gauc(y, s, g):
    num = den = 0.0
    counted = skipped = 0
    for u in np.unique(g):
        m = g == u
        if y[m].min() == y[m].max():
            skipped += 1
            continue
        counted += 1
        num += m.sum() * roc_auc_score(y[m], s[m])
        den += m.sum()
    return (num / den if den else math.nan), counted, skipped


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("pos_rate", [0.05, 0.5, 0.95])  # 0.95: the "negatives are fewer" branch
def test_auc_matches_sklearn_with_many_ties(seed, pos_rate):
    y, s = tied_data(seed, 20_000, pos_rate, levels=37)
    assert len(np.unique(s)) < 80  # heavy ties
    assert abs(auc(y, s) - roc_auc_score(y, s)) <= 1e-9


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_auc_matches_sklearn_for_other_score_dtypes(dtype):
    y, s = tied_data(7, 5_000, 0.2, levels=10, dtype=np.float64)
    s = (s * 10).astype(dtype) if dtype == np.int32 else s.astype(dtype)
    assert abs(auc(y, s) - roc_auc_score(y, s.astype(np.float64))) <= 1e-9


def test_auc_by_hand_with_ties():
    # positives score {0.4, 0.8, 0.3}, negatives {0.1, 0.4, 0.8}; pairs (pos vs neg):
    # 0.4: 1 + 0.5 + 0 ; 0.8: 1 + 1 + 0.5 ; 0.3: 1 + 0 + 0  -> U = 5 of 9 pairs.
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.4, 0.8, 0.8, 0.3])
    assert auc(y, s) == 5 / 9
    assert auc(y, np.zeros(6)) == 0.5  # all tied
    assert auc(np.array([0, 1]), np.array([0.2, 0.1])) == 0.0


def test_single_class_and_empty_give_nan_not_an_error():
    assert math.isnan(auc(np.ones(5), np.arange(5.0)))
    assert math.isnan(auc(np.zeros(5), np.arange(5.0)))
    assert math.isnan(auc(np.array([]), np.array([])))
    value, counted, skipped = gauc(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]), np.array([5, 5, 6]))
    assert math.isnan(value) and (counted, skipped) == (0, 2)


@pytest.mark.parametrize("seed", range(4))
def test_gauc_matches_per_user_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    y, s = tied_data(seed, 6_000, 0.3, levels=8)
    g = rng.integers(0, 400, len(y)) * 7 - 1000  # unsorted, negative ids too
    value, counted, skipped = gauc(y, s, g)
    ref, ref_counted, ref_skipped = sklearn_gauc(y, s, g)
    assert (counted, skipped) == (ref_counted, ref_skipped)
    assert skipped > 0 and counted > 0
    assert abs(value - ref) <= 1e-9


def test_gauc_by_hand_weighted_by_impressions():
    # user 10 (4 rows): pos {0.9, 0.5}, neg {0.2, 0.6}: 0.9>0.2, 0.9>0.6, 0.5>0.2, 0.5<0.6 -> 3/4
    # user 20 (2 rows): one pos, one neg, tied at 0.7 -> 1/2
    # user 30 (3 rows): all positive -> skipped (counted as skipped)
    # GAUC = (4·0.75 + 2·0.5) / (4 + 2) = 4/6 = 2/3   (the unweighted mean would be 0.625)
    rows = [(10, 1, 0.9), (20, 0, 0.7), (30, 1, 0.1), (10, 0, 0.2), (30, 1, 0.4),
            (10, 0, 0.6), (20, 1, 0.7), (10, 1, 0.5), (30, 1, 0.3)]
    g, y, s = (np.array(c) for c in zip(*rows))
    value, counted, skipped = gauc(y, s, g)
    assert value == pytest.approx(2 / 3, abs=1e-15)
    assert (counted, skipped) == (2, 1)
    # string user ids work the same way
    assert gauc(y, s, g.astype(str))[0] == value


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    y, s = tied_data(3, 3_000, 0.1, levels=20)
    g = np.random.default_rng(3).integers(0, 50, len(y))
    ref = auc(y, s)
    ts = torch.tensor(s, requires_grad=True)
    assert auc(torch.tensor(y), ts) == ref
    assert auc(torch.tensor(y, dtype=torch.float32), ts * 1) == ref
    assert auc(torch.tensor(y).bool(), torch.tensor(s).to(torch.bfloat16)) == auc(
        y, torch.tensor(s).to(torch.bfloat16).float().numpy())
    assert gauc(torch.tensor(y), ts, torch.tensor(g)) == gauc(y, s, g)


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        (np.array([0, 1, 1]), np.array([0.1, 0.2]), "same length: got 3 labels"),
        (np.array([0, 1, 1, 2]), np.array([0.1, 0.2, 0.3, 0.4]), "labels must be 0 or 1.*labels\\[3\\] = 2"),
        (np.array([0, 1, 0.5]), np.array([0.1, 0.2, 0.3]), "labels must be 0 or 1.*labels\\[2\\] = 0.5"),
        (np.array([0, 1, 0]), np.array([0.1, np.nan, 0.3]), "finite.*scores\\[1\\] = nan"),
        (np.array([0, 1, 0]), np.array([0.1, 0.2, np.inf]), "finite.*scores\\[2\\] = inf"),
        (np.array(["a", "b"]), np.array([0.1, 0.2]), "labels must be 0/1"),
        (np.array([0, 1]), np.array(["x", "y"]), "scores must be real numbers"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "labels must be 1-D, got shape \\(2, 2\\)"),
    ],
)
def test_bad_input_is_a_clear_value_error(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        auc(labels, scores)
    with pytest.raises(ValueError, match=message):
        gauc(labels, scores, np.zeros(len(labels)))


def test_gauc_groups_length_mismatch():
    with pytest.raises(ValueError, match="groups and scores must have the same length: got 2 groups and 3"):
        gauc(np.array([0, 1, 0]), np.array([0.1, 0.2, 0.3]), np.array([1, 2]))
