"""``recsys-hmtl pareto``: one run per preference vector, the front of each method, its hypervolume.

The sweep is a grid of ordinary run folders (the ``reproduce`` machinery: resumable, a failed
point recorded and the sweep going on): the chosen stage with ``stage.<preference key>`` = p for
every p of :func:`~.preferences.preference_points`, and beside it linear scalarisation
(``weighted`` with ``stage.weights`` = p: the classic weight sweep). In bilevel mode the linear
points train without it (``weighted`` takes no constraints): they are the plain linear sweep.

``OUT/front.csv``: per point the preference, every task's validation metric (the adapter's
``task_metric``, its direction in the header), the constraint residual at the end of the run
(bilevel mode) and whether the point is dominated within its method's front. ``OUT/front.png``:
the 2-D front of two tasks. ``OUT/front.json``: per method the points, the non-dominated ones and
the hypervolume against one reference point common to every method (the worst value of each task
over all points, moved 1 % of its range outward); with an adapter's dense reference front (the
toy), the points within ``ON_FRONT`` of it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..config import load_config
from ..errors import InputError
from ..evaluation.report import atomic_write_text
from ..reproduce.grid import run_grid
from ..reproduce.suite import Cell, DatasetSpec, Suite, TableRow, TableSpec
from ..training.evaluate import REPORT_FILE, SUMMARY_FILE
from ..training.run_plan import resolve_run
from .distance import distance_to_front
from .front import FrontRow, mark_dominated, write_front_csv
from .hypervolume import hypervolume, reference_point
from .preferences import preference_points

# The hyper-parameter that holds a stage's preference vector (stages without one cannot sweep).
PREFERENCE_KEYS = {"wc_penalty": "preference", "stch": "preference", "weighted": "weights"}
LINEAR = "weighted"
DATASET = "data"
ON_FRONT = 1e-2  # a point this close to the adapter's reference front counts as on it


def pareto(config: str | Path, stage: str, points: int, out: str | Path, *, overrides: list[str] = (),
           tasks: list[str] | None = None, progress: Callable[[str], None] = lambda line: None) -> str:
    """Run (or resume) the sweep under ``out`` and write the front; returns a printable summary."""
    if stage not in PREFERENCE_KEYS:
        raise InputError(f"stage '{stage}' has no preference vector to sweep", key="--stage",
                         hint="one of: " + ", ".join(sorted(PREFERENCE_KEYS)))
    cfg = load_config(config, [*overrides, f"stage.name={stage}"])
    plan = resolve_run(cfg)  # every configuration error before the first run
    task_names = list(plan.task_names)
    try:
        prefs = preference_points(len(task_names), points)
    except ValueError as exc:
        raise InputError(str(exc), key="--points") from None
    plotted = _plot_tasks(tasks, task_names)
    suite = _suite(Path(config), cfg, stage, prefs)
    out = Path(out)
    status = run_grid(suite, out, list(overrides), progress=progress)
    rows, metric, directions = _rows(suite, out, task_names, stage, prefs)
    if not rows:
        failed = [f"{k}: {v.get('error', '')[:200]}" for k, v in status.items() if v.get("status") == "failed"]
        raise InputError("no point of the sweep finished" + (f"; first failure: {failed[0]}" if failed else ""),
                         file=str(out))
    rows = write_front_csv(out / "front.csv", rows, task_names, directions)
    reference = plan.adapter.reference_front(plan.resolved)
    result = _summary(rows, task_names, directions, reference)
    atomic_write_text(out / "front.json", json.dumps(result, indent=1) + "\n")
    try:
        from .plot import plot_front

        plot_front(out / "front.png", rows, plotted[0], plotted[1], {t: d for t, d in zip(task_names, directions)},
                   reference_front=reference, metric=metric,
                   hypervolumes={m: r["hypervolume"] for m, r in result["methods"].items()})
    except ImportError as exc:  # matplotlib missing: the CSV and JSON are still written
        progress(f"front.png not written: {exc}")
    return _render(result, out)


def _plot_tasks(tasks: list[str] | None, names: list[str]) -> list[str]:
    chosen = tasks or names[:2]
    unknown = [t for t in chosen if t not in names]
    if len(chosen) != 2 or unknown:
        raise InputError(f"expects two of the run's tasks {names}, got {chosen}", key="--tasks")
    return chosen


def _variant(method: str, index: int) -> str:
    return f"{method}_{index:02d}"


def _suite(config: Path, cfg, stage: str, prefs: list[tuple[float, ...]]) -> Suite:
    """The sweep as a grid: one dataset (the config's own), its backbone, one lr, one seed."""
    variants = {}
    for method in dict.fromkeys((stage, LINEAR)):
        for i, p in enumerate(prefs):
            values = {"stage.name": method, f"stage.{PREFERENCE_KEYS[method]}": list(p)}
            if method == LINEAR and cfg.bilevel is not None:
                values["bilevel.enabled"] = False
            variants[_variant(method, i)] = values
    names = list(variants)
    table = TableSpec(title="pareto", baseline=names[0], rows=tuple(TableRow(v, names[0], v) for v in names),
                      datasets=(DATASET,), backbones=(cfg.model.name,))
    return Suite(name="pareto", path=config, description="", config=config, values={}, seeds=1,
                 lrs=(cfg.trainer.lr,), datasets={DATASET: DatasetSpec(DATASET, config)},
                 backbones=(cfg.model.name,), variants=variants, tables=(table,), plots=())


def _rows(suite: Suite, out: Path, tasks: list[str], stage: str, prefs):
    """The finished points: validation metrics from each run's summary, the metric's name and
    direction from its report."""
    rows, metric, direction = [], None, "max"
    for method in dict.fromkeys((stage, LINEAR)):
        for i, p in enumerate(prefs):
            cell = Cell(DATASET, suite.backbones[0], _variant(method, i), suite.lrs[0], 0)
            run_dir = cell.run_dir(out)
            if not (run_dir / SUMMARY_FILE).is_file() or not (run_dir / REPORT_FILE).is_file():
                continue
            summary = json.loads((run_dir / SUMMARY_FILE).read_text())
            report = json.loads((run_dir / REPORT_FILE).read_text())
            metric, direction = report.get("task_metric", "auc"), report.get("direction", "max")
            values = {t: float(summary["val"].get(t, {}).get(metric, float("nan"))) for t in tasks}
            residual = summary.get("bilevel", {}).get("residual")
            rows.append(FrontRow(method=method, preference=p, metrics=values, residual=residual,
                                 run_dir=str(run_dir)))
    return rows, metric or "auc", [direction] * len(tasks)


def _summary(rows: list[FrontRow], tasks: list[str], directions: list[str], reference) -> dict:
    ref = reference_point([r.values(tasks) for r in rows], directions)
    methods = {}
    for method in dict.fromkeys(r.method for r in rows):
        own = [r for r in rows if r.method == method]
        entry = {"points": len(own), "non_dominated": sum(not r.dominated for r in own),
                 "hypervolume": hypervolume([r.values(tasks) for r in own], directions, ref),
                 "final_residual": [r.residual for r in own]}
        if reference is not None:
            distances = distance_to_front([r.values(tasks) for r in own], reference)
            entry["on_front"] = sum(d <= ON_FRONT for d in distances)
            entry["front_distance"] = distances
        methods[method] = entry
    return {"tasks": tasks, "directions": directions, "reference_point": list(ref), "methods": methods}


def _render(result: dict, out: Path) -> str:
    lines = [f"front of {len(result['tasks'])} tasks written to {out / 'front.csv'} (and front.json, front.png)",
             "| method | points | non-dominated | hypervolume |" + (" on the front |" if any(
                 "on_front" in m for m in result["methods"].values()) else ""),
             "|---|---:|---:|---:|" + ("---:|" if any("on_front" in m for m in result["methods"].values()) else "")]
    for method, m in result["methods"].items():
        extra = f" {m['on_front']} |" if "on_front" in m else ""
        lines.append(f"| {method} | {m['points']} | {m['non_dominated']} | {m['hypervolume']:.6g} |{extra}")
    return "\n".join(lines)
