"""Offline evaluation of a run (SPEC §7): score a split with the final checkpoint, exactly.

The checkpoint's shards from every rank are stitched into the full state
(:func:`~recsys_hmtl.training.checkpoint.assemble_full_state`) and handed to the run's adapter,
which scores every row of the split with the unsharded model: one process evaluates a run of any
world size, and the same checkpoint gives the same numbers every time.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..evaluation.compare import compare_markdown, compare_runs
from ..evaluation.report import auc_warnings, write_report
from .checkpoint import CheckpointStore, assemble_full_state
from .files import read_run_config
from .run_plan import RunPlan, resolve_run
from .setup import check_inputs_unchanged, run_labels

SPLITS = ("val", "test")
REPORT_FILE = "eval_report.json"
SUMMARY_FILE = "run_summary.json"


def evaluate_checkpoint(run_dir: str | Path, split: str = "test", *, plan: RunPlan | None = None,
                        prepared=None) -> dict:
    """The report of ``split`` for the last checkpoint of ``run_dir`` (``plan``: the run's resolved
    config when the caller has it, else resolved from ``RUN_DIR/config.yaml``; ``prepared``: the
    adapter's data when the caller has it)."""
    if split not in SPLITS:
        raise InputError(f"unknown split '{split}'; use one of {list(SPLITS)}", key="--split")
    run_dir = Path(run_dir)
    plan = plan or resolve_run(read_run_config(run_dir))
    latest = CheckpointStore(run_dir).latest()
    if latest is None:
        raise InputError("the run has no checkpoint yet", file=str(run_dir / "checkpoints"))
    if prepared is None:
        check_inputs_unchanged(plan.fingerprint(), latest, "evaluate scores the files a run was trained on")
        prepared = plan.adapter.prepare(plan.resolved)
    state = assemble_full_state(Path(latest["path"]), int(latest["world_size"]))
    report = plan.adapter.evaluate(plan.resolved, prepared, state, split, plan.config.trainer.eval_batch_size)
    report["checkpoint"] = {"path": str(latest["path"]), "batch": latest["step"], "steps": latest.get("steps")}
    report["final"] = report_status(run_dir, report) is None
    return report


def report_status(run_dir: Path, report: dict) -> str | None:
    """Why ``report`` (an ``eval_report.json`` of ``run_dir``) is not the finished run's, or None.

    A report is final when it scored the checkpoint the run ended on: ``run_summary.json`` (written
    when training completes) names that batch. A report made while training was still going, or
    before a ``--resume`` trained further, is partial or stale."""
    batch = (report.get("checkpoint") or {}).get("batch")
    summary_path = run_dir / SUMMARY_FILE
    if not summary_path.is_file():
        return f"evaluated at batch {batch} while the run had not finished training (no {SUMMARY_FILE})"
    try:
        finished = json.loads(summary_path.read_text()).get("batches")
    except (json.JSONDecodeError, AttributeError):
        return f"{SUMMARY_FILE} is unreadable"
    latest = CheckpointStore(run_dir).latest()
    if latest is not None and latest["step"] != finished:
        return f"the run is training again (checkpoint at batch {latest['step']}, finished at {finished})"
    if batch != finished:
        return f"stale: evaluated at batch {batch}, the run has since trained to batch {finished}"
    return None


def compare_run_dirs(run_dirs: list[str | Path], allow_partial: bool = False) -> tuple[str, list[str]]:
    """``recsys-hmtl compare``: the seed-style table of the runs' ``eval_report.json`` against the
    run with stage ``sum`` (Markdown), and warnings (tasks without an AUC, partial reports).

    Reports of different splits are never compared; reports that are not the finished run's
    (:func:`report_status`) are refused unless ``allow_partial``, and then marked."""
    runs, splits, partial, warnings = [], {}, {}, []
    for run_dir in map(Path, run_dirs):
        path = run_dir / REPORT_FILE
        if not path.is_file():
            raise InputError("no eval_report.json: run `recsys-hmtl evaluate --run` first", file=str(run_dir))
        cfg = read_run_config(run_dir)
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"not a JSON report ({exc})", file=str(path)) from None
        splits[str(run_dir)] = report.get("split")
        status = report_status(run_dir, report)
        if status is not None:
            partial[str(run_dir)] = status
        label = run_dir.name + (" (partial)" if status is not None else "")
        runs.append((label, cfg.stage.name, report))
        if report.get("task_metric", "auc") == "auc":
            warnings += [f"{run_dir.name}: {w}" for w in auc_warnings(report.get("tasks", {}), report.get("split"))]
    if len(set(splits.values())) > 1:
        raise InputError("the reports are of different splits ("
                         + "; ".join(f"{run}: {split}" for run, split in splits.items()) + ")",
                         hint="evaluate every run on the same split (recsys-hmtl evaluate --split)")
    if partial and not allow_partial:
        raise InputError("not the finished runs' reports: " + "; ".join(f"{r}: {why}" for r, why in partial.items()),
                         hint="rerun `recsys-hmtl evaluate` once training has finished, or pass --allow-partial")
    warnings += [f"{run}: {why}" for run, why in partial.items()]
    try:
        table = compare_markdown(compare_runs(runs))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    acting = acting_markdown(list(map(Path, run_dirs)))
    return table + ("\n" + acting if acting else ""), warnings


def acting_markdown(run_dirs: list[Path]) -> str:
    """Whether each run's loss stage acted (``run_summary.json`` ``stage_acting``), as a small table."""
    lines = ["| run | stage | stage acting | max weight spread | threshold (0.1/K) |", "|---|---|---|---:|---:|"]
    for run_dir in run_dirs:
        try:
            summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        acting = summary.get("stage_acting") or {}
        verdict = {True: "acting", False: "not acting", None: "unknown"}[acting.get("acting")]
        spread = acting.get("max_spread")
        lines.append(f"| {run_dir.name} | {summary['config']['stage']['name']} | {verdict} | "
                     f"{'' if spread is None else f'{spread:.4f}'} | {acting.get('threshold', 0):.4f} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def check_report_target(path: Path) -> None:
    """``evaluate --out``: a ``.json`` path whose file and Markdown sibling are new or earlier
    reports; anything else of the user's is refused before any work (never overwritten)."""
    if path.suffix != ".json":
        raise InputError("the report path must end in .json (the Markdown goes beside it, .md)",
                         file=str(path), key="--out")
    if path.is_dir():
        raise InputError("is a folder; give the report's file name (e.g. DIR/eval_report.json)",
                         file=str(path), key="--out")
    if path.exists():
        try:
            earlier = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            earlier = None
        if not (isinstance(earlier, dict) and {"split", "rows", "tasks"} <= set(earlier)):
            raise InputError("exists and is not an evaluation report: not overwritten",
                             file=str(path), key="--out", hint="choose a new file name")
    markdown = path.with_suffix(".md")
    if markdown.exists():
        try:
            ours = markdown.read_text().startswith("## Evaluation: split ")
        except (OSError, UnicodeDecodeError):
            ours = False
        if not ours:
            raise InputError("the report's Markdown would replace this file, which is not an evaluation "
                             "report: not overwritten", file=str(markdown), key="--out",
                             hint="choose another report name")


def evaluate_run(run_dir: str | Path, split: str = "test", out: str | Path | None = None) -> dict:
    """``recsys-hmtl evaluate``: write ``eval_report.json`` (+ ``.md``), push it when configured."""
    run_dir = Path(run_dir)
    target = Path(out) if out else run_dir / REPORT_FILE
    check_report_target(target)
    plan = resolve_run(read_run_config(run_dir))
    cfg = plan.config
    report = evaluate_checkpoint(run_dir, split, plan=plan)
    write_report(report, target)
    if cfg.metrics.pushgateway:  # a push failure fails the job: its numbers are what it exports
        from ..monitoring import push_evaluation

        push_evaluation(cfg.metrics.pushgateway, run_labels(cfg, run_dir), report=report)
    return report
