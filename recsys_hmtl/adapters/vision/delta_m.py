"""Δm% of finished runs against single-task runs, and seed 003's running-time ratio to ``sum``.

Two uses::

    # one multi-task run against the STL runs of its tasks (test reports, eval_report.json)
    python -m recsys_hmtl.adapters.vision.delta_m --mtl runs/mm_ldc --stl runs/mm_stl_left runs/mm_stl_right

    # every variant of a reproduce folder (OUT/runs/<dataset>/<backbone>/<variant>/lr<lr>/seed<i>):
    # Δm% per seed against the STL runs (reports with single_task set) of the same seed and lr,
    # mean ± std over seeds, and the training time per sample as a ratio to sum's (seed 003 Fig. 4)
    python -m recsys_hmtl.adapters.vision.delta_m --suite-out OUT --dataset multimnist --backbone lenet

Δm% is :func:`~.metrics.delta_m` (seed 003's sign: negative = better than STL) over the report's
``--metric`` (``accuracy``; ``f1`` for CelebA as FAMO/FairGrad compare it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from ...errors import InputError
from ...training.evaluate import REPORT_FILE, SUMMARY_FILE
from .metrics import delta_m


def _json(path: Path) -> dict:
    if not path.is_file():
        raise InputError("not found: evaluate the run first (recsys-hmtl evaluate --run RUN)", file=str(path))
    return json.loads(path.read_text())


def task_figures(report: dict, metric: str) -> dict[str, float]:
    """``{task: report.tasks[task][metric]}``."""
    try:
        return {t: float(v[metric]) for t, v in report["tasks"].items()}
    except KeyError:
        raise InputError(f"the report has no per-task '{metric}'", key="--metric") from None


def delta_m_of_runs(mtl_run: Path, stl_runs: list[Path], metric: str = "accuracy") -> dict:
    """``{"delta_m", "tasks": {task: (multi, single)}}`` of one multi-task run's test report."""
    multi = _json(Path(mtl_run) / REPORT_FILE)
    single: dict[str, float] = {}
    for run in stl_runs:
        report = _json(Path(run) / REPORT_FILE)
        if report.get("split") != multi.get("split"):
            raise InputError(f"a {report.get('split')} report beside a {multi.get('split')} one", file=str(run))
        single.update(task_figures(report, metric))
    figures = task_figures(multi, metric)
    return {"delta_m": delta_m(figures, single), "metric": metric,
            "tasks": {t: (figures[t], single[t]) for t in single}}


def suite_rows(out: Path, dataset: str, backbone: str, metric: str = "accuracy") -> list[dict]:
    """Per multi-task variant and lr: Δm% per seed against the STL runs of that seed and lr, and the
    time per training sample relative to ``sum`` (same lr, mean over seeds)."""
    root = Path(out) / "runs" / dataset / backbone
    if not root.is_dir():
        raise InputError("no runs of this dataset and backbone", file=str(root))
    runs: dict[tuple[str, str], dict[int, tuple[dict, dict]]] = defaultdict(dict)
    single: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for run in sorted(root.glob("*/lr*/seed*")):
        if not (run / REPORT_FILE).is_file() or not (run / SUMMARY_FILE).is_file():
            continue
        report, summary = _json(run / REPORT_FILE), _json(run / SUMMARY_FILE)
        variant, lr, seed = run.parts[-3], run.parts[-2], int(run.name[4:])
        if report.get("single_task"):
            single[(lr, seed)].update(task_figures(report, metric))
        else:
            runs[(variant, lr)][seed] = (report, summary)
    rows = []
    for (variant, lr), seeds in sorted(runs.items()):
        deltas = [delta_m(task_figures(report, metric), single[(lr, s)]) for s, (report, _) in sorted(seeds.items())
                  if single.get((lr, s)) and set(single[(lr, s)]) <= set(report["tasks"])]
        base = runs.get(("sum", lr), {})
        ratios = [base[s][1]["samples_per_second"] / summary["samples_per_second"]
                  for s, (_, summary) in seeds.items()
                  if s in base and summary.get("samples_per_second") and base[s][1].get("samples_per_second")]
        rows.append({"variant": variant, "lr": lr, "seeds": len(seeds), "delta_m": deltas,
                     "primary": [r[r["primary_metric"]] for r, _ in seeds.values()],
                     "time_ratio": statistics.fmean(ratios) if ratios else None})
    return rows


def _mean_sd(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{fmt}} ± {sd:{fmt[1:] if fmt.startswith('+') else fmt}}"


def suite_markdown(rows: list[dict], metric: str) -> str:
    lines = [f"| variant | lr | seeds | Δm% ({metric}, ↓) | primary | time / sum |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        ratio = "n/a" if r["time_ratio"] is None else f"{r['time_ratio']:.2f}x"
        lines.append(f"| {r['variant']} | {r['lr'][2:]} | {r['seeds']} | {_mean_sd(r['delta_m'], '+.2f')} | "
                     f"{_mean_sd(r['primary'], '.4f')} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_hmtl.adapters.vision.delta_m", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mtl", type=Path, help="a multi-task run folder")
    parser.add_argument("--stl", type=Path, nargs="+", default=[], help="single-task run folders")
    parser.add_argument("--suite-out", type=Path, help="a reproduce output folder")
    parser.add_argument("--dataset", default="multimnist")
    parser.add_argument("--backbone", default="lenet")
    parser.add_argument("--metric", default="accuracy", help="per-task figure of the reports (accuracy | f1)")
    args = parser.parse_args(argv)
    try:
        if args.suite_out is not None:
            print(suite_markdown(suite_rows(args.suite_out, args.dataset, args.backbone, args.metric), args.metric))
        elif args.mtl is not None and args.stl:
            result = delta_m_of_runs(args.mtl, args.stl, args.metric)
            for task, (m, s) in result["tasks"].items():
                print(f"{task}: {args.metric} {m:.4f} (STL {s:.4f})")
            print(f"Δm% = {result['delta_m']:+.2f}")
        else:
            parser.error("give --mtl RUN --stl RUN..., or --suite-out OUT")
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
