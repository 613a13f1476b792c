"""A real ``recsys-hmtl train`` scraped by a real Prometheus while it runs, then its pushes and an
``evaluate`` push (issues 5 and 6): per-task series, ``up == 1``, pushed AUCs, and every query of the
Grafana dashboard returning data for that run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from promstack import DEPLOY, Stack, free_port, wait_until
from recsys_hmtl.data.demo import write_demo_data
from recsys_hmtl.monitoring.check import metrics_check

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["is_click", "long_view", "is_like", "is_follow", "is_comment", "is_forward", "is_profile_enter",
         "is_hate"]
BOARD = DEPLOY / "grafana" / "recsys_hmtl.json"
# Pushed at the end of the run or by evaluate: present only once the jobs have finished.
PUSHED = ("recsys_hmtl_auc", "recsys_hmtl_avg_auc", "recsys_hmtl_gauc", "last_success", "run_success",
          "eval_rows")


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "recsys_hmtl.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def live_queries_have_data(servers: Stack, run_id: str) -> list[str]:
    results = metrics_check(servers.prometheus_url, BOARD, variables={"run_id": run_id})
    return [title for title, expr, ok in results if not ok and not any(p in expr for p in PUSHED)]


def test_a_real_run_is_scraped_pushed_and_fills_the_dashboard(servers: Stack, tmp_path: Path) -> None:
    data, run = tmp_path / "demo", tmp_path / "real-run"
    write_demo_data(data, rows=8000, seed=5)
    port = free_port()
    servers.add_target(f"127.0.0.1:{port}", wait=False)
    settings = [f"data.root={data}", "stage.name=scd_vio", "trainer.batch_size=256", "trainer.max_epochs=200",
                "trainer.max_steps=2500", "trainer.ckpt_every=0", f"metrics.port={port}",
                f"metrics.pushgateway={servers.pushgateway_url}", "model.expert_dims=[16]"]
    proc = cli("train", "--config", str(ROOT / "configs" / "kuairand_demo.yaml"), "--out", str(run),
               *[x for s in settings for x in ("--set", s)])
    try:
        # /metrics over HTTP while the run trains: the per-task series are there.
        families = wait_until(lambda: _scrape_with_steps(port), 120, "the trainer's /metrics with steps")
        assert {s.labels["task"] for s in families["recsys_hmtl_loss"]} == set(TASKS)
        assert {s.labels["task"] for s in families["recsys_hmtl_stage_gate"]} == set(TASKS)
        calibration = {s.labels["task"]: s.value for s in families["recsys_hmtl_train_calibration"]}
        assert set(calibration) == set(TASKS) and 0 < calibration["is_click"] < 10  # Σ p / Σ y, windowed
        ne = {s.labels["task"]: s.value for s in families["recsys_hmtl_train_ne"]}
        assert 0 < ne["is_click"] < 2
        selector = f'{{job="recsys_hmtl_trainer",instance="127.0.0.1:{port}"}}'
        servers.wait_for(f"up{selector} == 1", timeout=60)
        assert proc.poll() is None, "the run ended before Prometheus scraped it: lengthen it"
        deadline = time.monotonic() + 30
        while (missing := live_queries_have_data(servers, "real-run")) and time.monotonic() < deadline:
            time.sleep(1)
        assert not missing, f"dashboard panels without data during the run: {missing}"
    finally:
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]

    losses = servers.query('last_over_time(recsys_hmtl_loss{run_id="real-run"}[5m])')
    assert {r["metric"]["task"] for r in losses} == set(TASKS)
    summary = json.loads((run / "run_summary.json").read_text())
    assert summary["pushed"] == servers.pushgateway_url
    defined = {t for t, v in summary["val"].items() if v["auc"] is not None}  # single-class: no AUC
    assert "is_click" in defined
    pushed = servers.wait_for('recsys_hmtl_auc{job="recsys_hmtl_train",run_id="real-run",split="val"}',
                              condition=lambda r: {x["metric"]["task"] for x in r} == defined)
    by_task = {r["metric"]["task"]: float(r["value"][1]) for r in pushed}
    assert by_task["is_click"] == pytest.approx(summary["val"]["is_click"]["auc"], abs=1e-9)

    evaluate = cli("evaluate", "--run", str(run), "--split", "test")
    assert evaluate.wait(timeout=300) == 0, evaluate.stderr.read()[-3000:]
    report = json.loads((run / "eval_report.json").read_text())
    defined = {t for t, v in report["tasks"].items() if v["auc"] is not None}
    tested = servers.wait_for('recsys_hmtl_auc{job="recsys_hmtl_evaluate",run_id="real-run",split="test"}',
                              condition=lambda r: {x["metric"]["task"] for x in r} == defined)
    by_task = {r["metric"]["task"]: float(r["value"][1]) for r in tested}
    assert by_task["long_view"] == pytest.approx(report["tasks"]["long_view"]["auc"], abs=1e-9)
    servers.wait_for('recsys_hmtl_last_success_timestamp_seconds{run_id="real-run"}',
                     condition=lambda r: {x["metric"]["job"] for x in r} == {"recsys_hmtl_train",
                                                                               "recsys_hmtl_evaluate"})
    pushed_panels = [(t, ok) for t, expr, ok in metrics_check(servers.prometheus_url, BOARD,
                                                              variables={"run_id": "real-run"})
                     if any(p in expr for p in PUSHED)]
    assert pushed_panels and all(ok for _, ok in pushed_panels), pushed_panels


def _scrape_with_steps(port: int) -> dict | None:
    try:
        families = scrape(port)
    except OSError:
        return None
    steps = families.get("recsys_hmtl_steps")  # the parser strips _total from counters
    return families if steps and steps[0].value > 0 else None
