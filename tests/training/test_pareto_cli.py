"""``recsys-hmtl pareto`` on demo data (issue 15): one run per preference vector for the stage and for
linear weights, front.csv / front.json / front.png, resumable; and ``stage.grad_mode: params``."""

from __future__ import annotations

import csv
import json

import pytest
from torch import nn

from mainjob import CONFIG, ROOT, read_json, run_cli, settings, train_args
from recsys_hmtl.errors import InputError
from recsys_hmtl.priority import build_stage
from recsys_hmtl.training.adapter import Trainable
from recsys_hmtl.training.steps import step_rule_for

TWO_TASKS = ["tasks=[is_click,long_view]"]


def test_pareto_sweeps_wc_penalty_in_bilevel_mode_beside_linear_weights(demo_root, tmp_path, capsys):
    out = tmp_path / "front"
    args = ["pareto", "--config", CONFIG, "--stage", "wc_penalty", "--points", "3", "--out", out,
            *settings(demo_root, *TWO_TASKS, "bilevel.holdout=0.2", "model.tower_dims=[]", "trainer.max_steps=6")]
    assert run_cli(*args) == 0
    printed = capsys.readouterr().out
    assert "| wc_penalty | 3 |" in printed and "| weighted | 3 |" in printed
    with open(out / "front.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["preference"]) for r in rows] == [
        (m, p) for m in ("wc_penalty", "weighted") for p in ("0-1", "0.5-0.5", "1-0")]
    assert {"is_click (max)", "long_view (max)"} <= set(rows[0])
    for r in rows:  # the bilevel points end with a constraint residual; the linear sweep has none
        assert (r["residual"] != "") == (r["method"] == "wc_penalty")
        assert 0.0 <= float(r["is_click (max)"]) <= 1.0
        summary = read_json(r["run_dir"] + "/run_summary.json")
        stage = summary["config"]["stage"]
        assert stage["name"] == r["method"]
        key = "preference" if r["method"] == "wc_penalty" else "weights"
        assert stage["hparams"][key] == [float(x) for x in r["preference"].split("-")]
        assert (summary["config"]["bilevel"]["enabled"]) == (r["method"] == "wc_penalty")
    for method in ("wc_penalty", "weighted"):  # at least one point of each front is non-dominated
        assert any(r["dominated"] == "false" for r in rows if r["method"] == method)
    front = json.loads((out / "front.json").read_text())
    assert set(front["methods"]) == {"wc_penalty", "weighted"}
    assert all(m["hypervolume"] >= 0 and m["non_dominated"] >= 1 for m in front["methods"].values())
    assert (out / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    before = (out / "front.csv").read_text()  # a rerun trains nothing and writes the same front
    assert run_cli(*args) == 0
    assert (out / "front.csv").read_text() == before


def test_pareto_refuses_a_stage_without_a_preference_and_a_bad_count(demo_root, tmp_path, capsys):
    base = ["pareto", "--config", CONFIG, "--out", tmp_path / "f", *settings(demo_root, *TWO_TASKS)]
    assert run_cli(*base, "--stage", "mgda", "--points", "3") == 2
    assert "key '--stage'" in capsys.readouterr().err
    assert run_cli(*base, "--stage", "weighted", "--points", "1") == 2
    assert "key '--points'" in capsys.readouterr().err
    assert run_cli(*base, "--stage", "weighted", "--points", "3", "--tasks", "is_click,nope") == 2
    assert "key '--tasks'" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_gradient_stages_combine_at_the_shared_parameters_with_grad_mode_params(demo_root, tmp_path, capsys):
    runs = {m: tmp_path / m for m in ("rep", "params")}
    for mode, run in runs.items():
        assert run_cli(*train_args(demo_root, run, "stage.name=mgda", f"stage.grad_mode={mode}")) == 0
    a, b = (read_json(r / "run_summary.json") for r in runs.values())
    assert a["steps"] == b["steps"] == 12
    assert a["stage_diagnostics"] != b["stage_diagnostics"]  # other gradients, other weights
    assert run_cli("validate", "--config", CONFIG, *settings(demo_root, "stage.grad_mode=params")) == 2
    assert "key 'stage.grad_mode'" in capsys.readouterr().err  # `sum` weighs losses only
    with pytest.raises(InputError, match="no shared dense parameters") as err:  # a model that names none
        step_rule_for(Trainable(nn.Linear(2, 2)), build_stage("mgda", ["a", "b"]), grad_mode="params")
    assert err.value.key == "stage.grad_mode"


def test_pareto_on_the_toy_measures_every_point_against_its_numerical_front(tmp_path, capsys):
    out = tmp_path / "toy"
    args = ["pareto", "--config", ROOT / "configs" / "toy_seed003.yaml", "--stage", "wc_penalty", "--points", "2",
            "--out", out, "--set", "trainer.max_steps=150", "--set", "trainer.lr=0.05"]
    assert run_cli(*args) == 0
    assert "on the front" in capsys.readouterr().out
    front = json.loads((out / "front.json").read_text())
    assert front["directions"] == ["min", "min"]  # the toy reports losses: lower is better
    with open(out / "front.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"f1 (min)", "f2 (min)"} <= set(rows[0])
    for method, entry in front["methods"].items():
        own = [r for r in rows if r["method"] == method]
        assert len(entry["front_distance"]) == len(own) == 2
        for row, distance in zip(own, entry["front_distance"]):  # pareto's distance = the adapter's own
            report = read_json(row["run_dir"] + "/eval_report.json")
            assert distance == pytest.approx(report["front_distance"], abs=2e-3)
        assert entry["on_front"] == sum(d <= 1e-2 for d in entry["front_distance"])
