"""The rows of a Pareto sweep (one per method × preference run) and their CSV file.

One CSV, one header row: ``method,preference,<task> (max|min)…,residual,dominated,run_dir``. The
preference is written as ``0.25-0.75`` (12 decimals at most), metrics with full precision (``nan``
when missing), the residual empty when the run has none, ``dominated`` as ``true``/``false``
computed within each method (every method's own front). The front's math lives beside this module
and is re-exported here: :func:`non_dominated`, :func:`hypervolume`, :func:`reference_point`,
:func:`distance_to_front`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from ..errors import InputError
from ..evaluation.report import atomic_write_text
from .distance import distance_to_front
from .dominance import non_dominated
from .hypervolume import hypervolume, reference_point
from .objectives import directions_for
from .preferences import as_preference, format_preference, parse_preference

__all__ = [
    "FrontRow", "mark_dominated", "write_front_csv", "read_front_csv", "read_front_tasks",
    "non_dominated", "hypervolume", "reference_point", "distance_to_front",
]

_FIXED_HEAD = ("method", "preference")
_FIXED_TAIL = ("residual", "dominated", "run_dir")
_TASK_COLUMN = re.compile(r"^(?P<task>.+) \((?P<direction>max|min)\)$")


@dataclass(frozen=True)
class FrontRow:
    """One finished run of a sweep: its method, preference vector, final metric per task, the
    constraint residual at the end of the run (None without constraints) and its run folder.
    ``dominated`` is filled by :func:`mark_dominated` / :func:`write_front_csv`."""

    method: str
    preference: tuple[float, ...]
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    residual: float | None = None
    run_dir: str = ""
    dominated: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a non-empty string, got {self.method!r}")
        object.__setattr__(self, "preference", as_preference(self.preference))
        object.__setattr__(self, "run_dir", os.fspath(self.run_dir))
        if self.residual is not None:
            object.__setattr__(self, "residual", float(self.residual))

    def values(self, tasks: Sequence[str]) -> tuple[float, ...]:
        """The metrics in ``tasks`` order, NaN where a task is missing."""
        return tuple(math.nan if self.metrics.get(t) is None else float(self.metrics[t]) for t in tasks)


def mark_dominated(rows: Sequence[FrontRow], tasks: Sequence[str],
                   directions: Sequence[str] | Mapping[str, str]) -> list[FrontRow]:
    """Copies of ``rows`` with ``dominated`` set within each method's own rows (a row with a
    missing or non-finite metric is dominated)."""
    tasks = _check_tasks(tasks)
    found = directions_for(tasks, directions)
    marked = list(rows)
    for method in dict.fromkeys(row.method for row in marked):
        index = [i for i, row in enumerate(marked) if row.method == method]
        keep = non_dominated([marked[i].values(tasks) for i in index], found)
        for i, front in zip(index, keep):
            marked[i] = replace(marked[i], dominated=not front)
    return marked


def write_front_csv(path: str | os.PathLike[str], rows: Sequence[FrontRow], tasks: Sequence[str],
                    directions: Sequence[str] | Mapping[str, str]) -> list[FrontRow]:
    """Write the rows (dominance per method) atomically to ``path``; returns the marked rows."""
    tasks = _check_tasks(tasks)
    found = directions_for(tasks, directions)
    marked = mark_dominated(rows, tasks, found)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_FIXED_HEAD, *(f"{t} ({d})" for t, d in zip(tasks, found)), *_FIXED_TAIL])
    for row in marked:
        writer.writerow([
            row.method,
            format_preference(row.preference, digits=12),
            *(repr(v) for v in row.values(tasks)),
            "" if row.residual is None else repr(float(row.residual)),
            "true" if row.dominated else "false",
            str(row.run_dir),
        ])
    atomic_write_text(path, buffer.getvalue())
    return marked


def read_front_tasks(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The tasks and their directions named in the CSV's header."""
    return _parse_header(_read(path)[0], str(path))


def read_front_csv(path: str | os.PathLike[str]) -> list[FrontRow]:
    """The rows :func:`write_front_csv` wrote (InputError naming the file, row and column if not)."""
    table = _read(path)
    where = str(path)
    tasks, _ = _parse_header(table[0], where)
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        if len(cells) != len(table[0]):
            raise InputError(f"expected {len(table[0])} cells, got {len(cells)}", file=where, row=number)
        method, preference, *middle = cells
        metrics, (residual, dominated, run_dir) = middle[: len(tasks)], middle[len(tasks):]
        if dominated not in ("true", "false"):
            raise InputError(f"expected true or false, got {dominated!r}", file=where, column="dominated", row=number)
        try:
            parsed = parse_preference(preference)
        except ValueError as exc:
            raise InputError(str(exc), file=where, column="preference", row=number) from None
        rows.append(FrontRow(
            method=method,
            preference=parsed,
            metrics={t: _float(v, where, f"{t}", number) for t, v in zip(tasks, metrics)},
            residual=None if residual == "" else _float(residual, where, "residual", number),
            run_dir=run_dir,
            dominated=dominated == "true",
        ))
    return rows


def _read(path: str | os.PathLike[str]) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            table = list(csv.reader(f))
    except OSError as exc:
        raise InputError(f"cannot read the front: {exc.strerror or exc}", file=str(path)) from exc
    if not table:
        raise InputError("empty file, expected a header row", file=str(path))
    return table


def _parse_header(header: list[str], where: str) -> tuple[list[str], list[str]]:
    head, middle, tail = header[:2], header[2:-3], header[-3:]
    if len(header) < 6 or tuple(head) != _FIXED_HEAD or tuple(tail) != _FIXED_TAIL:
        raise InputError(f"header must be {','.join(_FIXED_HEAD)},<task> (max|min)...,{','.join(_FIXED_TAIL)}; "
                         f"got {','.join(header)}", file=where, row=1)
    tasks, directions = [], []
    for column in middle:
        match = _TASK_COLUMN.match(column)
        if match is None:
            raise InputError("a task column must be titled '<task> (max)' or '<task> (min)'",
                             file=where, column=column, row=1)
        tasks.append(match["task"])
        directions.append(match["direction"])
    return tasks, directions


def _float(text: str, where: str, column: str, row: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"expected a number, got {text!r}", file=where, column=column, row=row) from None


def _check_tasks(tasks: Sequence[str]) -> list[str]:
    if isinstance(tasks, str) or not all(isinstance(t, str) and t for t in tasks):
        raise ValueError(f"tasks must be a sequence of non-empty task names, got {tasks!r}")
    if not tasks:
        raise ValueError("tasks must name at least one task")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be distinct, got {list(tasks)}")
    return list(tasks)
