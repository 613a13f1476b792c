"""Vision metrics against hand-computed cases: accuracy, F1 at threshold 0.5, Δm% (seed 003 §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys_hmtl.adapters.vision.metrics import accuracy, binary_scores, delta_m, f1_score, task_report


def test_accuracy():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert math.isnan(accuracy([], []))


def test_f1_by_hand():
    # predictions 1 1 0 0 1 / targets 1 0 0 1 1: TP 2, FP 1, FN 1 → P = R = 2/3, F1 = 2/3
    s = binary_scores(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["accuracy"] == pytest.approx(0.6)
    assert s["positives"] == 3 and s["predicted_positives"] == 3
    # TP 1, FP 3, FN 0: P = 1/4, R = 1, F1 = 2·(1/4)/(5/4) = 0.4 = 2·1/(2 + 3)
    assert f1_score(1, 3, 0) == pytest.approx(0.4)
    assert f1_score(0, 0, 0) == 0.0  # no positive, none predicted: 0 as FAMO's 1e-8-guarded formula gives


def test_task_report_averages():
    pred = {"a": np.array([1, 0, 1, 1]), "b": np.array([0, 0, 0, 0])}
    true = {"a": np.array([1, 0, 0, 1]), "b": np.array([0, 1, 0, 0])}
    r = task_report(pred, true, binary=True)
    # a: acc 3/4, TP 2 FP 1 FN 0 → F1 0.8; b: acc 3/4, TP 0 FP 0 FN 1 → F1 0
    assert r["avg_accuracy"] == pytest.approx(0.75) and r["avg_f1"] == pytest.approx(0.4)
    assert r["tasks"]["a"]["f1"] == pytest.approx(0.8)
    r = task_report({"left": np.array([3, 4]), "right": np.array([1, 1])},
                    {"left": np.array([3, 5]), "right": np.array([1, 1])}, binary=False)
    assert r["tasks"] == {"left": {"accuracy": 0.5}, "right": {"accuracy": 1.0}} and "avg_f1" not in r


def test_delta_m_by_hand():
    # accuracy (higher is better, δ = 1): left 0.90 vs STL 0.80 → −(0.10/0.80) = −0.125;
    # right 0.76 vs STL 0.80 → −(−0.04/0.80) = +0.05; mean −0.0375 → −3.75 %
    assert delta_m({"left": 0.90, "right": 0.76}, {"left": 0.80, "right": 0.80}) == pytest.approx(-3.75)
    # a lower-is-better task (an error, δ = 0): 0.5 vs STL 0.4 → +0.25; with left's −0.125 → +6.25 %
    assert delta_m({"left": 0.90, "err": 0.5}, {"left": 0.80, "err": 0.4},
                   higher_is_better={"left": True, "err": False}) == pytest.approx(6.25)
    # only the tasks with an STL reference count (CelebA: a subset of attributes)
    assert delta_m({"a": 0.9, "b": 0.1, "c": 0.5}, {"a": 0.9}) == 0.0
    with pytest.raises(ValueError, match="no task 'd'"):
        delta_m({"a": 0.9}, {"d": 0.9})
    with pytest.raises(ValueError, match="is 0"):
        delta_m({"a": 0.9}, {"a": 0.0})
