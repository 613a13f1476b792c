"""Command line: argument parsing only; every command calls the layers below (SPEC §5b).

Exit codes: 0 success, 2 bad input or configuration (one paragraph on stderr), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from contextlib import contextmanager
from typing import Callable, Sequence

from .errors import InputError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def deco(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return deco


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recsys-hmtl", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo-data", help="write a KuaiRand-1K-format sample with a planted funnel")
    d.add_argument("--out", required=True, help="folder; files go to OUT/data/")
    d.add_argument("--rows", type=int, default=None, help="interactions (default: trains in ~1 min)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--users", type=int, default=None, help="users (default: the demo's; fixed vocabularies "
                   "across sizes of --rows)")
    d.add_argument("--videos", type=int, default=None, help="videos (default: rows // 20)")

    v = sub.add_parser("validate", help="check the inputs a config points at and print a summary")
    v.add_argument("--config", required=True)
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    t = sub.add_parser("train", help="train a run (resumable; --nproc N for N processes)")
    t.add_argument("--config", required=True)
    t.add_argument("--out", required=True, help="run folder: checkpoints, logs, run_summary.json")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--nproc", type=int, default=1, help="processes (ranks) on this machine")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")

    e = sub.add_parser("evaluate", help="exact per-task AUC/GAUC of a run's last checkpoint")
    e.add_argument("--run", required=True, help="run folder written by train")
    e.add_argument("--split", default="test", choices=["test", "val"])
    e.add_argument("--out", default=None, help="report file (default RUN/eval_report.json)")

    x = sub.add_parser("export", help="write a run's tower as a TorchScript program (torch only) with "
                       "metadata.json and the vocabularies")
    x.add_argument("--run", required=True, help="run folder written by train")
    x.add_argument("--out", required=True, help="export folder: new, empty, or a previous export (replaced)")
    x.add_argument("--onnx", action="store_true", help="also write model.onnx (needs the onnx and onnxscript "
                   "packages; checked with onnxruntime when installed)")

    s = sub.add_parser("predict", help="score a CSV/Parquet file of rows in batches with a run or an export")
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder: its last checkpoint, as evaluate scores")
    source.add_argument("--model", help="export folder written by export")
    s.add_argument("--input", required=True, help="rows in the data set's log format (CSV, or .parquet)")
    s.add_argument("--out", required=True, help="Parquet file: id columns, then p_<task> per task")
    s.add_argument("--batch-size", type=int, default=65536, help="rows per batch (bounds memory)")
    s.add_argument("--keep", action="append", default=[], metavar="COLUMN",
                   help="also copy this input column to the output (repeatable)")

    c = sub.add_parser("compare", help="seed-style table of runs against the one with stage 'sum'")
    c.add_argument("runs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--allow-partial", action="store_true",
                   help="also compare reports of unfinished runs or stale checkpoints (marked in the table)")

    r = sub.add_parser("reproduce", help="run a suite of runs (configs/suites/) and write the seed-shaped "
                       "tables, results.csv and plots")
    r.add_argument("--suite", required=True, help="suite name (configs/suites/NAME.yaml) or a suite file")
    r.add_argument("--out", required=True, help="folder: runs/, results.csv, tables.md, plots/")
    r.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the suite's)")
    r.add_argument("--dry-run", action="store_true", help="list the cells and an estimated time")
    r.add_argument("--datasets", default=None, metavar="NAME[=CONFIG],...",
                   help="only these datasets' cells, each optionally with another run config")
    r.add_argument("--min-positives", type=int, default=None,
                   help="leave out tasks with fewer test positives (overrides every table's)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="[DATASET:]KEY=VALUE",
                   help="for every cell, or only DATASET's cells")

    f = sub.add_parser("pareto", help="sweep a stage's preference vector over the simplex (one resumable run "
                       "per point, linear weights beside it) and write the Pareto front")
    f.add_argument("--config", required=True)
    f.add_argument("--stage", required=True, help="wc_penalty, stch or weighted")
    f.add_argument("--points", type=int, required=True, help="preference vectors (a grid for 2-3 tasks, "
                   "a Halton set beyond; 3 tasks: the largest simplex lattice of at most this many)")
    f.add_argument("--out", required=True, help="folder: runs/, front.csv, front.json, front.png")
    f.add_argument("--tasks", default=None, metavar="A,B", help="the two tasks front.png shows (default: the first two)")
    f.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    from .monitoring.check import add_arguments as metrics_check_arguments

    metrics_check_arguments(sub.add_parser("metrics-check", help="which Grafana dashboard queries "
                                           "return data on a Prometheus server"))
    return p


@command("demo-data")
def _demo_data(args: argparse.Namespace) -> int:
    from .data.demo import write_demo_data

    sizes = {"users": args.users} if args.users is not None else {}
    report = write_demo_data(args.out, rows=args.rows, seed=args.seed, videos=args.videos, **sizes)
    print(report, file=sys.stderr)
    return 0


@command("validate")
def _validate(args: argparse.Namespace) -> int:
    from .config import load_config
    from .training.run_plan import resolve_run

    plan = resolve_run(load_config(args.config, args.overrides))  # every check train makes, before data
    prepared = plan.adapter.prepare(plan.resolved)
    plan.adapter.check_model(plan.resolved, prepared)
    print(plan.adapter.describe(plan.resolved, prepared))
    return 0


@command("train")
def _train(args: argparse.Namespace) -> int:
    import os

    from .config import load_config

    from .training.files import check_run_folder
    from .training.run_plan import resolve_run

    cfg = load_config(args.config, args.overrides)  # config errors: exit 2 before any process starts
    if args.nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {args.nproc}")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from .training.launch import launch

        plan = resolve_run(cfg)  # each rank's train() resolves the same plan; a bad key must not start them
        plan.check_world_size(args.nproc)
        check_run_folder(args.out)  # a user's folder is refused before any rank starts
        plan.adapter.check_model(plan.resolved, plan.adapter.prepare(plan.resolved))  # bad input: exit 2 here
        forwarded = ["train", "--config", args.config, "--out", args.out]
        forwarded += [f"--set={item}" for item in args.overrides] + (["--resume"] if args.resume else [])
        return launch(args.nproc, (["--debug"] if args.debug else []) + forwarded)
    from .training.run import train

    summary = train(cfg, args.out, resume=args.resume)
    if summary:
        from .evaluation.report import auc_warnings

        primary = summary["primary_metric"]
        value = summary[f"val_{primary}"]
        if primary == "avg_auc":
            aucs = ", ".join(f"{t} {v['auc']:.4f}" for t, v in summary["val"].items() if v["auc"] is not None)
            print(f"trained {summary['steps']} steps; val AUC: {aucs}; avg {value:.4f}")
            _warn(auc_warnings(summary["val"], "val"))
        else:
            print(f"trained {summary['steps']} steps; val {primary}: "
                  + ("n/a" if value is None else f"{value:.4f}"))
    return 0


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation.report import auc_warnings, report_markdown
    from .training.evaluate import evaluate_run

    report = evaluate_run(args.run, args.split, args.out)
    print(report_markdown(report))
    if report.get("task_metric", "auc") == "auc":
        _warn(auc_warnings(report["tasks"], report["split"]))
    return 0


@command("export")
def _export(args: argparse.Namespace) -> int:
    from .adapters.recsys.export import describe, export_run

    print(describe(export_run(args.run, args.out, onnx=args.onnx), args.out))
    return 0


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from .adapters.recsys.predict import predict

    summary = predict(input=args.input, out=args.out, run=args.run, model=args.model,
                      batch_size=args.batch_size, keep=args.keep)
    print(f"scored {summary['rows']} rows of {summary['input']} with the {summary['scored_with']} in "
          f"{summary['seconds']:.1f}s: {summary['out']} ({', '.join(summary['columns'])})")
    return 0


@command("compare")
def _compare(args: argparse.Namespace) -> int:
    from .training.evaluate import compare_run_dirs

    table, warnings_ = compare_run_dirs(args.runs, allow_partial=args.allow_partial)
    print(table)
    _warn(warnings_)
    return 0


@command("reproduce")
def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with _quiet_training_logs():
        datasets = [d for d in args.datasets.split(",") if d] if args.datasets else None
        print(reproduce(args.suite, args.out, seeds=args.seeds, overrides=args.overrides, datasets=datasets,
                        min_positives=args.min_positives, dry=args.dry_run, progress=progress))
    return 0


@contextmanager
def _quiet_training_logs():
    """One progress line per run of a grid instead of the training job's own logs."""
    quiet = [logging.getLogger(n) for n in ("recsys_hmtl.training", "recsys_hmtl.data", "pytorch_lightning",
                                              "torchrec")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


@command("pareto")
def _pareto(args: argparse.Namespace) -> int:
    from .pareto.sweep import pareto

    tasks = [t for t in args.tasks.split(",") if t] if args.tasks else None
    with _quiet_training_logs():
        print(pareto(args.config, args.stage, args.points, args.out, overrides=args.overrides, tasks=tasks,
                     progress=lambda line: print(line, file=sys.stderr, flush=True)))
    return 0


@command("metrics-check")
def _metrics_check(args: argparse.Namespace) -> int:
    from .monitoring.check import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Our own progress at INFO; the libraries' (TorchRec's planner tables, FBGEMM) only from WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for name in ("recsys_hmtl", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.INFO)
    for module in ("torchrec", "torch", "pytorch_lightning", "recsys_hmtl"):  # deprecation chatter
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"recsys-hmtl {args.command}: error: {exc}", file=sys.stderr)
        return InputError.exit_code
    except KeyboardInterrupt:
        print(f"recsys-hmtl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one paragraph, not a traceback, for scheduled jobs
        if getattr(exc, "exit_code", 1) in (130, 143):  # TrainingInterrupted: stopped by Ctrl-C / SIGTERM
            print(f"recsys-hmtl {args.command}: {exc}", file=sys.stderr)
            return exc.exit_code
        if args.debug:
            traceback.print_exc()
        print(f"recsys-hmtl {args.command}: failed: {type(exc).__name__}: {exc} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
