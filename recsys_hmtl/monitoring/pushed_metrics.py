"""Registries for what a finished batch job pushes: run status, run summary, evaluation report.

Each builder returns a fresh ``CollectorRegistry`` (never the global one). Metrics carry ``run_id``
(plus ``task``/``split``); ``job``, ``dataset``, ``model``, ``stage`` and ``group`` come from the
grouping key.
Non-finite numbers (an undefined GAUC, say) are left out rather than pushed as NaN.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

from prometheus_client import CollectorRegistry, Gauge

from .diagnostics import finite_items, split_key
from .labels import PUSH_LABELNAMES, RunLabels

BASE = list(PUSH_LABELNAMES)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _status(reg: CollectorRegistry, labels: RunLabels, success: bool, now: float) -> None:
    """``recsys_hmtl_run_info``, ``recsys_hmtl_run_success`` and the matching timestamp."""
    values = labels.push_labels()
    Gauge("recsys_hmtl_run_info", "Always 1; the labels say which run pushed this group.",
          BASE, registry=reg).labels(**values).set(1)
    Gauge("recsys_hmtl_run_success", "1 if the job's last attempt succeeded, 0 if it failed.",
          BASE, registry=reg).labels(**values).set(1 if success else 0)
    if success:
        name, doc = "recsys_hmtl_last_success_timestamp_seconds", "Unix time the job last succeeded."
    else:
        name, doc = "recsys_hmtl_last_failure_timestamp_seconds", "Unix time the job last failed."
    Gauge(name, doc, BASE, registry=reg).labels(**values).set(now)


def _evaluation(
    reg: CollectorRegistry,
    labels: RunLabels,
    split: str,
    tasks: Mapping[str, Mapping[str, Any]],
    avg_auc: Any = None,
    rows: Any = None,
    primary: tuple[str, Any] | None = None,
) -> None:
    """Per-task AUC/GAUC/rows/positives/GAUC users, the average AUC and the row count of a split;
    an adapter's other per-task figures (ERE: precision, recall, f1) as ``recsys_hmtl_eval_task_metric``
    and its primary metric (``primary``: (name, value)) as ``recsys_hmtl_eval_primary``."""
    values = labels.push_labels()
    per_task = BASE + ["task", "split"]
    gauges = {
        "auc": Gauge("recsys_hmtl_auc", "Per-task AUC on a split.", per_task, registry=reg),
        "gauc": Gauge("recsys_hmtl_gauc", "Per-task GAUC on a split.", per_task, registry=reg),
        "rows": Gauge("recsys_hmtl_eval_task_rows", "Rows scored for this task.", per_task, registry=reg),
        "positives": Gauge("recsys_hmtl_eval_positives", "Positive labels of this task.", per_task,
                           registry=reg),
        "users_counted": Gauge("recsys_hmtl_gauc_users_counted", "Users in this task's GAUC.", per_task,
                               registry=reg),
        "users_skipped": Gauge("recsys_hmtl_gauc_users_skipped",
                               "Users left out of this task's GAUC (all labels equal).", per_task, registry=reg),
    }
    aucs = []
    other = None
    for task, numbers in tasks.items():
        for key, value in (numbers or {}).items():
            number = _number(value)
            if number is None:
                continue
            if key in gauges:
                gauges[key].labels(**values, task=task, split=split).set(number)
                if key == "auc":
                    aucs.append(number)
                continue
            other = other or Gauge("recsys_hmtl_eval_task_metric", "Another per-task figure of the adapter's "
                                   "report (e.g. ERE precision, recall, f1).", per_task + ["metric"], registry=reg)
            other.labels(**values, task=task, split=split, metric=key).set(number)
    if primary is not None and _number(primary[1]) is not None:
        Gauge("recsys_hmtl_eval_primary", "The adapter's primary metric on a split (avg_auc, triple_f1).",
              BASE + ["split", "metric"], registry=reg).labels(**values, split=split, metric=primary[0]).set(
                  _number(primary[1]))
    average = _number(avg_auc)
    if average is None and aucs:
        average = sum(aucs) / len(aucs)
    if average is not None:
        Gauge("recsys_hmtl_avg_auc", "Mean of the per-task AUCs on a split.", BASE + ["split"],
              registry=reg).labels(**values, split=split).set(average)
    total = _number(rows)
    if total is not None:
        Gauge("recsys_hmtl_eval_rows", "Rows in the evaluated split.", BASE + ["split"],
              registry=reg).labels(**values, split=split).set(total)


def run_registry(
    labels: RunLabels,
    success: bool,
    summary: Mapping[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
    now: float | None = None,
) -> CollectorRegistry:
    """What a training run pushes. A failed run pushes only its status (see :func:`push.push_run`)."""
    reg = CollectorRegistry()
    now = time.time() if now is None else now
    _status(reg, labels, success, now)
    if not success or not summary:
        return reg
    values = labels.push_labels()
    for key, name, doc in (
        ("steps", "recsys_hmtl_run_steps", "Training steps the run took."),
        ("wall_seconds", "recsys_hmtl_run_wall_seconds", "Wall time of the run."),
        ("samples_per_second", "recsys_hmtl_run_samples_per_second", "Training samples per second of the run."),
    ):
        number = _number(summary.get(key))
        if number is not None:
            Gauge(name, doc, BASE, registry=reg).labels(**values).set(number)
    val = dict(summary.get("val") or {})
    if tasks is not None:
        val = {task: val[task] for task in tasks if task in val}
    if val:
        name = str(summary.get("primary_metric", "avg_auc"))
        _evaluation(reg, labels, "val", val, primary=(name, summary.get(f"val_{name}")))
    diagnostics = dict(finite_items(summary.get("stage_diagnostics")))
    if diagnostics:
        gauge = Gauge("recsys_hmtl_run_stage_diagnostic", "Loss-stage diagnostics at the end of the run.",
                      BASE + ["quantity", "task"], registry=reg)
        for key, value in diagnostics.items():
            quantity, task = split_key(key)
            gauge.labels(**values, quantity=quantity, task=task).set(value)
    return reg


def evaluation_registry(
    labels: RunLabels, report: Mapping[str, Any], now: float | None = None
) -> CollectorRegistry:
    """What an ``evaluate`` job pushes: success status plus the report's numbers."""
    if not isinstance(report, Mapping) or not isinstance(report.get("tasks"), Mapping):
        raise ValueError("an evaluation report needs a 'tasks' mapping of task -> numbers")
    reg = CollectorRegistry()
    _status(reg, labels, True, time.time() if now is None else now)
    name = str(report.get("primary_metric", "avg_auc"))
    _evaluation(reg, labels, str(report.get("split", "test")), report["tasks"],
                report.get("avg_auc"), report.get("rows"), primary=(name, report.get(name)))
    return reg
