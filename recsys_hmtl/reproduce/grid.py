"""Running a suite's grid: every cell an ordinary run folder, resumable, failures recorded.

A cell is done when its run finished (``run_summary.json``) and its test report scored the final
checkpoint; a done cell is skipped. Any other cell is trained with ``--resume`` semantics (a killed
one continues from its last checkpoint) and evaluated on the test split. A cell that fails is
recorded in ``OUT/grid.json`` with its error and the grid goes on; a stop request (SIGTERM,
Ctrl-C) stops the whole grid after the current cell's checkpoint, so a rerun resumes it.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable

from ..config import load_config
from ..errors import InputError
from ..evaluation.report import atomic_write_text
from ..training.evaluate import REPORT_FILE, SUMMARY_FILE, evaluate_run, report_status
from ..training.module import TrainingInterrupted
from ..training.run import train
from .suite import Cell, Suite

log = logging.getLogger(__name__)
GRID_FILE = "grid.json"
# Rough CLI throughput on a 2-core CPU (recsys-hmtl train, MMoE, batch 4096), for --dry-run estimates.
ASSUMED_SAMPLES_PER_SECOND = 30_000.0
CELL_OVERHEAD_SECONDS = 4.0


def cell_done(run_dir: Path) -> bool:
    """The run finished and its test report is the final checkpoint's."""
    report_path = run_dir / REPORT_FILE
    if not (run_dir / SUMMARY_FILE).is_file() or not report_path.is_file():
        return False
    try:
        report = json.loads(report_path.read_text())
    except json.JSONDecodeError:
        return False
    return report.get("split") == "test" and report_status(run_dir, report) is None


def prepare_datasets(suite: Suite, out: Path) -> dict[str, str]:
    """Write the demo data of the datasets that ask for it (once); ``{dataset: data.root}``."""
    from ..data.demo import write_demo_data

    roots = {}
    for name, spec in suite.datasets.items():
        if spec.demo_rows is None:
            continue
        root = Path(out) / "data" / name
        if not (root / "data").is_dir():
            write_demo_data(root, rows=int(spec.demo_rows), seed=0)
        roots[name] = str(root)
    return roots


def run_grid(suite: Suite, out: Path, user: list[str],
             progress: Callable[[str], None] = lambda line: None) -> dict[str, dict]:
    """Run every cell not yet done; returns the grid status ``{cell key: {...}}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    roots = prepare_datasets(suite, out)
    status = read_status(out)
    cells = suite.cells()
    os.environ.setdefault("RECSYS_HMTL_PROGRESS", "0")  # one line per cell instead of progress bars
    for index, cell in enumerate(cells, 1):
        run_dir = cell.run_dir(out)
        where = f"[{index}/{len(cells)}] {cell.key}"
        if cell_done(run_dir):
            status[cell.key] = {**status.get(cell.key, {}), "status": "done"}
            continue
        started = time.perf_counter()
        try:
            cfg = load_config(*_config_args(suite, cell, user, roots))
            cfg.seed += cell.seed
            train(cfg, run_dir, resume=True)
            evaluate_run(run_dir, "test")
        except (TrainingInterrupted, KeyboardInterrupt):
            status[cell.key] = {"status": "stopped", "seconds": time.perf_counter() - started}
            write_status(out, status)
            raise
        except Exception as exc:  # recorded; the grid goes on
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, InputError) else str(exc)
            status[cell.key] = {"status": "failed", "error": message[:2000],
                                "seconds": time.perf_counter() - started}
            progress(f"{where}: failed: {message[:300]}")
        else:
            status[cell.key] = {"status": "done", "seconds": time.perf_counter() - started}
            progress(f"{where}: done in {status[cell.key]['seconds']:.1f} s")
        write_status(out, status)
        gc.collect()
    write_status(out, status)
    return status


def dry_run(suite: Suite, out: Path, user: list[str]) -> str:
    """The cells, whether each is done, and an estimate of the time the rest will take."""
    out = Path(out)
    status = read_status(out)
    lines, remaining, todo, unknown = [], 0.0, 0, 0
    estimates: dict[tuple[str, str, str], float] = {}
    for cell in suite.cells():
        done = cell_done(cell.run_dir(out))
        state = "done" if done else status.get(cell.key, {}).get("status", "todo")
        if not done:
            key = (cell.dataset, cell.backbone, cell.variant)
            if key not in estimates:
                estimates[key] = _estimate_seconds(suite, cell, user, out)
            todo += 1
            if math.isfinite(estimates[key]):
                remaining += estimates[key]
            else:
                unknown += 1
        lines.append(f"{state:>8}  {cell.key}")
    lines.append(f"{len(lines)} cells, {todo} to run; estimated {remaining / 60:.1f} min at "
                 f"{ASSUMED_SAMPLES_PER_SECOND:,.0f} samples/s plus {CELL_OVERHEAD_SECONDS:g} s a cell "
                 "(finished cells of the same dataset and backbone refine it)"
                 + (f"; {unknown} cells not estimated: their input files were not found (set data.root), "
                    "or their adapter's size is known only from a finished cell"
                    if unknown else ""))
    return "\n".join(lines)


def _config_args(suite: Suite, cell: Cell, user: list[str], roots: dict[str, str]) -> tuple[Path, list[str]]:
    path, items = suite.overrides(cell, user)
    if cell.dataset in roots:  # generated demo data, unless the user's own data.root follows
        items.insert(0, f"data.root={json.dumps(roots[cell.dataset])}")
    return path, items


def _estimate_seconds(suite: Suite, cell: Cell, user: list[str], out: Path) -> float:
    """Measured wall time of a finished cell of the same dataset and backbone, else rows × epochs
    (or max_steps × batch) at :data:`ASSUMED_SAMPLES_PER_SECOND`."""
    for other in suite.cells():
        if (other.dataset, other.backbone) == (cell.dataset, cell.backbone):
            summary = other.run_dir(out) / SUMMARY_FILE
            if summary.is_file():
                return float(json.loads(summary.read_text()).get("wall_seconds", 0)) + CELL_OVERHEAD_SECONDS
    roots = {n: str(Path(out) / "data" / n) for n, s in suite.datasets.items() if s.demo_rows is not None}
    cfg = load_config(*_config_args(suite, cell, user, roots))
    spec = suite.datasets[cell.dataset]
    rows = float(spec.demo_rows) if spec.demo_rows is not None else _rows_from_files(cfg)
    samples = rows * 0.9 * cfg.trainer.max_epochs
    if cfg.trainer.max_steps > 0:
        samples = min(samples, cfg.trainer.max_steps * cfg.trainer.batch_size)
    return samples / ASSUMED_SAMPLES_PER_SECOND + CELL_OVERHEAD_SECONDS


def _rows_from_files(cfg) -> float:
    """Rows of the logs estimated from their sizes and the length of their first lines (NaN for
    another adapter's data: its estimate comes from a finished cell)."""
    from ..data.config import DataConfig
    from ..data.sources import input_files, resolve

    if not isinstance(cfg.data, DataConfig):
        return math.nan
    try:
        data, _ = resolve(cfg.data, cfg.tasks)
        logs = input_files(data)[: len(data.files)]
    except InputError:
        return math.nan
    total = 0.0
    for path in logs:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
        lines = max(1, head.count(b"\n"))
        total += path.stat().st_size / (len(head) / lines)
    return total


def read_status(out: Path) -> dict[str, dict]:
    path = Path(out) / GRID_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        log.warning("%s is unreadable; cell states are recomputed from the run folders", path)
        return {}


def write_status(out: Path, status: dict[str, dict]) -> None:
    atomic_write_text(Path(out) / GRID_FILE, json.dumps(status, indent=1, sort_keys=True) + "\n")
