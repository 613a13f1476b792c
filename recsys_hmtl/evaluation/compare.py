"""Seed-shaped comparison tables (seed 001 Tables 1-4, seed 000 Table 6): runs against the `sum` run.

Relative change, as seed 001 defines it (Sec. 4.2, last paragraph: "the reported improvements in
average AUC are calculated as relative gains with respect to the baseline average rather than as the
arithmetic mean of per-task improvements"; Table 1: per-task changes "relative to baseline")::

    Δ Avg. AUC = (AvgAUC_run − AvgAUC_sum) / AvgAUC_sum · 100 %
    Δ AUC_t    = (AUC_run,t  − AUC_sum,t)  / AUC_sum,t  · 100 %

This is the plain relative gain — not RelaImpr (no 0.5 offset), and not the mean of per-task gains.
A run's Avg. AUC is the mean of its tasks' defined AUCs (the report's rule); undefined (NaN) values
propagate as NaN and print as ``n/a``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

__all__ = ["compare_runs", "compare_markdown", "metric_title", "relative_change", "point_change"]

BASELINE_STAGE = "sum"


def relative_change(value: float, baseline: float) -> float:
    """(value − baseline) / |baseline| · 100 (the sign is the value's move, also for a negative
    baseline such as the toy's losses); NaN when either is undefined or the baseline is 0."""
    if value is None or baseline is None or not (math.isfinite(value) and math.isfinite(baseline)) or baseline == 0:
        return math.nan
    return (value - baseline) / abs(baseline) * 100.0


def point_change(value: float, baseline: float) -> float:
    """(value − baseline) · 100: the change of a [0, 1] score in points (seed 000 Table 2's F1 changes)."""
    if value is None or baseline is None or not (math.isfinite(value) and math.isfinite(baseline)):
        return math.nan
    return (value - baseline) * 100.0


CHANGES = {"relative": relative_change, "points": point_change}


def _number(v: Any) -> float:
    return math.nan if v is None else float(v)


def _metrics(report: Mapping[str, Any]) -> tuple[str, str, str]:
    """(task metric key, primary metric name, change rule) a report declares (SPEC §9); reports
    written before adapters are AUC reports."""
    return (report.get("task_metric", "auc"), report.get("primary_metric", "avg_auc"),
            report.get("change", "relative"))


def compare_runs(
    runs: Sequence[tuple[str, str, Mapping[str, Any]]], baseline: str | None = None
) -> dict[str, Any]:
    """Table data for ``runs`` = [(run label, stage name, report dict), ...].

    The baseline is the run whose stage is ``sum`` (or the run labelled ``baseline`` when several
    are). All runs must cover the same tasks (any order: the priority-order ablation reorders them)
    and report the same metrics; columns follow the baseline's order. Per task the report's
    ``task_metric`` (AUC for recommendation, F1 for ERE), then its ``primary_metric`` (Avg. AUC,
    triple F1); changes as the report's ``change`` rule says (relative %, or points). Returns
    ``{"baseline", "tasks", "task_metric", "primary_metric", "change", "runs": [{"run", "stage",
    "value": {task: v}, "primary", "change": {task: Δ}, "primary_change"}]}``.
    """
    if not runs:
        raise ValueError("compare needs at least one run")
    labels = [r[0] for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"run labels must be distinct, got {labels}")
    for label, _, report in runs:
        if not isinstance(report.get("tasks"), Mapping) or not report["tasks"]:
            raise ValueError(f"run '{label}': report has no 'tasks' mapping")
    if baseline is None:
        sums = [r for r in runs if r[1] == BASELINE_STAGE]
        if not sums:
            raise ValueError(
                f"no run has stage '{BASELINE_STAGE}' to compare against; stages given: "
                + ", ".join(f"{lab}={stage}" for lab, stage, _ in runs)
            )
        if len(sums) > 1:
            raise ValueError(f"several runs have stage '{BASELINE_STAGE}' ({', '.join(r[0] for r in sums)}); "
                             "name the baseline run")
        base = sums[0]
    else:
        if baseline not in labels:
            raise ValueError(f"baseline run '{baseline}' not among the runs {labels}")
        base = runs[labels.index(baseline)]
    tasks = list(base[2]["tasks"])
    metric, primary, change = _metrics(base[2])
    for label, _, report in runs:
        if set(report["tasks"]) != set(tasks):
            raise ValueError(f"run '{label}' has tasks {list(report['tasks'])}, but the baseline run "
                             f"'{base[0]}' has {tasks}; compare runs on the same tasks")
        if _metrics(report) != (metric, primary, change):
            raise ValueError(f"run '{label}' reports {_metrics(report)[1]}, the baseline run '{base[0]}' "
                             f"{primary}; compare runs of one kind")
    delta = CHANGES[change]

    def row(label: str, stage: str, report: Mapping[str, Any]) -> dict[str, Any]:
        values = {t: _number(report["tasks"][t].get(metric)) for t in tasks}
        defined = [v for v in values.values() if math.isfinite(v)]
        mean = sum(defined) / len(defined) if defined else math.nan
        # Avg. AUC is recomputed over the tasks (the report's rule); other primaries are read as given
        value = mean if primary == "avg_auc" else _number(report.get(primary))
        return {"run": label, "stage": stage, "value": values, "primary": value}

    rows = [row(*r) for r in runs]
    base_row = rows[labels.index(base[0])]
    for r in rows:
        r["change"] = {t: delta(r["value"][t], base_row["value"][t]) for t in tasks}
        r["primary_change"] = delta(r["primary"], base_row["primary"])
    return {"baseline": base[0], "tasks": tasks, "task_metric": metric, "primary_metric": primary,
            "change": change, "runs": rows}


def _num(x: float, digits: int = 4) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float, unit: str = "%") -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.2f}{unit}"


_TITLES = {"auc": "AUC", "avg_auc": "Avg. AUC", "f1": "F1", "triple_f1": "triple F1", "accuracy": "acc.",
           "avg_accuracy": "Avg. acc."}


def metric_title(name: str) -> str:
    """How a metric is titled in tables (``avg_auc`` → ``Avg. AUC``)."""
    return _TITLES.get(name, name)


def compare_markdown(table: Mapping[str, Any]) -> str:
    """Markdown: the per-task metric and the primary metric per run, then Δ of each against the
    `sum` baseline (relative % as seed 001 §4.2 defines it, or points)."""
    tasks = table["tasks"]
    metric, primary = metric_title(table.get("task_metric", "auc")), metric_title(table.get("primary_metric", "avg_auc"))
    unit = " pt" if table.get("change") == "points" else "%"
    head = ["run", "stage", *(f"{t} {metric}" for t in tasks), primary, *(f"Δ {t}" for t in tasks), f"Δ {primary}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (2 * len(tasks) + 2)]
    for r in table["runs"]:
        is_base = r["run"] == table["baseline"]
        rel = ["—"] * (len(tasks) + 1) if is_base else [
            *(_pct(r["change"][t], unit) for t in tasks), _pct(r["primary_change"], unit)]
        cells = [r["run"], r["stage"], *(_num(r["value"][t]) for t in tasks), _num(r["primary"]), *rel]
        lines.append("| " + " | ".join(cells) + " |")
    if table.get("change") == "points":
        note = (f"Δ: change against the `{BASELINE_STAGE}` run `{table['baseline']}` in points, "
                "(run − baseline) · 100 (seed 000, Table 2).")
    else:
        note = (f"Δ: relative change against the `{BASELINE_STAGE}` run `{table['baseline']}`, "
                f"(run − baseline) / baseline · 100 %; Δ {primary} is relative to the baseline's {primary} "
                "(seed 001, Sec. 4.2).")
    lines += ["", note, ""]
    return "\n".join(lines)
