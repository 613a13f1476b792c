"""PNG plots of a suite (matplotlib, Agg backend): per-task change with error bars, and the seed
stages' gates / weights over training.

- ``plots/change_<table>_<dataset>_<backbone>.png``: per task (and Avg. AUC), each row's mean Δ %
  against its baseline, error bars ± one std over seeds;
- ``plots/weights_<variant>_<dataset>_<backbone>.png``: the gates (``stage/gate/<task>``) or, for a
  stage without gates, the weights (``stage/weight/<task>``) logged every ``trainer.log_every``
  steps by the selected-lr, first-seed run of each variant listed under the suite's ``plots``.
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

from ..evaluation.compare import metric_title
from .suite import Cell, Suite
from .tables import Results, backbone_rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:60]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def change_plots(suite: Suite, results: Results, out: Path) -> list[Path]:
    """One bar chart per (table, dataset, backbone) with finished cells."""
    plt = _pyplot()
    written = []
    for table in suite.tables:
        for dataset in table.datasets:
            for backbone in table.backbones:
                tasks, rows = backbone_rows(results, table, dataset, backbone)
                deltas = [r for r in rows if not r.baseline and r.avg]
                if not deltas:
                    continue
                labels = [*tasks, metric_title(results.metric.primary)]
                fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels) * max(1, len(deltas)) / 2), 4))
                width = 0.8 / len(deltas)
                for i, row in enumerate(deltas):
                    series = [row.per_task.get(t, []) for t in tasks] + [row.avg]
                    means = [_mean(v) for v in series]
                    sds = [_sd(v) for v in series]
                    xs = [j + (i - (len(deltas) - 1) / 2) * width for j in range(len(labels))]
                    ax.bar(xs, means, width, yerr=sds, capsize=3, label=row.label)
                ax.axhline(0, color="black", linewidth=0.8)
                ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
                unit = "pt" if results.metric.change == "points" else "%"
                ax.set_ylabel(f"Δ {metric_title(results.metric.task)} vs {table.baseline} ({unit})")
                title = f"{table.title}: {dataset}, {backbone} (± std over seeds)"
                path = out / "plots" / f"change_{_slug(table.title)}_{dataset}_{backbone}.png"
                written.append(_save(fig, ax, title, path, plt))
    return written


def weight_plots(suite: Suite, results: Results, out: Path) -> list[Path]:
    """Gates or weights over training of the suite's ``plots`` variants (first seed, chosen lr)."""
    import polars as pl

    plt = _pyplot()
    written = []
    for variant in suite.plots:
        for dataset in suite.datasets:
            for backbone in suite.backbones or sorted({b for t in suite.tables for b in t.backbones}):
                lr = results.best_lr((dataset, backbone, variant))
                if lr is None:
                    continue
                metrics = Cell(dataset, backbone, variant, lr, 0).run_dir(out) / "logs" / "rank0" / "metrics.csv"
                if not metrics.is_file():
                    continue
                frame = pl.read_csv(metrics, infer_schema_length=None)
                order = results.tasks.get((dataset, backbone, variant), [])  # priority order
                for quantity in ("gate", "weight"):
                    columns = [f"stage/{quantity}/{t}" for t in order if f"stage/{quantity}/{t}" in frame.columns]
                    if columns:
                        break
                if not columns:
                    continue
                frame = frame.filter(pl.col(columns[0]).is_not_null())
                fig, ax = plt.subplots(figsize=(7, 4))
                for column in columns:
                    ax.plot(frame["step"].to_list(), frame[column].to_list(), label=column.split("/")[-1])
                ax.set_xlabel("step")
                ax.set_ylabel(quantity)
                title = f"{variant}: {quantity}s over training ({dataset}, {backbone}, lr {lr:g})"
                path = out / "plots" / f"weights_{variant}_{dataset}_{backbone}.png"
                written.append(_save(fig, ax, title, path, plt))
    return written


def _save(fig, ax, title: str, path: Path, plt) -> Path:
    """Title and legend, then the PNG written to a temporary name and renamed."""
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _mean(values: list[float]) -> float:
    values = [v for v in values if math.isfinite(v)]
    return statistics.fmean(values) if values else 0.0


def _sd(values: list[float]) -> float:
    values = [v for v in values if math.isfinite(v)]
    return statistics.stdev(values) if len(values) > 1 else 0.0
