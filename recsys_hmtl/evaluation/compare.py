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

__all__ = ["compare_runs", "compare_markdown", "relative_change"]

BASELINE_STAGE = "sum"


def relative_change(value: float, baseline: float) -> float:
    """(value − baseline) / baseline · 100; NaN when either is undefined or the baseline is 0."""
    if value is None or baseline is None or not (math.isfinite(value) and math.isfinite(baseline)) or baseline == 0:
        return math.nan
    return (value - baseline) / baseline * 100.0


def _auc(entry: Mapping[str, Any]) -> float:
    v = entry.get("auc")
    return math.nan if v is None else float(v)


def compare_runs(
    runs: Sequence[tuple[str, str, Mapping[str, Any]]], baseline: str | None = None
) -> dict[str, Any]:
    """Table data for ``runs`` = [(run label, stage name, report dict), ...].

    The baseline is the run whose stage is ``sum`` (or the run labelled ``baseline`` when several
    are). All runs must cover the same tasks (any order: the priority-order ablation reorders them);
    columns follow the baseline's order. Returns ``{"baseline", "tasks", "runs": [{"run", "stage",
    "auc": {task: v}, "avg_auc", "relative_pct": {task: Δ%}, "avg_auc_relative_pct"}]}``.
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
    for label, _, report in runs:
        if set(report["tasks"]) != set(tasks):
            raise ValueError(f"run '{label}' has tasks {list(report['tasks'])}, but the baseline run "
                             f"'{base[0]}' has {tasks}; compare runs on the same tasks")

    def row(label: str, stage: str, report: Mapping[str, Any]) -> dict[str, Any]:
        aucs = {t: _auc(report["tasks"][t]) for t in tasks}
        defined = [v for v in aucs.values() if math.isfinite(v)]
        return {"run": label, "stage": stage, "auc": aucs,
                "avg_auc": sum(defined) / len(defined) if defined else math.nan}

    rows = [row(*r) for r in runs]
    base_row = rows[labels.index(base[0])]
    for r in rows:
        r["relative_pct"] = {t: relative_change(r["auc"][t], base_row["auc"][t]) for t in tasks}
        r["avg_auc_relative_pct"] = relative_change(r["avg_auc"], base_row["avg_auc"])
    return {"baseline": base[0], "tasks": tasks, "runs": rows}


def _num(x: float, digits: int = 4) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.2f}%"


def compare_markdown(table: Mapping[str, Any]) -> str:
    """Markdown: per-task AUC and Avg. AUC per run, then Δ% of each against the `sum` baseline."""
    tasks = table["tasks"]
    head = ["run", "stage", *(f"{t} AUC" for t in tasks), "Avg. AUC", *(f"Δ {t}" for t in tasks), "Δ Avg. AUC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (2 * len(tasks) + 2)]
    for r in table["runs"]:
        is_base = r["run"] == table["baseline"]
        rel = ["—"] * (len(tasks) + 1) if is_base else [
            *(_pct(r["relative_pct"][t]) for t in tasks), _pct(r["avg_auc_relative_pct"])]
        cells = [r["run"], r["stage"], *(_num(r["auc"][t]) for t in tasks), _num(r["avg_auc"]), *rel]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Δ: relative change against the `{BASELINE_STAGE}` run `{table['baseline']}`, "
              "(run − baseline) / baseline · 100 %; Δ Avg. AUC is relative to the baseline's Avg. AUC "
              "(seed 001, Sec. 4.2).", ""]
    return "\n".join(lines)
