"""run_summary.json says whether the loss stage acted (stage_acting), through the real CLI."""

from __future__ import annotations

import pytest
from mainjob import read_json, run_cli, train_args


@pytest.mark.parametrize("stage,acting", [("sum", False), ("rlw", True)])
def test_run_summary_says_whether_the_stage_acted(demo_root, tmp_path, stage, acting):
    run = tmp_path / stage
    assert run_cli(*train_args(demo_root, run, f"stage.name={stage}", "trainer.acting_window=8")) == 0
    summary = read_json(run / "run_summary.json")["stage_acting"]
    assert summary["acting"] is acting
    assert summary["window_steps"] == 8 and "interquartile range" in summary["rule"]
    assert set(summary["tasks"]) == set(read_json(run / "run_summary.json")["val"])


def test_the_acting_window_survives_a_resume(demo_root, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    settings = ("stage.name=rlw", "trainer.acting_window=10")
    assert run_cli(*train_args(demo_root, whole, *settings)) == 0
    assert run_cli(*train_args(demo_root, parts, *settings, "trainer.max_steps=7")) == 0
    assert run_cli(*train_args(demo_root, parts, *settings), "--resume") == 0
    a = read_json(whole / "run_summary.json")["stage_acting"]
    b = read_json(parts / "run_summary.json")["stage_acting"]
    assert b["window_steps"] == 10
    for task, entry in a["tasks"].items():
        assert b["tasks"][task] == pytest.approx(entry, abs=1e-9)


def test_compare_prints_each_runs_stage_acting(demo_root, tmp_path, capsys):
    for stage in ("sum", "rlw"):
        assert run_cli(*train_args(demo_root, tmp_path / stage, f"stage.name={stage}", "trainer.acting_window=8")) == 0
        assert run_cli("evaluate", "--run", tmp_path / stage) == 0
    capsys.readouterr()
    assert run_cli("compare", tmp_path / "sum", tmp_path / "rlw") == 0
    out = capsys.readouterr().out
    assert "| sum | sum | not acting | 0.0000 |" in out and "| rlw | rlw | acting |" in out
