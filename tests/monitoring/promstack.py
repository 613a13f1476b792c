"""Real Prometheus + Pushgateway processes on free loopback ports, for the monitoring tests.

``start_stack(tmp)`` runs ``prometheus-pushgateway`` and ``prometheus`` with a config generated from
``deploy/prometheus/prometheus.yml`` (1 s scrape and rule intervals, the deploy alert rules, the
trainer job's targets emptied, the Pushgateway job pointed at the test gateway). Tests add trainer
targets with :meth:`Stack.add_target`, which rewrites the config and reloads Prometheus (SIGHUP).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from recsys_hmtl.monitoring.prometheus_api import query

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TRAINER_JOB = "recsys_hmtl_trainer"
PUSHGATEWAY_JOB = "pushgateway"
BINARIES = ("prometheus", "prometheus-pushgateway", "promtool")


def missing_binaries() -> list[str]:
    """The server binaries not on PATH (install them with tests/setup_servers.sh as root)."""
    return [name for name in BINARIES if shutil.which(name) is None]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET (an HTTP error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline, last_error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


@dataclass
class Stack:
    """URLs and handles of the running servers; see the module docstring."""

    prometheus_url: str
    pushgateway_url: str
    config_path: Path
    config: dict[str, Any]
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    # --------------------------------------------------------------------------- Prometheus
    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result list of an instant query."""
        return query(self.prometheus_url, expr)["result"]

    def wait_for(self, expr: str, timeout: float = 30.0,
                 condition: Callable[[list[dict[str, Any]]], bool] = bool) -> list[dict[str, Any]]:
        """Poll an instant query until ``condition(result)`` holds; returns the result."""
        def check() -> tuple | None:
            result = self.query(expr)
            return (result,) if condition(result) else None

        return wait_until(check, timeout, f"Prometheus query {expr!r}")[0]

    def add_target(self, address: str, job: str = TRAINER_JOB, timeout: float = 30.0,
                   wait: bool = True) -> None:
        """Scrape ``address`` (host:port) in ``job``; with ``wait``, return once ``up == 1`` for it.

        Prometheus applies target changes up to ~5 s after a reload. For a process that is not
        up yet (a short real training), add its port first with ``wait=False``, then start it.
        """
        jobs = {j["job_name"]: j for j in self.config["scrape_configs"]}
        if job not in jobs:
            jobs[job] = {"job_name": job, "static_configs": [{"targets": []}]}
            self.config["scrape_configs"].append(jobs[job])
        jobs[job].setdefault("static_configs", [{"targets": []}])[0].setdefault("targets", []).append(address)
        self.write_config()
        self.processes[-1].send_signal(signal.SIGHUP)
        if wait:
            self.wait_for(f'up{{job="{job}",instance="{address}"}} == 1', timeout)

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    # -------------------------------------------------------------------------- Pushgateway
    def gateway_groups(self) -> list[dict[str, Any]]:
        """The Pushgateway's groups (``/api/v1/metrics``)."""
        status, body = http_get(self.pushgateway_url + "/api/v1/metrics")
        assert status == 200, body
        return json.loads(body)["data"]

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def prometheus_config(pushgateway: str, scrape_interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml adapted to the test servers."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=scrape_interval, scrape_timeout=scrape_interval,
                            evaluation_interval=scrape_interval)
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config.get("rule_files", [])]
    for job in config["scrape_configs"]:
        targets = [pushgateway] if job["job_name"] == PUSHGATEWAY_JOB else []
        job["static_configs"] = [{"targets": targets}]
    return config


def _start(cmd: list[str], log: Path, ready_url: str, timeout: float = 60.0) -> subprocess.Popen:
    out = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out.close()

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        return http_get(ready_url, timeout=2)[0] == 200

    try:
        wait_until(ready, timeout, f"{cmd[0]} to be ready at {ready_url}")
    except AssertionError:
        proc.kill()
        raise
    return proc


def start_stack(tmp: Path) -> Stack:
    """Start the Pushgateway, then Prometheus; both listen on 127.0.0.1 only."""
    tmp.mkdir(parents=True, exist_ok=True)
    gw_port, prom_port = free_port(), free_port()
    gateway = f"127.0.0.1:{gw_port}"
    stack = Stack(prometheus_url=f"http://127.0.0.1:{prom_port}", pushgateway_url=f"http://{gateway}",
                  config_path=tmp / "prometheus.yml", config=prometheus_config(gateway), logs=tmp)
    stack.write_config()
    try:
        stack.processes.append(_start(
            ["prometheus-pushgateway", f"--web.listen-address={gateway}", "--persistence.file="],
            tmp / "pushgateway.log", stack.pushgateway_url + "/-/ready"))
        stack.processes.append(_start(
            ["prometheus", f"--config.file={stack.config_path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            tmp / "prometheus.log", stack.prometheus_url + "/-/ready"))
    except BaseException:
        stack.stop()
        raise
    return stack
