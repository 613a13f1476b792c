"""Dates in the configuration, and the range of dates a date split expects (SPEC §3).

A date split cuts by the distinct dates present, so a few rows with a wrong date (a year 2030 typo)
would silently become the test split. ``data.split.date_range`` ([first, last], inclusive; a preset
fills the published span: KuaiRand 2022-04-08 .. 2022-05-08; ``[]`` turns the check off) names the
dates the data should have. Rows outside it are refused with an error naming the first such row
(``data.out_of_range: error``, the default), or dropped before the split, counted in the report and
logged (``data.out_of_range: drop``). Random splits use no dates and no range.
"""

from __future__ import annotations

import datetime
import logging
from typing import Callable

import polars as pl

from ..errors import InputError
from .config import DataConfig, SplitConfig
from .schema import Where
from .shown import shown

log = logging.getLogger(__name__)

OUT_OF_RANGE = ("error", "drop")
Locate = Callable[[int], "tuple[Where, int]"]  # row of the loaded frame -> (its file, its row there)


def parse_date(value: object, key: str) -> int | None:
    """``20220506``, ``'20220506'`` or ``'2022-05-06'`` -> 20220506; None for an empty value; an
    InputError naming ``key`` for anything that is not a calendar day."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    digits = text.replace("-", "") if len(text) == 10 and text[4] == text[7] == "-" else text
    try:
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError
        datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise InputError(f"expected a calendar date YYYYMMDD or YYYY-MM-DD, got {shown(value)}", key=key) from None
    return int(digits)


def date_range(cfg: SplitConfig) -> tuple[int, int] | None:
    """``split.date_range`` as (first, last) YYYYMMDD integers; None when unset or ``[]``."""
    key = "data.split.date_range"
    if not cfg.date_range:
        return None
    if not isinstance(cfg.date_range, (list, tuple)) or len(cfg.date_range) != 2:
        raise InputError(f"expected [first, last] (two dates), got {shown(cfg.date_range)}", key=key)
    first, last = (parse_date(v, f"{key}[{i}]") for i, v in enumerate(cfg.date_range))
    if first is None or last is None:
        raise InputError(f"expected [first, last] (two dates), got {shown(cfg.date_range)}", key=key)
    if first > last:
        raise InputError(f"the first date {first} comes after the last {last}", key=key)
    return first, last


def restrict_to_range(frame: pl.DataFrame, cfg: DataConfig, locate: Locate) -> tuple[pl.DataFrame, dict]:
    """``frame`` without rows dated outside ``cfg.split.date_range`` (mode ``drop``), or an InputError
    naming the first of them (mode ``error``); and the report's ``date_range`` /
    ``dropped_out_of_range``. Rows without a date are left to the split (it names them)."""
    span = date_range(cfg.split) if cfg.split.kind == "date" else None
    column = cfg.split.column
    if span is None or column not in frame.columns or not frame.schema[column].is_integer():
        return frame, {}
    info = {"date_range": list(span), "dropped_out_of_range": 0}
    dates = frame.get_column(column)
    outside = dates.is_not_null() & ~dates.is_between(*span)
    count = int(outside.sum())
    if count == 0:
        return frame, info
    if cfg.out_of_range != "drop":
        index = int(outside.arg_max())
        where, row = locate(index)
        raise where.row_error(
            column, row,
            f"date {dates[index]} is outside the expected range {span[0]}..{span[1]} "
            f"({count:,} of {frame.height:,} rows are)",
            hint="set data.split.date_range to the dates the data covers, or data.out_of_range: drop "
                 "to drop such rows before the split",
        )
    log.warning("dropped %d of %d rows dated outside %d..%d (data.out_of_range: drop)",
                count, frame.height, *span)
    info["dropped_out_of_range"] = count
    return frame.filter(~outside), info
