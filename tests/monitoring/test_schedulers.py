"""deploy/ scheduling examples: systemd units, the Kubernetes CronJob, the cron line, the pipeline."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from promstack import DEPLOY

PIPELINE = DEPLOY / "bin" / "recsys-hmtl-pipeline"
SERVICE = DEPLOY / "systemd" / "recsys-hmtl-train.service"
TIMER = DEPLOY / "systemd" / "recsys-hmtl-train.timer"


def unit_settings(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    # The unit points at /opt/recsys-hmtl; verify checks that ExecStart exists, so point it here.
    text = SERVICE.read_text().replace("/opt/recsys-hmtl/deploy/bin/recsys-hmtl-pipeline", str(PIPELINE))
    (tmp_path / SERVICE.name).write_text(text)
    shutil.copy(TIMER, tmp_path / TIMER.name)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / SERVICE.name), str(tmp_path / TIMER.name)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_systemd_exit_code_semantics() -> None:
    service, timer = unit_settings(SERVICE), unit_settings(TIMER)
    assert service["Type"] == "oneshot"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["ExecStart"].endswith("deploy/bin/recsys-hmtl-pipeline")
    assert timer["Unit"] == SERVICE.name and timer["OnCalendar"] and timer["Persistent"] == "true"


def test_cronjob_manifest() -> None:
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "cronjob.yaml").read_text())
    assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "CronJob"
    spec = doc["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert len(spec["schedule"].split()) == 5
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    container = pod["containers"][0]
    command = " ".join(container.get("command", []) + container.get("args", []))
    assert "recsys-hmtl train" in command and "--resume" in command
    assert "recsys-hmtl evaluate --run" in command and "--split test" in command
    assert "metrics.pushgateway=" in command
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v}
    env = {e["name"]: e for e in container["env"]}
    assert env["RUN_DIR"]["value"].startswith(mounts["runs"] + "/") and "runs" in claims
    pvcs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "pvc.yaml").read_text()))
    assert {p["metadata"]["name"] for p in pvcs} == set(claims.values())


def test_cron_line() -> None:
    lines = [line for line in (DEPLOY / "cron" / "recsys-hmtl.cron").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    jobs = [line for line in lines if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", line)]  # not VAR=value
    assert len(jobs) == 1
    fields = jobs[0].split()
    assert fields[6:8] == ["flock", "-n"] and "recsys-hmtl-pipeline" in jobs[0]


def fake_cli(tmp_path: Path) -> Path:
    """A recsys-hmtl stand-in: logs its arguments, exits with the code in $FAKE_EXIT_<command>."""
    path = tmp_path / "fake-recsys-hmtl"
    path.write_text('#!/bin/sh\necho "$*" >> "$FAKE_LOG"\n'
                    'eval "code=\\${FAKE_EXIT_$1:-0}"\nexit "$code"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def pipeline(tmp_path: Path, **codes: int) -> tuple[int, list[str]]:
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/bin:/bin", "RECSYS_HMTL_BIN": str(fake_cli(tmp_path)), "RECSYS_HMTL_CONFIG": "/cfg.yaml",
           "RECSYS_HMTL_RUNS": str(tmp_path / "runs"), "RECSYS_HMTL_PUSHGATEWAY": "http://gw:9091",
           "FAKE_LOG": str(log), **{f"FAKE_EXIT_{k}": str(v) for k, v in codes.items()}}
    proc = subprocess.run(["/bin/sh", str(PIPELINE)], env=env, capture_output=True, text=True, timeout=30)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


def test_pipeline_resumes_after_a_failure_and_not_after_bad_input(tmp_path: Path) -> None:
    code, calls = pipeline(tmp_path, train=1)
    assert code == 1 and len(calls) == 1
    run_dir = calls[0].split("--out ")[1].split()[0]
    assert calls[0].startswith("train --config /cfg.yaml --out ") and "--resume" in calls[0]
    assert "--set metrics.pushgateway=http://gw:9091" in calls[0]

    code, calls = pipeline(tmp_path)  # the retry resumes the same RUN_DIR, then evaluates it
    assert code == 0 and f"--out {run_dir} --resume" in calls[0]
    assert calls[1] == f"evaluate --run {run_dir} --split test"
    assert not (tmp_path / "runs" / ".current").exists()

    code, calls = pipeline(tmp_path, train=2)
    assert code == 2 and len(calls) == 1 and not (tmp_path / "runs" / ".current").exists()
    code, calls = pipeline(tmp_path, evaluate=1)
    assert code == 1 and (tmp_path / "runs" / ".current").exists()
