"""A fake training run that feeds TrainingMetrics like the training loop does, plus its pushes."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from recsys_hmtl.monitoring import RunLabels, TrainingMetrics, push_evaluation, push_run
from recsys_hmtl.priority.acting import WeightWindow

TASKS = ("is_click", "long_view", "like")
LABELS = RunLabels(run_id="fed-run", stage="scd_vio", model="mmoe", dataset="kuairand", rank=0,
                   group="fed-run")  # its own Pushgateway group: a real run of the same config replaces it


def diagnostics(step: int) -> dict[str, float]:
    """SCD-VIO-shaped diagnostics (keys as recsys_hmtl.priority stages record them)."""
    out: dict[str, float] = {"feasibility_gap": 0.01 * (step % 5)}
    for i, task in enumerate(TASKS):
        out[f"gate/{task}"] = 1.0 if i == 0 else 0.5
        out[f"weight/{task}"] = 1.0 + 0.1 * i
        out[f"threshold/{task}"] = 0.3 + 0.05 * i
        out[f"residual/{task}"] = -0.01 * i
        out[f"violation/{task}"] = 0.4
    out["grad_norm/is_click"] = float("nan")  # skipped, never exported
    return out


def report(split: str = "test", auc: float = 0.7) -> dict:
    """An eval_report.json-shaped report."""
    tasks = {task: {"auc": auc + 0.01 * i, "gauc": auc - 0.05, "users_counted": 90, "users_skipped": 10,
                    "positives": 100 * (i + 1), "rows": 1000} for i, task in enumerate(TASKS)}
    return {"split": split, "rows": 1000, "tasks": tasks, "avg_auc": auc + 0.01}


def summary(auc: float = 0.69) -> dict:
    """A run_summary.json-shaped summary."""
    return {"steps": 100, "wall_seconds": 12.5, "samples_per_second": 32768.0,
            "val": report("val", auc)["tasks"], "stage_diagnostics": diagnostics(100)}


@dataclass
class FedRun:
    labels: RunLabels
    metrics: TrainingMetrics
    address: str
    window: WeightWindow = field(default_factory=lambda: WeightWindow(TASKS, size=8))
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def step(self, i: int) -> None:
        losses = {task: 0.5 + 0.1 * math.sin(i / 10 + k) for k, task in enumerate(TASKS)}
        self.metrics.observe_step(seconds=0.02 + 0.001 * (i % 7), samples=4096, losses=losses,
                                  diagnostics=diagnostics(i))
        counts = [(4096 * 0.1 * (k + 1) * 1.05, 4096 * 0.1 * (k + 1)) for k in range(len(TASKS))]  # (Σ p, Σ y)
        self.metrics.observe_quality(4096, counts, losses)  # as the PrometheusMetrics callback does
        self.window.observe(diagnostics(i))  # as the training module does every step
        self.metrics.set_acting(self.window.summary())
        if i % 25 == 0:
            self.metrics.observe_nonfinite(task="long_view")

    def _loop(self) -> None:
        i = 0
        while not self._stop.wait(0.2):
            i += 1
            self.step(i)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.metrics.close()


def start_fed_run(servers) -> FedRun:
    """Serve, feed a few steps, get scraped, then keep stepping in a thread; push run + evaluation."""
    metrics = TrainingMetrics(LABELS, tasks=list(TASKS))
    port = metrics.serve(addr="127.0.0.1", port=0)
    run = FedRun(LABELS, metrics, f"127.0.0.1:{port}")
    for i in range(5):
        run.step(i)
    metrics.set_auc("val", {task: 0.7 for task in TASKS}, gaucs={task: 0.65 for task in TASKS})
    run._thread = threading.Thread(target=run._loop, name="fed-run", daemon=True)
    run._thread.start()
    servers.add_target(run.address)
    push_run(servers.pushgateway_url, LABELS, success=True, summary=summary(), tasks=list(TASKS))
    push_evaluation(servers.pushgateway_url, LABELS, report=report())
    return run
