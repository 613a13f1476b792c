"""deploy/grafana/recsys_hmtl.json: its shape, every query parses, every query returns data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from feeding import FedRun
from promstack import DEPLOY, Stack
from recsys_hmtl.errors import InputError
from recsys_hmtl.monitoring import dashboard as dash
from recsys_hmtl.monitoring.check import main, metrics_check
from recsys_hmtl.monitoring.prometheus_api import QueryError, query

BOARD_PATH = DEPLOY / "grafana" / "recsys_hmtl.json"
BOARD = json.loads(BOARD_PATH.read_text())


def test_variables_and_datasource() -> None:
    variables = {v["name"]: v for v in BOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("run_id", "stage", "model", "dataset"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"], name
    for panel in BOARD["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_required_panels_are_there() -> None:
    exprs = " ".join(expr for _, expr in dash.raw_queries(BOARD))
    for metric in ("recsys_hmtl_loss", "recsys_hmtl_stage_weight", "recsys_hmtl_stage_gate",
                   "recsys_hmtl_stage_threshold", "recsys_hmtl_stage_feasibility_gap", "recsys_hmtl_auc",
                   "recsys_hmtl_samples_per_second", "recsys_hmtl_step_seconds_bucket",
                   "recsys_hmtl_nonfinite_losses_total", "recsys_hmtl_last_success_timestamp_seconds"):
        assert metric in exprs, metric
    assert "histogram_quantile" in exprs


def test_substitution() -> None:
    expr = 'x{a=~"$run_id",b=~"${stage}",c=~"[[model]]",d=~"${dataset:regex}"}[$__rate_interval]'
    assert dash.substitute(expr, {"run_id": "r1", "__rate_interval": "2m"}) == \
        'x{a=~"r1",b=~".*",c=~".*",d=~".*"}[2m]'
    titles = [t for t, _ in dash.raw_queries(BOARD)]
    assert "variable run_id" in titles and "Per-task loss" in titles


def test_every_query_parses(servers: Stack) -> None:
    for title, expr in dash.queries(BOARD):
        query(servers.prometheus_url, expr)  # a parse error is HTTP 400 -> QueryError
    with pytest.raises(QueryError, match="parse error"):
        query(servers.prometheus_url, "sum by (task (recsys_hmtl_loss)")


def test_every_query_returns_data(servers: Stack, fed: FedRun) -> None:
    deadline = time.monotonic() + 60
    while True:
        results = metrics_check(servers.prometheus_url, BOARD_PATH)
        empty = [(title, expr) for title, expr, ok in results if not ok]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not empty, empty
    assert len(results) == len(dash.raw_queries(BOARD))
    narrowed = metrics_check(servers.prometheus_url, BOARD_PATH,
                             variables={"run_id": "fed-run", "stage": "scd_vio"})
    assert all(ok for _, _, ok in narrowed)
    other_run = metrics_check(servers.prometheus_url, BOARD_PATH, variables={"run_id": "no-such-run"})
    assert not any(ok for title, _, ok in other_run if not title.startswith("variable"))


def test_main_exit_codes(servers: Stack, fed: FedRun, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--prometheus", servers.prometheus_url, "--dashboard", str(BOARD_PATH)]) == 0

    board = json.loads(BOARD_PATH.read_text())
    board["panels"].append({"type": "timeseries", "title": "Nothing here",
                            "targets": [{"refId": "A", "expr": 'recsys_hmtl_no_such_metric{run_id=~"$run_id"}'}]})
    (tmp_path / "empty.json").write_text(json.dumps(board))
    capsys.readouterr()
    assert main(["--prometheus", servers.prometheus_url, "--dashboard", str(tmp_path / "empty.json")]) == 1
    out = capsys.readouterr()
    assert "NO DATA  Nothing here" in out.out and "'Nothing here'" in out.err

    board["panels"][-1]["targets"][0]["expr"] = "rate(recsys_hmtl_loss"
    (tmp_path / "bad.json").write_text(json.dumps(board))
    assert main(["--prometheus", servers.prometheus_url, "--dashboard", str(tmp_path / "bad.json")]) == 2
    assert "Nothing here" in capsys.readouterr().err


def test_missing_dashboard_and_unreachable_prometheus(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the dashboard"):
        metrics_check("http://127.0.0.1:1", tmp_path / "missing.json")
    assert main(["--prometheus", "http://127.0.0.1:1", "--dashboard", str(BOARD_PATH), "--timeout", "2"]) == 1
