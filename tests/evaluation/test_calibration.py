"""Log loss, NE and calibration in the report: by hand, against TorchRec's NE and scikit-learn's log
loss, and streamed (merged shards) equal to the in-memory report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from torchrec.metrics.ne import compute_cross_entropy, compute_ne

from recsys_hmtl.evaluation.calibration import row_quality
from recsys_hmtl.evaluation.counts import ScoreCounts
from recsys_hmtl.evaluation.report import build_report, report_from_counts


def test_by_hand():
    # labels 1, 0, 0, 1 with scores 0.8, 0.4, 0.2, 0.6
    q = row_quality(np.array([1, 0, 0, 1], bool), np.array([0.8, 0.4, 0.2, 0.6]))
    logloss = -(math.log(0.8) + math.log(0.6) + math.log(0.8) + math.log(0.6)) / 4
    assert q["logloss"] == pytest.approx(logloss)
    assert q["ne"] == pytest.approx(logloss / math.log(2))  # positive rate 1/2: entropy ln 2
    assert q["calibration"] == pytest.approx((0.8 + 0.4 + 0.2 + 0.6) / 2)  # predicted 2.0 / observed 2
    assert q["positive_rate"] == 0.5 and q["mean_score"] == pytest.approx(0.5)


def test_single_class_has_no_ne_and_no_positives_no_calibration():
    q = row_quality(np.zeros(3, bool), np.array([0.1, 0.2, 0.3]))
    assert math.isnan(q["ne"]) and math.isnan(q["calibration"]) and q["logloss"] > 0


def test_against_torchrec_and_sklearn():
    rng = np.random.default_rng(0)
    y = rng.random(5000) < 0.07
    p = np.clip(rng.beta(1, 9, 5000) + 0.05 * y, 0, 1).astype(np.float32)
    q = row_quality(y, p)
    assert q["logloss"] == pytest.approx(log_loss(y, p.astype(np.float64)), rel=1e-9)
    labels, preds = torch.tensor(y, dtype=torch.float64), torch.tensor(p, dtype=torch.float64)
    ce_sum = compute_cross_entropy(labels, preds, torch.ones_like(labels), 1e-12).sum()
    ne = compute_ne(ce_sum, torch.tensor(5000.0, dtype=torch.float64), labels.sum(), (1 - labels).sum(), 1e-12)
    assert q["ne"] == pytest.approx(float(ne), rel=1e-9)


def test_streamed_equals_in_memory():
    rng = np.random.default_rng(1)
    y = (rng.random((3000, 2)) < [0.3, 0.05]).astype(np.int8)
    s = rng.random((3000, 2)).astype(np.float32)
    g = rng.integers(0, 50, 3000)
    exact = build_report("test", y, s, g, ["click", "like"])
    shards = [ScoreCounts(["click", "like"]) for _ in range(3)]
    for i, part in enumerate(np.array_split(np.arange(3000), 3)):
        shards[i].update(y[part], s[part], g[part])
    streamed = report_from_counts(ScoreCounts.merge_all(shards), "test")
    for task in ("click", "like"):
        for key in ("logloss", "ne", "calibration", "positive_rate", "mean_score"):
            assert streamed["tasks"][task][key] == pytest.approx(exact["tasks"][task][key], rel=1e-9), key
