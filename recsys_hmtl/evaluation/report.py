"""The evaluation report (SPEC §7): per-task AUC/GAUC, JSON + Markdown, written atomically.

Shape::

    {"split": "test", "rows": int,
     "tasks": {task: {"auc", "gauc", "users_counted", "users_skipped", "positives", "rows",
                      "logloss", "ne", "calibration", "positive_rate", "mean_score"}},
     "avg_auc": float, "tasks_without_auc": [task, ...]}

``avg_auc`` is the mean of the tasks' AUCs that are defined; tasks whose labels are single-class have
AUC NaN, are left out of the mean and listed in ``tasks_without_auc``. NaN is written as JSON ``null``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from recsys_hmtl.evaluation.auc import ArrayLike, as_numpy, auc, check_labels_scores, gauc
from recsys_hmtl.evaluation.calibration import row_quality
from recsys_hmtl.evaluation.counts import ScoreCounts

__all__ = [
    "task_report", "make_report", "build_report", "report_from_counts", "report_markdown", "auc_warnings",
    "write_report", "json_safe", "atomic_write_text",
]

TASK_KEYS = ("auc", "gauc", "users_counted", "users_skipped", "positives", "rows")


def _entry(auc_value: float, gauc_value: tuple[float, int, int], positives: int, rows: int,
           quality: Mapping[str, float]) -> dict[str, Any]:
    g, counted, skipped = gauc_value
    return {"auc": float(auc_value), "gauc": float(g), "users_counted": int(counted),
            "users_skipped": int(skipped), "positives": int(positives), "rows": int(rows), **quality}


def task_report(labels: ArrayLike, scores: ArrayLike, groups: ArrayLike | None,
                tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-task metrics for labels/scores ``[N, T]`` (columns in ``tasks`` order) and groups ``[N]``
    (None: no users known, GAUC not applicable: NaN with 0 users counted)."""
    tasks = list(tasks)
    y, s = as_numpy(labels, "labels", ndim=2), as_numpy(scores, "scores", ndim=2)
    g = None if groups is None else as_numpy(groups, "groups")
    if y.shape[1] != len(tasks) or s.shape[1] != len(tasks):
        raise ValueError(f"labels {tuple(y.shape)} and scores {tuple(s.shape)} must have one column per task {tasks}")
    positive, s = check_labels_scores(y, s)
    out = {}
    for j, task in enumerate(tasks):
        grouped = gauc(positive[:, j], s[:, j], g) if g is not None else (math.nan, 0, 0)
        out[task] = _entry(auc(positive[:, j], s[:, j]), grouped,
                           int(positive[:, j].sum()), len(s), row_quality(positive[:, j], s[:, j]))
    return out


def make_report(split: str, rows: int, tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Assemble the whole report from per-task entries (adds ``avg_auc`` and ``tasks_without_auc``)."""
    for task, entry in tasks.items():
        missing = set(TASK_KEYS) - set(entry)
        if missing:
            raise ValueError(f"task '{task}' entry lacks {sorted(missing)}")
    defined = [float(e["auc"]) for e in tasks.values() if e["auc"] is not None and math.isfinite(e["auc"])]
    return {
        "split": split,
        "rows": int(rows),
        "tasks": {t: dict(e) for t, e in tasks.items()},
        "avg_auc": float(np.mean(defined)) if defined else math.nan,
        "tasks_without_auc": [t for t, e in tasks.items() if e["auc"] is None or not math.isfinite(e["auc"])],
    }


def build_report(split: str, labels: ArrayLike, scores: ArrayLike, groups: ArrayLike | None,
                 tasks: Sequence[str]) -> dict[str, Any]:
    """The report for in-memory predictions: labels/scores ``[N, T]``, groups ``[N]`` or None."""
    per_task = task_report(labels, scores, groups, tasks)
    return make_report(split, as_numpy(labels, "labels", ndim=2).shape[0], per_task)


def report_from_counts(counts: ScoreCounts, split: str) -> dict[str, Any]:
    """The report for merged streaming state (see :class:`ScoreCounts`); without groups, GAUC is NaN
    with 0 users counted and skipped."""
    per_task = {
        t: _entry(counts.auc(t), counts.gauc(t) if counts.with_groups else (math.nan, 0, 0),
                  counts.positives(t), counts.rows, counts.quality(t))
        for t in counts.tasks
    }
    return make_report(split, counts.rows, per_task)


def auc_warnings(tasks: Mapping[str, Mapping[str, Any]], split: str) -> list[str]:
    """One sentence per task whose AUC is undefined in ``split`` (no positives, or no negatives):
    a number a reader would otherwise miss as a ``null`` in JSON."""
    out = []
    for task, entry in tasks.items():
        positives, rows = entry.get("positives"), entry.get("rows")
        if positives == 0:
            why = "no positives"
        elif positives is not None and rows is not None and positives == rows:
            why = "no negatives"
        elif entry.get("auc") is None or not math.isfinite(entry["auc"]):
            why = "single-class labels"
        else:
            continue
        out.append(f"task '{task}' has {why} in the {split} split ({rows} rows): its AUC is undefined "
                   "and left out of Avg. AUC")
    return out


def _fmt(x: Any, digits: int = 6) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def report_markdown(report: Mapping[str, Any]) -> str:
    """A Markdown table (task, AUC, GAUC, log loss, NE, calibration, users counted/skipped, positives,
    rows) and the Avg. AUC;
    for reports of other metrics (SPEC §9: ``task_metric`` not ``auc``) :func:`metrics_markdown`."""
    if report.get("task_metric", "auc") != "auc":
        return metrics_markdown(report)
    lines = [
        f"## Evaluation: split `{report['split']}`, {report['rows']} rows",
        "",
        "| task | AUC | GAUC | log loss | NE | calibration | users counted | users skipped | positives | rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, e in report["tasks"].items():
        lines.append(f"| {task} | {_fmt(e['auc'])} | {_fmt(e['gauc'])} | {_fmt(e.get('logloss'))} |"
                     f" {_fmt(e.get('ne'), 4)} | {_fmt(e.get('calibration'), 4)} | {e['users_counted']} |"
                     f" {e['users_skipped']} | {e['positives']} | {e['rows']} |")
    without = list(report.get("tasks_without_auc", []))
    n_defined = len(report["tasks"]) - len(without)
    lines += ["", f"**Avg. AUC: {_fmt(report['avg_auc'])}** (mean over {n_defined} task(s) with an AUC)"]
    lines += [f"**Warning:** {w}." for w in auc_warnings(report["tasks"], report["split"])]
    lines += ["", "GAUC weights each user's AUC by the user's impressions; users whose labels for a task "
              "are all equal have no AUC and are skipped (column *users skipped*). NE: log loss over the "
              "entropy of the positive rate (TorchRec's normalised entropy; < 1 beats the base rate). "
              "Calibration: predicted / observed positives (1 = calibrated).", ""]
    return "\n".join(lines)


def metrics_markdown(report: Mapping[str, Any]) -> str:
    """Any adapter's report: one row per task with its numeric entries, then the primary metric."""
    columns = list(dict.fromkeys(k for e in report["tasks"].values() for k, v in e.items()
                                 if isinstance(v, (int, float))))
    lines = [f"## Evaluation: split `{report['split']}`, {report['rows']} rows", "",
             "| task | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for task, e in report["tasks"].items():
        lines.append(f"| {task} | " + " | ".join(_fmt(e.get(c), 4) for c in columns) + " |")
    primary = report.get("primary_metric")
    if primary:
        lines += ["", f"**{primary}: {_fmt(report.get(primary), 4)}**"]
    return "\n".join(lines + [""])


def json_safe(obj: Any) -> Any:
    """Plain-JSON version of ``obj``: NumPy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_report(report: Mapping[str, Any], path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``path`` (JSON, NaN as null) and the Markdown beside it (same stem, ``.md``).

    Both are serialised before anything is written and each file is replaced atomically.
    Returns ``(json_path, markdown_path)``.
    """
    path = Path(path)
    md_path = path.with_suffix(".md")
    if md_path == path:
        raise ValueError(f"report path must not end in .md (the Markdown goes beside it): {path}")
    text = json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n"
    markdown = report_markdown(report)
    atomic_write_text(md_path, markdown)
    atomic_write_text(path, text)
    return path, md_path
