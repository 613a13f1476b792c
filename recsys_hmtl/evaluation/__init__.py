"""Exact AUC / GAUC, mergeable streaming counts, reports and seed-shaped comparison tables (SPEC §7).

numpy only (torch tensors are accepted, never required); no Polars, no models.
"""

from recsys_hmtl.evaluation.auc import auc, gauc
from recsys_hmtl.evaluation.compare import compare_markdown, compare_runs, relative_change
from recsys_hmtl.evaluation.counts import ScoreCounts
from recsys_hmtl.evaluation.report import (
    build_report,
    json_safe,
    make_report,
    report_from_counts,
    report_markdown,
    task_report,
    write_report,
)

__all__ = [
    "auc", "gauc", "ScoreCounts", "task_report", "make_report", "build_report", "report_from_counts",
    "report_markdown", "write_report", "json_safe", "compare_runs", "compare_markdown", "relative_change",
]
