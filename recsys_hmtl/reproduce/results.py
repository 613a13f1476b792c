"""``OUT/results.csv``: every figure of every finished cell, in long form.

Columns: suite, dataset, backbone, stage, variant, lr, seed, split, task, metric, value. Per task:
``auc``, ``gauc``, ``positives`` on val (from ``run_summary.json``) and test (``eval_report.json``);
per run (task empty): ``avg_auc`` per split, and on split ``train`` ``stage_acting`` (1/0),
``feasibility_gap`` (seed 001 App. B.3, last step, where the stage reports it), ``wall_seconds``
and ``samples_per_second``. Other domains' metrics (ERE F1, vision accuracy) fit the same columns.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

from ..evaluation.report import atomic_write_text
from ..training.evaluate import REPORT_FILE, SUMMARY_FILE
from .grid import cell_done
from .suite import Cell, Suite

COLUMNS = ("suite", "dataset", "backbone", "stage", "variant", "lr", "seed", "split", "task", "metric", "value")
TASK_METRICS = ("auc", "gauc", "positives")


def cell_rows(suite: Suite, cell: Cell, run_dir: Path) -> Iterator[dict[str, Any]]:
    """The rows of one finished cell."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    report = json.loads((run_dir / REPORT_FILE).read_text())
    stage = summary["config"]["stage"]["name"]
    base = {"suite": suite.name, "dataset": cell.dataset, "backbone": cell.backbone, "stage": stage,
            "variant": cell.variant, "lr": cell.lr, "seed": cell.seed}

    def row(split: str, task: str, metric: str, value: Any) -> dict[str, Any]:
        return {**base, "split": split, "task": task, "metric": metric, "value": value}

    for split, tasks, avg in (("val", summary["val"], summary.get("val_avg_auc")),
                              ("test", report["tasks"], report.get("avg_auc"))):
        for task, entry in tasks.items():
            for metric in TASK_METRICS:
                yield row(split, task, metric, entry.get(metric))
        yield row(split, "", "avg_auc", avg)
    acting = (summary.get("stage_acting") or {}).get("acting")
    yield row("train", "", "stage_acting", None if acting is None else int(acting))
    yield row("train", "", "feasibility_gap", summary.get("stage_diagnostics", {}).get("feasibility_gap"))
    yield row("train", "", "wall_seconds", summary.get("wall_seconds"))
    yield row("train", "", "samples_per_second", summary.get("samples_per_second"))


def collect(suite: Suite, out: Path) -> list[dict[str, Any]]:
    """Rows of every done cell of the suite, in grid order."""
    rows: list[dict[str, Any]] = []
    for cell in suite.cells():
        run_dir = cell.run_dir(out)
        if cell_done(run_dir):
            rows.extend(cell_rows(suite, cell, run_dir))
    return rows


def write_results(rows: list[dict[str, Any]], path: Path) -> None:
    """The long-form CSV (empty value: undefined, e.g. an AUC without positives)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    atomic_write_text(path, buffer.getvalue())
