"""Task labels from a column and a rule (``tasks[i].positive`` / ``tasks[i].threshold``).

Without a rule the label column must hold 0/1 (checked where the file is read). With
``positive: [values]`` the column is read as text and a row is positive when its value, trimmed of
surrounding spaces, is one of the values (census-income's `` 50000+.``); with ``threshold: x`` the
column is read as numbers and a row is positive when its value is ≥ x. A missing value in a rule's
column is an error naming the file and row (a label is never guessed).
"""

from __future__ import annotations

from typing import Callable

import polars as pl

from .config import TaskConfig
from .encode import label_column


def label_role(task: TaskConfig) -> str:
    """How the label column is read (sources.py roles): 0/1, text or number."""
    if task.positive is not None:
        return "text"
    if task.threshold is not None:
        return "number"
    return "label"


def label_expression(task: TaskConfig) -> pl.Expr:
    """The Int8 label of ``task`` (encoded column :func:`~.encode.label_column`)."""
    column = pl.col(task.label_column)
    if task.positive is not None:
        values = [str(v).strip() for v in task.positive]
        label = column.cast(pl.String).str.strip_chars().is_in(values)
    elif task.threshold is not None:
        label = column >= task.threshold
    else:
        label = column
    return label.cast(pl.Int8).alias(label_column(task.name))


def check_rule_columns(frame: pl.DataFrame, tasks: list[TaskConfig], locate: Callable) -> None:
    """A missing value in the column of a rule-based label is an error at its first row."""
    for task in tasks:
        if label_role(task) == "label":
            continue
        missing = frame.get_column(task.label_column).is_null()
        if missing.any():
            index = int(missing.arg_max())
            where, row = locate(index)
            raise where.row_error(task.label_column, row,
                                  f"the label of task '{task.name}' is missing ({int(missing.sum()):,} "
                                  f"of {frame.height:,} rows are)",
                                  hint="drop such rows from the file, or give them a value")
