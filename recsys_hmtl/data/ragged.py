"""CSV rows with more fields than the header (or than ``data.columns``) are refused, not cut.

Polars raises for such a row only when a scan reads every column; a scan that selects some columns
(every read here) silently ignores the fields beyond the schema, so a row with a stray separator
would lose its tail unnoticed. The reader therefore adds one text column, :data:`EXTRA`, after the
expected ones and scans with ``truncate_ragged_lines=True``: on a clean file it is null on every row
and costs nothing measurable; a value in it marks the first row with too many fields. Only then is
that row read again with Python's csv module (:func:`ragged_row_error`) to count its fields.

A row whose only extra field is empty (a line ending in a separator) leaves :data:`EXTRA` null and
cannot be told from a complete row on this fast path; every other extra field is refused.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import sys
from pathlib import Path
from typing import Iterator

import polars as pl

from ..errors import InputError
from .schema import Where

EXTRA = "__recsys_hmtl_extra_field"
HINT = "a field holding the separator must be quoted; check data.separator and the file's columns"


def with_extra(schema: dict[str, pl.DataType]) -> dict[str, pl.DataType]:
    """``schema`` (the expected columns) plus the :data:`EXTRA` sentinel column."""
    return {**schema, EXTRA: pl.String()}


def drop_extra(frame: pl.DataFrame, where: Where, expected: int, separator: str, *, named: str) -> pl.DataFrame:
    """``frame`` without :data:`EXTRA`; an InputError for the first row where it holds a value.

    ``expected`` is the number of fields a row should have, ``named`` says where they are named
    ("the header", "data.columns")."""
    extra = frame.get_column(EXTRA)
    if extra.null_count() == frame.height:
        return frame.drop(EXTRA)
    raise ragged_row_error(where, int(extra.is_not_null().arg_max()), expected, separator, named)


def ragged_row_error(where: Where, index: int, expected: int, separator: str, named: str) -> InputError:
    """The error for data row ``index`` (0-based), which has more than ``expected`` fields."""
    found = _count_fields(where.path, index + where.offset, bool(where.has_header), separator)
    count = f"{found}" if found is not None and found > expected else f"more than {expected}"
    return where.row_error(None, index, f"{count} fields, expected {expected} ({named})", hint=HINT)


@contextlib.contextmanager
def large_csv_fields() -> Iterator[None]:
    """Let Python's csv module read fields of any size (its default limit is 128 KiB)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(limit)


def _count_fields(path: Path, index: int, has_header: bool, separator: str) -> int | None:
    """The number of fields of data row ``index`` (None when it cannot be read back)."""
    try:
        with large_csv_fields(), open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.reader(fh, delimiter=separator)
            record = next(itertools.islice(reader, index + int(has_header), None), None)
    except (OSError, csv.Error):
        return None
    return None if record is None else len(record)
