"""Live metrics of a training process, exposed on ``/metrics`` (SPEC §8).

One :class:`TrainingMetrics` per process (rank), each with its own ``CollectorRegistry`` so tests and
several runs in one interpreter never share series. Every metric carries the run labels
(``run_id, stage, model, dataset, rank``); per-task ones add ``task``.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections import deque
from typing import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .diagnostics import StageGauges, finite_items
from .labels import RUN_LABELNAMES, RunLabels
from .quality import QualityWindow

#: Step-time buckets in seconds, 1 ms .. 60 s (roughly 1-2.5-5 per decade).
STEP_SECONDS_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)


class TrainingMetrics:
    """Per-task loss, stage diagnostics, AUC, throughput and step-time metrics of one process.

    ``throughput_window`` is how many recent steps ``recsys_hmtl_samples_per_second`` averages over,
    ``quality_window`` how many the live log loss / NE / calibration (:mod:`.quality`) cover.
    The last-step timestamp starts at creation time, so a run that never reaches its first step
    also trips the stalled-run alert.
    """

    def __init__(
        self,
        labels: RunLabels,
        tasks: Sequence[str],
        registry: CollectorRegistry | None = None,
        throughput_window: int = 20,
        quality_window: int = 100,
    ) -> None:
        if not tasks:
            raise ValueError("TrainingMetrics needs at least one task")
        self.labels = labels
        self.tasks = tuple(tasks)
        self.registry = registry if registry is not None else CollectorRegistry()
        self._base = labels.as_dict()
        base, reg = list(RUN_LABELNAMES), self.registry

        self._info = Gauge("recsys_hmtl_run_info", "Always 1; the labels say which run this process trains.",
                           base, registry=reg)
        self._loss = Gauge("recsys_hmtl_loss", "Per-task training loss at the last step.",
                           base + ["task"], registry=reg)
        self._auc = Gauge("recsys_hmtl_auc", "Per-task AUC on a split.", base + ["task", "split"], registry=reg)
        self._gauc = Gauge("recsys_hmtl_gauc", "Per-task GAUC on a split.", base + ["task", "split"], registry=reg)
        self._avg_auc = Gauge("recsys_hmtl_avg_auc", "Mean of the per-task AUCs on a split.",
                              base + ["split"], registry=reg)
        self._throughput = Gauge("recsys_hmtl_samples_per_second",
                                 "Training samples per second over the last steps.", base, registry=reg)
        self._step_seconds = Histogram("recsys_hmtl_step_seconds", "Wall time of one training step.",
                                       base, buckets=STEP_SECONDS_BUCKETS, registry=reg)
        self._steps = Counter("recsys_hmtl_steps", "Training steps taken (skipped steps excluded).",
                              base, registry=reg)
        self._samples = Counter("recsys_hmtl_samples", "Training samples seen in steps taken.",
                                base, registry=reg)
        self._nonfinite = Counter("recsys_hmtl_nonfinite_losses",
                                  "Steps skipped because this task's loss was NaN or infinite.",
                                  base + ["task"], registry=reg)
        self._last_step = Gauge("recsys_hmtl_last_step_timestamp_seconds",
                                "Unix time of the last training step (creation time before the first).",
                                base, registry=reg)
        self._stage = StageGauges(reg, base)
        self._acting = Gauge("recsys_hmtl_stage_acting",
                             "1 when the loss stage's per-task weights moved over the acting window, 0 when "
                             "they stayed a fixed weighting (run_summary.json stage_acting has the rule).",
                             base, registry=reg)
        self._spread = Gauge("recsys_hmtl_stage_weight_spread",
                             "Interquartile range of the task's normalised stage weight over the acting window.",
                             base + ["task"], registry=reg)
        self._share = Gauge("recsys_hmtl_stage_weight_share",
                            "Mean normalised stage weight of the task over the acting window (sums to 1).",
                            base + ["task"], registry=reg)

        per_task = base + ["task"]
        self._quality = QualityWindow(self.tasks, quality_window)
        self._quality_gauges = {
            "logloss": Gauge("recsys_hmtl_train_logloss", "Per-task log loss of the training batches over "
                             "the last steps (this rank).", per_task, registry=reg),
            "ne": Gauge("recsys_hmtl_train_ne", "Per-task normalised entropy (log loss over the entropy of "
                        "the positive rate; < 1 beats the base rate) over the last training steps.",
                        per_task, registry=reg),
            "calibration": Gauge("recsys_hmtl_train_calibration", "Per-task predicted / observed positives "
                                 "of the training batches over the last steps (1 = calibrated).",
                                 per_task, registry=reg),
            "positive_rate": Gauge("recsys_hmtl_train_positive_rate", "Per-task positive rate of the "
                                   "training batches over the last steps.", per_task, registry=reg),
        }

        # Create every fixed series now so rate()/increase() and the dashboard see them from the start.
        self._info.labels(**self._base).set(1)
        self._steps.labels(**self._base)
        self._samples.labels(**self._base)
        self._step_seconds.labels(**self._base)
        for task in self.tasks:
            self._nonfinite.labels(**self._base, task=task)
        self._last_step.labels(**self._base).set(time.time())

        self._window: deque[tuple[float, int]] = deque(maxlen=max(1, int(throughput_window)))
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ HTTP
    def serve(self, addr: str = "127.0.0.1", port: int = 9100) -> int:
        """Expose ``/metrics`` on ``addr:port`` (port 0: a free one); returns the bound port."""
        if self._server is not None:
            raise RuntimeError(f"metrics are already served on port {self.port}")
        try:
            self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            why = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise OSError(exc.errno, f"cannot serve metrics on {addr}:{port}: {why}; set metrics.port to a "
                          "free port (0 turns the endpoint off) or stop the other process") from exc
        return self.port

    @property
    def port(self) -> int | None:
        """The bound port while serving, else None."""
        return None if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        """Stop the HTTP server (idempotent); the registry keeps its values."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "TrainingMetrics":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------- updates
    def observe_step(
        self,
        seconds: float,
        samples: int,
        losses: Mapping[str, float] | None = None,
        diagnostics: Mapping[str, float] | None = None,
    ) -> None:
        """Record one training step: its wall time, batch size, per-task losses, stage diagnostics."""
        seconds, samples = float(seconds), int(samples)
        if not math.isfinite(seconds) or seconds < 0 or samples < 0:
            raise ValueError(f"observe_step needs seconds >= 0 and samples >= 0, got {seconds}, {samples}")
        base = self._base
        self._step_seconds.labels(**base).observe(seconds)
        self._steps.labels(**base).inc()
        self._samples.labels(**base).inc(samples)
        with self._lock:
            self._window.append((seconds, samples))
            total_s = sum(s for s, _ in self._window)
            total_n = sum(n for _, n in self._window)
        if total_s > 0:
            self._throughput.labels(**base).set(total_n / total_s)
        for task, value in finite_items(losses):
            self._loss.labels(**base, task=task).set(value)
        self._stage.set(diagnostics, base)
        self._last_step.labels(**base).set(time.time())

    def observe_quality(self, rows: int, counts: Sequence[Sequence[float]], losses: Mapping[str, float]) -> None:
        """One step's per-task (Σ p, Σ y) and losses into the window; the gauges get its figures
        (a task without positives in the window has no calibration: its gauge is NaN)."""
        with self._lock:
            self._quality.observe(rows, counts, losses)
            summary = self._quality.summary()
        for task, figures in summary.items():
            for key, gauge in self._quality_gauges.items():
                gauge.labels(**self._base, task=task).set(figures[key])

    def set_acting(self, summary: Mapping) -> None:
        """``stage_acting`` (:meth:`~recsys_hmtl.priority.acting.WeightWindow.summary`): whether the
        stage acted, and per task its weight spread and mean share over the window."""
        if summary.get("acting") is None:
            return
        self._acting.labels(**self._base).set(float(summary["acting"]))
        for task, entry in summary["tasks"].items():
            self._spread.labels(**self._base, task=task).set(entry["spread"])
            self._share.labels(**self._base, task=task).set(entry["mean"])

    def observe_nonfinite(self, task: str) -> None:
        """Count one step skipped because ``task``'s loss was not finite."""
        self._nonfinite.labels(**self._base, task=task).inc()

    def set_auc(
        self, split: str, aucs: Mapping[str, float], gaucs: Mapping[str, float] | None = None
    ) -> None:
        """Per-task AUC (and optionally GAUC) on ``split``; also sets their mean as the average AUC."""
        finite = dict(finite_items(aucs))
        for task, value in finite.items():
            self._auc.labels(**self._base, task=task, split=split).set(value)
        for task, value in finite_items(gaucs):
            self._gauc.labels(**self._base, task=task, split=split).set(value)
        if finite:
            self._avg_auc.labels(**self._base, split=split).set(sum(finite.values()) / len(finite))
