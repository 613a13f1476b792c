"""``OUT/results.csv``: every figure of every finished cell, in long form.

Columns: suite, dataset, backbone, stage, variant, lr, seed, split, task, metric, value. Per task,
every number of the report's task entry (recommendation: ``auc``, ``gauc``, ``positives``, ...; ERE:
``precision``, ``recall``, ``f1``, ...) on val (from ``run_summary.json``) and test
(``eval_report.json``); per run (task empty): the adapter's primary metric (``avg_auc``,
``triple_f1``) per split, and on split ``train`` ``stage_acting`` (1/0), ``feasibility_gap`` (seed
001 App. B.3, last step, where the stage reports it), ``wall_seconds`` and ``samples_per_second``.
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


def cell_rows(suite: Suite, cell: Cell, run_dir: Path) -> Iterator[dict[str, Any]]:
    """The rows of one finished cell."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    report = json.loads((run_dir / REPORT_FILE).read_text())
    stage = summary["config"]["stage"]["name"]
    base = {"suite": suite.name, "dataset": cell.dataset, "backbone": cell.backbone, "stage": stage,
            "variant": cell.variant, "lr": cell.lr, "seed": cell.seed}

    def row(split: str, task: str, metric: str, value: Any) -> dict[str, Any]:
        return {**base, "split": split, "task": task, "metric": metric, "value": value}

    primary = summary.get("primary_metric", "avg_auc")
    for split, tasks, value in (("val", summary["val"], summary.get(f"val_{primary}")),
                                ("test", report["tasks"], report.get(primary))):
        for task, entry in tasks.items():
            for metric, number in entry.items():
                if number is None or isinstance(number, (int, float)) and not isinstance(number, bool):
                    yield row(split, task, metric, number)
        yield row(split, "", primary, value)
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
