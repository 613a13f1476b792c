"""Pushgateway pushes at the end of a batch job: a training run or an ``evaluate`` job.

Grouping key ``{job, dataset, model, stage, group}`` with job ``recsys_hmtl_train`` or
``recsys_hmtl_evaluate`` and ``group`` = ``metrics.group`` (``default``; ``reproduce`` sets one per
cell); the run id is a label of every pushed metric. One group per configuration, not per run: the
Pushgateway never forgets a group by itself, so a group per run id grew without bound under a daily
schedule. One fresh registry per push. The HTTP method is the point:

* success: ``PUT`` (``push_to_gateway``) replaces the whole group, so today's run leaves exactly one
  set of series (no stale run ids, tasks or splits from earlier attempts or days);
* failure: ``POST`` (``pushadd_to_gateway``) replaces only the metrics it carries
  (``recsys_hmtl_run_success`` = 0 and ``recsys_hmtl_last_failure_timestamp_seconds``), so the last
  success timestamp of an earlier good attempt survives and the "not succeeded within its schedule"
  alert keeps measuring from it.

Only one process (rank 0) should push. A gateway that cannot be reached raises :class:`PushError`
naming the URL; the caller decides whether that fails the job.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from prometheus_client import CollectorRegistry, push_to_gateway, pushadd_to_gateway

from .labels import RunLabels
from .pushed_metrics import evaluation_registry, run_registry

TRAIN_JOB = "recsys_hmtl_train"
EVALUATE_JOB = "recsys_hmtl_evaluate"


class PushError(RuntimeError):
    """The Pushgateway could not be reached or refused the push."""


def grouping_key(labels: RunLabels) -> dict[str, str]:
    """The grouping key below the job: one group per (dataset, model, stage, metrics.group)."""
    return labels.grouping_key()


def _push(gateway_url: str, job: str, labels: RunLabels, registry: CollectorRegistry,
          replace: bool, timeout: float) -> None:
    if not gateway_url:
        raise PushError("no Pushgateway URL given (set metrics.pushgateway=http://HOST:9091)")
    send = push_to_gateway if replace else pushadd_to_gateway
    try:
        send(gateway_url, job=job, registry=registry, grouping_key=grouping_key(labels), timeout=timeout)
    except OSError as exc:  # URLError, HTTPError and the client's own IOError are all OSError
        reason = getattr(exc, "reason", None) or exc
        raise PushError(
            f"could not push job '{job}' run '{labels.run_id}' to the Pushgateway at {gateway_url}: {reason}"
        ) from exc


def push_run(
    gateway_url: str,
    labels: RunLabels,
    success: bool = True,
    summary: Mapping[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
    timeout: float = 10.0,
) -> None:
    """Push the end of a training run: status, and on success the run summary's numbers.

    ``summary`` is ``run_summary.json``'s content (``steps``, ``wall_seconds``, ``samples_per_second``,
    ``val``, ``stage_diagnostics``); ``tasks`` limits the pushed validation AUCs to those tasks.
    """
    registry = run_registry(labels, success=bool(success), summary=summary, tasks=tasks)
    _push(gateway_url, TRAIN_JOB, labels, registry, replace=bool(success), timeout=timeout)


def push_evaluation(
    gateway_url: str, labels: RunLabels, report: Mapping[str, Any], timeout: float = 10.0
) -> None:
    """Push an ``evaluate`` job's report (``eval_report.json``): per-task AUC/GAUC, avg AUC, rows."""
    registry = evaluation_registry(labels, report)
    _push(gateway_url, EVALUATE_JOB, labels, registry, replace=True, timeout=timeout)
