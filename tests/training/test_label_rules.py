"""Labels from a user's own values (tasks[i].positive / .threshold) and runs without a user column,
as a new user meets them on census-income-style data: a header-less CSV whose labels are strings."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from mainjob import read_json, run_cli
from recsys_hmtl.config import from_dict
from recsys_hmtl.data.config import DataConfig, TaskConfig
from recsys_hmtl.data.pipeline import prepare_resolved
from recsys_hmtl.data.presets import resolve

COLUMNS = ["age", "education", "marital", "weight", "income"]
INCOMES, MARITAL = [" - 50000.", " 50000+."], [" Never married", " Married-civilian spouse present", " Divorced"]
TASKS = [{"name": "high_income", "column": "income", "positive": ["50000+."]},
         {"name": "never_married", "column": "marital", "positive": ["Never married"]},
         {"name": "over_40", "column": "age", "threshold": 40}]


def census(folder: Path, rows: int = 600) -> list[list[str]]:
    rng = random.Random(0)
    lines = []
    for _ in range(rows):
        age = rng.randint(17, 80)
        education = rng.choice([" Bachelors", " High school graduate", " Masters", " Children"])
        lines.append([str(age), education, rng.choice(MARITAL), f"{rng.uniform(100, 3000):.2f}",
                      INCOMES[int(education == " Masters" and rng.random() < 0.6)]])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "census.csv").write_text("\n".join(",".join(line) for line in lines) + "\n")
    return lines


def data_section(root: Path) -> dict:
    return {"dataset": "custom", "root": str(root), "files": ["census.csv"], "has_header": False,
            "columns": COLUMNS, "user_column": None,
            "sparse": [{"name": "education"}], "dense": [{"name": "weight", "transform": "log_normalize"}],
            "split": {"kind": "random", "fractions": [0.7, 0.15, 0.15]}}


def test_rules_turn_the_users_values_into_labels(tmp_path):
    lines = census(tmp_path / "census")
    data = from_dict(DataConfig, data_section(tmp_path / "census"), "test")
    cfg, tasks = resolve(data, [from_dict(TaskConfig, t, "test") for t in TASKS])
    prepared = prepare_resolved(cfg, tasks)
    counts = {t: sum(int(frame.get_column(f"label:{t}").sum()) for frame in prepared.splits.values())
              for t in ("high_income", "never_married", "over_40")}
    assert counts == {"high_income": sum(line[4] == " 50000+." for line in lines),
                      "never_married": sum(line[2] == " Never married" for line in lines),
                      "over_40": sum(int(line[0]) >= 40 for line in lines)}
    assert 0 < counts["high_income"] < len(lines)


def test_a_census_run_trains_and_evaluates_without_users(tmp_path, capsys):
    census(tmp_path / "census")
    config = {"adapter": "recsys", "data": data_section(tmp_path / "census"), "tasks": TASKS,
              "model": {"name": "shared_bottom", "embedding_dim": 4, "bottom_dims": [8], "tower_dims": [4]},
              "stage": {"name": "sum"},
              "trainer": {"max_epochs": 1, "batch_size": 64, "eval_batch_size": 256, "ckpt_every": 0}}
    path = tmp_path / "census.yaml"
    path.write_text(yaml.safe_dump(config))
    assert run_cli("train", "--config", path, "--out", tmp_path / "run") == 0
    assert run_cli("evaluate", "--run", tmp_path / "run") == 0
    report = read_json(tmp_path / "run" / "eval_report.json")
    assert list(report["tasks"]) == ["high_income", "never_married", "over_40"]
    for entry in report["tasks"].values():
        assert entry["gauc"] is None and entry["users_counted"] == 0  # not applicable (NaN in JSON: null)
        assert 0 <= entry["auc"] <= 1
    capsys.readouterr()


def test_label_rule_mistakes_name_the_task(tmp_path, capsys):
    census(tmp_path / "census")
    both = {"adapter": "recsys", "data": data_section(tmp_path / "census"),
            "tasks": [{"name": "x", "column": "age", "positive": ["1"], "threshold": 3}]}
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(both))
    assert run_cli("validate", "--config", path) == 2
    assert "key 'tasks[0]'" in capsys.readouterr().err
    # a missing value in a rule's column names the file and row
    text = (tmp_path / "census" / "census.csv").read_text().splitlines()
    fields = text[3].split(",")
    fields[0] = ""
    text[3] = ",".join(fields)
    (tmp_path / "census" / "census.csv").write_text("\n".join(text) + "\n")
    age = {**both, "tasks": [TASKS[2]]}
    path.write_text(yaml.safe_dump(age))
    assert run_cli("validate", "--config", path) == 2
    err = capsys.readouterr().err
    assert "census.csv" in err and "over_40" in err and "row" in err
