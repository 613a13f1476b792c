"""Seed-shaped comparison against the `sum` run (seed 001 Sec. 4.2 definition), by hand."""

from __future__ import annotations

import math

import pytest

from recsys_hmtl.evaluation import compare_markdown, compare_runs


def report(**aucs):
    return {"split": "test", "rows": 10, "avg_auc": None,
            "tasks": {t: {"auc": v, "gauc": v, "users_counted": 1, "users_skipped": 0, "positives": 1, "rows": 10}
                      for t, v in aucs.items()}}


def test_relative_change_by_hand():
    runs = [
        ("mmoe-sum", "sum", report(like=0.80, finish=0.60)),
        ("mmoe-scd", "scd_vio", report(like=0.84, finish=0.57)),
        ("mmoe-reordered", "scd_vio", report(finish=0.66, like=0.80)),  # other priority order
    ]
    table = compare_runs(runs)
    assert table["baseline"] == "mmoe-sum" and table["tasks"] == ["like", "finish"]
    base, scd, reo = table["runs"]
    # Avg. AUC: sum (0.80 + 0.60)/2 = 0.70; scd (0.84 + 0.57)/2 = 0.705; reordered (0.80 + 0.66)/2 = 0.73
    assert base["primary"] == pytest.approx(0.70) and scd["primary"] == pytest.approx(0.705)
    # like: (0.84 − 0.80)/0.80 = +5 %; finish: (0.57 − 0.60)/0.60 = −5 %
    assert scd["change"] == pytest.approx({"like": 5.0, "finish": -5.0})
    # Avg: (0.705 − 0.70)/0.70 = +0.714286 % — not the mean of per-task gains (0 %), not RelaImpr
    # with the 0.5 offset ((0.205 − 0.2)/0.2 = +2.5 %)
    assert scd["primary_change"] == pytest.approx(0.5 / 0.70)
    assert reo["change"] == pytest.approx({"like": 0.0, "finish": 10.0})
    assert reo["primary_change"] == pytest.approx(0.03 / 0.70 * 100)
    assert base["primary_change"] == 0.0

    md = compare_markdown(table)
    head = md.splitlines()[0]
    assert head.index("like AUC") < head.index("finish AUC") < head.index("Avg. AUC")
    scd_line = next(line for line in md.splitlines() if line.startswith("| mmoe-scd |"))
    assert scd_line == "| mmoe-scd | scd_vio | 0.8400 | 0.5700 | 0.7050 | +5.00% | -5.00% | +0.71% |"
    base_line = next(line for line in md.splitlines() if line.startswith("| mmoe-sum |"))
    assert base_line.endswith("| 0.7000 | — | — | — |")


def test_undefined_auc_propagates_as_nan():
    table = compare_runs([("a", "sum", report(x=0.7, y=None)), ("b", "famo", report(x=0.77, y=0.9))])
    b = table["runs"][1]
    assert math.isnan(b["change"]["y"]) and b["change"]["x"] == pytest.approx(10.0)
    # the baseline's Avg. AUC is over its defined tasks only (0.7); b's over both (0.835)
    assert b["primary_change"] == pytest.approx((0.835 - 0.7) / 0.7 * 100)
    assert "n/a" in compare_markdown(table)


def test_errors_name_what_was_given():
    with pytest.raises(ValueError, match="no run has stage 'sum'.*a=famo, b=scd_vio"):
        compare_runs([("a", "famo", report(x=0.7)), ("b", "scd_vio", report(x=0.8))])
    with pytest.raises(ValueError, match="run 'b' has tasks \\['x', 'z'\\].*has \\['x', 'y'\\]"):
        compare_runs([("a", "sum", report(x=0.7, y=0.6)), ("b", "scd_vio", report(x=0.8, z=0.6))])
    with pytest.raises(ValueError, match="several runs have stage 'sum'"):
        compare_runs([("a", "sum", report(x=0.7)), ("b", "sum", report(x=0.8))])
    table = compare_runs([("a", "sum", report(x=0.7)), ("b", "sum", report(x=0.77))], baseline="a")
    assert table["runs"][1]["change"]["x"] == pytest.approx(10.0)


def test_a_change_against_a_negative_baseline_keeps_the_sign_of_the_move():
    """The toy's losses are negative near the front: a loss that falls from −10 to −12 moved −2,
    −20 % of |−10| (dividing by −10 would print +20 %, a worsening, for an improvement)."""
    from recsys_hmtl.evaluation.compare import relative_change

    assert relative_change(-12.0, -10.0) == pytest.approx(-20.0)
    assert relative_change(-8.0, -10.0) == pytest.approx(20.0)
    assert relative_change(0.84, 0.80) == pytest.approx(5.0)


def test_model_selection_picks_the_lowest_validation_loss_when_the_metric_is_a_loss():
    from recsys_hmtl.reproduce.suite import SuiteMetric
    from recsys_hmtl.reproduce.tables import Results

    rows = [{"dataset": "toy", "backbone": "toy", "variant": "sum", "lr": lr, "seed": 0, "split": "val",
             "task": "", "metric": "avg_loss", "value": value} for lr, value in ((0.01, -9.0), (0.1, -10.0))]
    loss = SuiteMetric(task="loss", primary="avg_loss", direction="min")
    assert Results(rows, loss).best_lr(("toy", "toy", "sum")) == 0.1
    assert Results(rows, SuiteMetric(task="loss", primary="avg_loss")).best_lr(("toy", "toy", "sum")) == 0.01
