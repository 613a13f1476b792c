"""deploy/prometheus: promtool accepts the config and the rules, and every alert has a firing test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from promstack import DEPLOY

PROM = DEPLOY / "prometheus"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool not installed: run tests/setup_servers.sh as root")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_check_config_on_a_copy(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROM / name, tmp_path / name)
    proc = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["recsys_hmtl_trainer"].get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]


def test_check_rules() -> None:
    proc = promtool("check", "rules", str(PROM / "alerts.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_fires_in_the_rule_tests() -> None:
    proc = promtool("test", "rules", "alerts_test.yml", cwd=PROM)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    fired = {case["alertname"] for t in tests["tests"] for case in t.get("alert_rule_test", [])
             if case.get("exp_alerts")}
    assert fired == alerts
    assert {"RecsysHmtlRunOverdue", "RecsysHmtlNonFiniteLosses", "RecsysHmtlThroughputCollapse",
            "RecsysHmtlRunStalled", "RecsysHmtlAucBelowFloor", "RecsysHmtlStageNotActing"} <= alerts


def test_rule_tests_notice_a_wrong_expectation(tmp_path: Path) -> None:
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    text = (PROM / "alerts_test.yml").read_text().replace("eval_time: 27h", "eval_time: 25h30m")
    (tmp_path / "alerts_test.yml").write_text(text)
    proc = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert proc.returncode != 0 and "RecsysHmtlRunOverdue" in proc.stdout + proc.stderr
