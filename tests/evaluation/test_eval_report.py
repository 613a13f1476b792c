"""The evaluation report: SPEC §7 shape, Markdown, JSON null for NaN, atomic writes."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from recsys_hmtl.evaluation import (
    ScoreCounts,
    build_report,
    json_safe,
    report_from_counts,
    report_markdown,
    write_report,
)
from recsys_hmtl.evaluation import report as report_mod

TASKS = ["is_click", "is_like", "is_hate"]
SPEC_TASK_KEYS = {"auc", "gauc", "users_counted", "users_skipped", "positives"}  # SPEC §7
SPEC_TOP_KEYS = {"split", "rows", "tasks", "avg_auc"}


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    n = 2_000
    y = (rng.random((n, 3)) < [0.5, 0.1, 0.0]).astype(np.int64)  # is_hate: no positive at all
    s = np.round(rng.random((n, 3)) + 0.5 * y, 2).astype(np.float32)
    g = rng.integers(0, 120, n)
    return y, s, g


def test_report_shape_and_values(predictions):
    y, s, g = predictions
    rep = build_report("test", y, s, g, TASKS)
    assert set(rep) == SPEC_TOP_KEYS | {"tasks_without_auc"}
    assert rep["split"] == "test" and rep["rows"] == len(y)
    assert list(rep["tasks"]) == TASKS
    for j, t in enumerate(TASKS):
        e = rep["tasks"][t]
        assert set(e) == SPEC_TASK_KEYS | {"rows", "logloss", "ne", "calibration", "positive_rate", "mean_score"}
        assert isinstance(e["users_counted"], int) and isinstance(e["positives"], int)
        assert e["positives"] == int(y[:, j].sum()) and e["rows"] == len(y)
        assert e["users_counted"] + e["users_skipped"] == len(np.unique(g))
    click, like = (roc_auc_score(y[:, j], s[:, j]) for j in (0, 1))
    assert rep["tasks"]["is_click"]["auc"] == pytest.approx(click, abs=1e-12)
    assert math.isnan(rep["tasks"]["is_hate"]["auc"]) and math.isnan(rep["tasks"]["is_hate"]["gauc"])
    assert rep["tasks"]["is_hate"]["users_counted"] == 0
    assert rep["tasks_without_auc"] == ["is_hate"]
    assert rep["avg_auc"] == pytest.approx((click + like) / 2, abs=1e-12)  # NaN task left out


def test_streaming_report_equals_in_memory_report(predictions):
    y, s, g = predictions
    c = ScoreCounts(TASKS)
    for lo in range(0, len(y), 700):
        part = ScoreCounts(TASKS)
        part.update(y[lo:lo + 700], s[lo:lo + 700], g[lo:lo + 700])
        c = c + part
    assert json_safe(report_from_counts(c, "test")) == json_safe(build_report("test", y, s, g, TASKS))


def test_markdown_has_every_task_and_the_average(predictions):
    y, s, g = predictions
    rep = build_report("val", y, s, g, TASKS)
    md = report_markdown(rep)
    lines = md.splitlines()
    for t in TASKS:
        row = next(line for line in lines if line.startswith(f"| {t} |"))
        e = rep["tasks"][t]
        assert f"| {e['users_counted']} | {e['users_skipped']} | {e['positives']} | {e['rows']} |" in row
    assert f"{rep['tasks']['is_click']['auc']:.6f}" in md
    assert "| is_hate | n/a | n/a |" in md
    assert f"Avg. AUC: {rep['avg_auc']:.6f}" in md and "is_hate" in md.split("Avg. AUC")[1]


def test_written_json_has_null_for_nan_and_markdown_beside_it(predictions, tmp_path):
    y, s, g = predictions
    rep = build_report("test", y, s, g, TASKS)
    json_path, md_path = write_report(rep, tmp_path / "eval_report.json")
    assert md_path == tmp_path / "eval_report.md"
    text = json_path.read_text()
    assert "NaN" not in text

    def reject(token):
        raise AssertionError(f"invalid JSON token {token}")

    loaded = json.loads(text, parse_constant=reject)
    assert loaded["tasks"]["is_hate"]["auc"] is None and loaded["tasks"]["is_hate"]["gauc"] is None
    assert loaded["tasks"]["is_click"]["auc"] == rep["tasks"]["is_click"]["auc"]
    assert md_path.read_text() == report_markdown(rep)
    assert sorted(os.listdir(tmp_path)) == ["eval_report.json", "eval_report.md"]  # no temp file left


def test_failed_write_keeps_the_old_report_and_leaves_no_temp_file(predictions, tmp_path, monkeypatch):
    y, s, g = predictions
    path = tmp_path / "eval_report.json"
    path.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report_mod.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(build_report("test", y, s, g, TASKS), path)
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["eval_report.json"]


def test_unserialisable_report_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_report({"split": "test", "rows": 1, "tasks": {}, "avg_auc": object()}, tmp_path / "r.json")
    assert os.listdir(tmp_path) == []


def test_bad_report_input():
    with pytest.raises(ValueError, match="one column per task"):
        build_report("test", np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3), TASKS)
    with pytest.raises(ValueError, match="must not end in .md"):
        write_report({}, "x.md")
