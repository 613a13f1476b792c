"""``recsys-hmtl reproduce``: run a suite's grid (``configs/suites/``) and write the seed-shaped
results: ``results.csv`` (long form), ``tables.md`` and ``plots/*.png`` (see the modules)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..evaluation.report import atomic_write_text
from .grid import dry_run, run_grid
from .results import collect, write_results
from .suite import load_suite
from .tables import Results, render

__all__ = ["reproduce"]
log = logging.getLogger(__name__)


def reproduce(suite_name: str, out: str | Path, *, seeds: int | None = None, overrides: list[str] = (),
              datasets: list[str] | None = None, min_positives: int | None = None, dry: bool = False,
              progress: Callable[[str], None] = lambda line: None) -> str:
    """Run (or, with ``dry``, list) the suite's cells under ``out``; returns the tables (or the list)."""
    suite = load_suite(suite_name, seeds=seeds, datasets=datasets, min_positives=min_positives)
    out = Path(out)
    if dry:
        return dry_run(suite, out, list(overrides))
    status = run_grid(suite, out, list(overrides), progress=progress)
    rows = collect(suite, out)
    write_results(rows, out / "results.csv")
    results = Results(rows, suite.metric)
    tables = render(suite, results)
    failed = {k: v for k, v in status.items() if v.get("status") == "failed"}
    if failed:
        tables += "\n## Failed cells\n\n" + "\n".join(f"- `{k}`: {v.get('error', '')[:300]}" for k, v in
                                                      sorted(failed.items())) + "\n"
    atomic_write_text(out / "tables.md", tables)
    try:
        from .plots import change_plots, weight_plots

        change_plots(suite, results, out)
        weight_plots(suite, results, out)
    except ImportError as exc:  # matplotlib missing: tables and CSV are still written
        log.warning("plots not written (%s); pip install matplotlib", exc)
    return tables
