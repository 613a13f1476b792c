"""``OUT/tables.md``: seed-shaped tables (seed 001 Tables 1-3, 5, 7) from ``results.csv`` rows.

Model selection: per (dataset, backbone, variant), the learning rate of the grid with the best mean
validation Avg. AUC over seeds (the baseline included: every variant gets the same grid); its test
figures are reported. For each backbone, the baseline row shows test AUCs (mean ± std over seeds);
every other row the relative change against its baseline, as seed 001 §4.2 defines it
(Δ = (run − baseline) / baseline · 100 %, Avg. AUC relative to the baseline's average), computed per
seed (seed i of the variant against seed i of the baseline) and shown as mean ± std. A **†** marks a
change that is not significant: a two-sided paired t-test over the seeds at the 5 % level (one seed:
always †). ``acting`` counts the seeds whose ``stage_acting`` was true. Tasks with fewer test
positives than the table's ``min_positives`` are left out, and Avg. AUC is then over the tasks shown.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..evaluation.compare import CHANGES, metric_title
from .suite import Suite, SuiteMetric, TableRow, TableSpec

# Two-sided 5 % critical values of Student's t for 1..30 degrees of freedom (then ≈ normal).
_T_CRIT = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
           2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
           2.045, 2.042)


def significant(deltas: list[float]) -> bool:
    """Paired t-test (two-sided, 5 %) of the per-seed differences against 0."""
    n = len(deltas)
    if n < 2:
        return False
    mean, sd = statistics.fmean(deltas), statistics.stdev(deltas)
    if sd == 0:
        return mean != 0
    crit = _T_CRIT[n - 2] if n - 2 < len(_T_CRIT) else 1.96
    return abs(mean) / (sd / math.sqrt(n)) > crit


class Results:
    """Lookup over ``results.csv`` rows."""

    def __init__(self, rows: Iterable[dict[str, Any]], metric: SuiteMetric = SuiteMetric()) -> None:
        self.metric = metric
        self.values: dict[tuple, float] = {}
        self.lrs: dict[tuple[str, str, str], set[float]] = defaultdict(set)
        self.seeds: dict[tuple[str, str, str, float], set[int]] = defaultdict(set)
        self.tasks: dict[tuple[str, str, str], list[str]] = {}
        for r in rows:
            cfg = (r["dataset"], r["backbone"], r["variant"])
            lr, seed = float(r["lr"]), int(r["seed"])
            self.lrs[cfg].add(lr)
            self.seeds[(*cfg, lr)].add(seed)
            value = r["value"]
            if value not in (None, ""):
                self.values[(*cfg, lr, seed, r["split"], r["task"], r["metric"])] = float(value)
            if r["split"] == "test" and r["task"] and r["metric"] == metric.task:
                names = self.tasks.setdefault(cfg, [])
                if r["task"] not in names:
                    names.append(r["task"])

    def get(self, cfg: tuple, lr: float, seed: int, split: str, task: str, metric: str) -> float:
        return self.values.get((*cfg, lr, seed, split, task, metric), math.nan)

    def best_lr(self, cfg: tuple) -> float | None:
        """The lr with the best mean validation primary metric over seeds, the highest or (metric
        ``direction: min``) the lowest; ties go to the smaller lr (None: no finished cell)."""
        sign = -1.0 if self.metric.direction == "min" else 1.0
        scored = []
        for lr in sorted(self.lrs.get(cfg, ())):
            vals = [self.get(cfg, lr, s, "val", "", self.metric.primary) for s in self.seeds[(*cfg, lr)]]
            vals = [v for v in vals if math.isfinite(v)]
            if vals:
                scored.append((sign * statistics.fmean(vals), -lr, lr))
        return max(scored)[2] if scored else None


@dataclass
class RowFigures:
    """One table row: per task and for Avg. AUC, the per-seed values (AUCs or Δ %)."""

    label: str
    lr: float | None
    per_task: dict[str, list[float]] = field(default_factory=dict)
    avg: list[float] = field(default_factory=list)
    acting: list[int] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    baseline: bool = False


def shown_tasks(results: Results, cfg: tuple, lr: float, min_positives: int) -> list[str]:
    """Tasks of ``cfg`` with at least ``min_positives`` test positives in every seed."""
    if min_positives <= 0:
        return list(results.tasks.get(cfg, []))
    out = []
    for task in results.tasks.get(cfg, []):
        pos = [results.get(cfg, lr, s, "test", task, "positives") for s in results.seeds[(*cfg, lr)]]
        if pos and all(math.isfinite(p) and p >= min_positives for p in pos):
            out.append(task)
    return out


def _avg(results: Results, cfg: tuple, lr: float, seed: int, tasks: list[str]) -> float:
    """The test primary metric: Avg. AUC over ``tasks`` (those shown), or the report's own figure."""
    if results.metric.primary != "avg_auc":
        return results.get(cfg, lr, seed, "test", "", results.metric.primary)
    values = [results.get(cfg, lr, seed, "test", t, "auc") for t in tasks]
    values = [v for v in values if math.isfinite(v)]
    return statistics.fmean(values) if values else math.nan


def backbone_rows(results: Results, table: TableSpec, dataset: str, backbone: str) -> tuple[list[str], list[RowFigures]]:
    """(tasks shown, rows) of one backbone: the baseline row, then each row's Δ % per seed."""
    base_cfg = (dataset, backbone, table.baseline)
    base_lr = results.best_lr(base_cfg)
    if base_lr is None:
        return [], []
    tasks = shown_tasks(results, base_cfg, base_lr, table.min_positives)
    seeds = sorted(results.seeds[(*base_cfg, base_lr)])
    base = RowFigures(table.baseline, base_lr, baseline=True)
    base.per_task = {t: [results.get(base_cfg, base_lr, s, "test", t, results.metric.task) for s in seeds]
                     for t in tasks}
    base.avg = [_avg(results, base_cfg, base_lr, s, tasks) for s in seeds]
    out = [base]
    for row in table.rows:
        out.append(_delta_row(results, table, dataset, backbone, row, tasks))
    return tasks, out


def _delta_row(results: Results, table: TableSpec, dataset: str, backbone: str, row: TableRow,
               tasks: list[str]) -> RowFigures:
    cfg, bcfg = (dataset, backbone, row.variant), (dataset, backbone, row.baseline)
    lr, blr = results.best_lr(cfg), results.best_lr(bcfg)
    figures = RowFigures(row.label, lr)
    if lr is None or blr is None:
        return figures
    seeds = sorted(results.seeds[(*cfg, lr)] & results.seeds[(*bcfg, blr)])
    own = shown_tasks(results, bcfg, blr, table.min_positives)
    row_tasks = [t for t in own if t in results.tasks.get(cfg, [])]
    change, metric = CHANGES[results.metric.change], results.metric.task
    for t in tasks:
        if t in row_tasks:
            figures.per_task[t] = [change(results.get(cfg, lr, s, "test", t, metric),
                                          results.get(bcfg, blr, s, "test", t, metric)) for s in seeds]
    figures.avg = [change(_avg(results, cfg, lr, s, row_tasks), _avg(results, bcfg, blr, s, row_tasks))
                   for s in seeds]
    figures.acting = [int(results.get(cfg, lr, s, "train", "", "stage_acting"))
                      for s in seeds if math.isfinite(results.get(cfg, lr, s, "train", "", "stage_acting"))]
    for column in table.columns:
        figures.extra[column] = [results.get(cfg, lr, s, "train", "", column) for s in seeds]
    return figures


def _mean_sd(values: list[float], change: str | None) -> str:
    """mean ± std of values, or of changes (``relative``: %, ``points``: pt) with the † mark."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    if change is not None:
        mark = "" if significant(values) else " †"
        return f"{mean:+.2f} ± {sd:.2f}{' pt' if change == 'points' else '%'}{mark}"
    return f"{mean:.4f} ± {sd:.4f}"


def render(suite: Suite, results: Results) -> str:
    """The whole ``tables.md``."""
    lines = [f"# Suite `{suite.name}`", ""]
    if suite.description:
        lines += [suite.description, ""]
    m = suite.metric
    how = ("relative change against the baseline (seed 001 §4.2)" if m.change == "relative"
           else "change against the baseline in points, (run − baseline) · 100 (seed 000 Table 2)")
    lines += [f"Seeds per cell: {suite.seeds}; learning-rate grid: {', '.join(f'{x:g}' for x in suite.lrs)} "
              f"(best validation {metric_title(m.primary)} per variant). Baseline rows: test "
              f"{metric_title(m.task)} per task and {metric_title(m.primary)}, mean ± std over seeds. Other "
              f"rows: {how}, per seed, mean ± std; **†** = not "
              "significant (paired t-test over seeds, two-sided 5 %; always with one seed). `acting`: seeds "
              "whose stage_acting was true.", ""]
    for table in suite.tables:
        for dataset in table.datasets:
            lines += _render_table(results, table, dataset)
    return "\n".join(lines) + "\n"


def _render_table(results: Results, table: TableSpec, dataset: str) -> list[str]:
    change = results.metric.change
    lines = [f"## {table.title}: {dataset}", ""]
    blocks = [(b, *backbone_rows(results, table, dataset, b)) for b in table.backbones]
    tasks = next((t for _, t, rows in blocks if rows), [])
    if not tasks:
        return lines + ["(no finished cells yet)", ""]
    published = any(table.published.get(b) for b in table.backbones)
    head = ["model", "lr", *tasks, metric_title(results.metric.primary), "acting", *table.columns] + (["published Δ Avg."] if published else [])
    lines += ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for backbone, _, rows in blocks:
        for fig in rows:
            name = backbone if fig.baseline else f"{backbone} – {fig.label}"
            cells = [name, "n/a" if fig.lr is None else f"{fig.lr:g}"]
            shown = None if fig.baseline else change
            cells += [_mean_sd(fig.per_task[t], shown) if t in fig.per_task else "–" for t in tasks]
            cells.append(_mean_sd(fig.avg, shown))
            cells.append("" if fig.baseline else f"{sum(fig.acting)}/{len(fig.acting)}")
            for column in table.columns:
                values = [v for v in fig.extra.get(column, []) if math.isfinite(v)]
                cells.append(f"{statistics.fmean(values):.4f}" if values else "")
            if published:
                value = None if fig.baseline else _published(table, backbone, fig.label)
                cells.append("" if value is None else f"{value:+.2f}{' pt' if change == 'points' else '%'}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _published(table: TableSpec, backbone: str, label: str) -> float | None:
    """The seed's Δ Avg. AUC for a row, keyed by the row's label or its variant."""
    figures = table.published.get(backbone, {})
    variant = next((r.variant for r in table.rows if r.label == label), label)
    return figures.get(label, figures.get(variant))
