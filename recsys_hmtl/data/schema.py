"""Expected columns and types of the known files, and the value checks that turn bad input into
:class:`~recsys_hmtl.errors.InputError` naming the file, the column and the first bad row.

Every column the loader reads has a :class:`Kind`: the type it is parsed as and the type it ends as.
Known files (DATASETS.md) declare their kinds in a :class:`FileSchema`; other columns get one from
their role in the config (a label, a dense feature, an id of unknown type).

Row numbers in messages are 1-based data rows, the header excluded; CSV messages add the line of the
file (``row 17 (line 18 of the file)`` when there is a header), assuming one record per line. Values
are shown cut to about 200 characters (:mod:`~recsys_hmtl.data.shown`); other lines of a file never.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Mapping

import polars as pl

from ..errors import InputError
from .shown import clipped, shown


class Kind(str, Enum):
    INT = "int"  # Int64
    LABEL = "label"  # Int8 in {0, 1}, never missing
    FLOAT = "float"  # Float64 (NaN read as missing)
    CODE = "code"  # an integer code a file may write as a float ("9.0") or leave blank -> Int64
    STR = "str"  # String, as written
    TEXT = "text"  # an id read as text: stripped, NA spellings missing (AUTO's String form)
    AUTO = "auto"  # an id of unknown type: Int64 if every value is an integer, else String
    DATE = "date"  # a day as YYYYMMDD Int64 (from integers, "YYYY-MM-DD" strings or dates)
    DAY = "day"  # the same, in a file that writes YYYYMMDD integers (read as Int64 on the fast path)


# The dtype a CSV column of each kind is parsed as (the fast path; a parse failure falls back to
# reading the columns as text and locating the first bad value with :func:`coerce`).
CSV_DTYPE: dict[Kind, pl.DataType] = {
    Kind.INT: pl.Int64(), Kind.LABEL: pl.Int8(), Kind.FLOAT: pl.Float64(), Kind.CODE: pl.Float64(),
    Kind.STR: pl.String(), Kind.TEXT: pl.String(), Kind.AUTO: pl.String(), Kind.DATE: pl.String(), Kind.DAY: pl.Int64(),
}

# Text that means "no value" wherever an integer or a number is expected (pandas writes NaN).
NA_TEXT = ["", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A", "\\N"]


@dataclass(frozen=True)
class FileSchema:
    """Kinds of the columns of one known file (columns not listed get a kind from their role)."""

    kinds: Mapping[str, Kind] = field(default_factory=dict)
    null_values: tuple[str, ...] = ()  # extra spellings of a missing value, e.g. QK-Video's \N


# --- KuaiRand (1K, Pure, 27K: same columns) -------------------------------------------------------
KUAIRAND_LOG_COLUMNS = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
    "comment_stay_time", "is_profile_enter", "is_rand", "tab",
)
KUAIRAND_USER_COLUMNS = (
    "user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
    "follow_user_num", "follow_user_num_range", "fans_user_num", "fans_user_num_range", "friend_user_num",
    "friend_user_num_range", "register_days", "register_days_range", *(f"onehot_feat{k}" for k in range(18)),
)
KUAIRAND_VIDEO_COLUMNS = (
    "video_id", "author_id", "video_type", "upload_dt", "upload_type", "visible_status", "video_duration",
    "server_width", "server_height", "music_id", "music_type", "tag",
)
KUAIRAND_LOG = FileSchema({**{c: Kind.INT for c in KUAIRAND_LOG_COLUMNS}, "date": Kind.DAY})
# The Pure files write codes as floats with blanks ("4.0", ""), ranges as quoted strings ("[100,1k)").
KUAIRAND_USER = FileSchema({
    "user_id": Kind.INT, "user_active_degree": Kind.STR,
    **{c: Kind.STR for c in KUAIRAND_USER_COLUMNS if c.endswith("_range")},
    **{c: Kind.CODE for c in KUAIRAND_USER_COLUMNS
       if c not in ("user_id", "user_active_degree") and not c.endswith("_range")},
})
KUAIRAND_VIDEO = FileSchema({
    "video_id": Kind.INT, "author_id": Kind.CODE, "video_type": Kind.STR, "upload_dt": Kind.STR,
    "upload_type": Kind.STR, "visible_status": Kind.CODE, "video_duration": Kind.FLOAT,
    "server_width": Kind.CODE, "server_height": Kind.CODE, "music_id": Kind.CODE, "music_type": Kind.CODE,
    "tag": Kind.STR,
})
KUAIRAND_STATISTIC = FileSchema({"video_id": Kind.INT})  # every other column is a float counter

# --- TikTok (ICME 2019 track files: tab-separated, no header) -------------------------------------
TIKTOK_COLUMNS = (
    "uid", "user_city", "item_id", "author_id", "item_city", "channel", "finish", "like", "music_id",
    "device_id", "create_time", "video_duration",
)
TIKTOK = FileSchema({c: Kind.INT for c in TIKTOK_COLUMNS})

# --- QK-Video (Tenrec) ----------------------------------------------------------------------------
QK_VIDEO_COLUMNS = (
    "user_id", "item_id", "click", "follow", "like", "share", "video_category", "watching_times", "gender",
    "age", *(f"hist_{k}" for k in range(1, 11)),
)
QK_VIDEO = FileSchema({c: Kind.INT for c in QK_VIDEO_COLUMNS}, null_values=("\\N",))


# --- value checks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Where:
    """The file being checked, for row numbers in messages; ``has_header`` is None for Parquet."""

    path: Path
    has_header: bool | None
    offset: int = 0  # the file's row at index 0 (a chunk read from the middle of the file)

    def row_error(self, column: str | None, index: int, message: str, hint: str | None = None) -> InputError:
        """An error at data row ``index`` (0-based, from ``offset``) of this file."""
        row = index + self.offset + 1
        if self.has_header is None:
            at = f"row {row} (1-based)"
        else:
            at = f"row {row} (line {row + int(self.has_header)} of the file)"
        err = InputError(f"{at}: {message}", file=str(self.path), column=column, hint=hint)
        err.row = row
        return err


Problem = tuple[int, str]  # (0-based index of the first bad row, message)
Coercer = Callable[[pl.Series], "tuple[pl.Series, Problem | None]"]
COERCERS: dict[Kind, Coercer] = {}


def coercer(kind: Kind) -> Callable[[Coercer], Coercer]:
    def deco(fn: Coercer) -> Coercer:
        COERCERS[kind] = fn
        return fn

    return deco


def coerce(frame: pl.DataFrame, kinds: Mapping[str, Kind], keys: set[str], where: Where) -> pl.DataFrame:
    """Give every column of ``kinds`` its final type; raise for the earliest bad value (a value of the
    wrong type, a label outside {0, 1}, a missing id in a ``keys`` column)."""
    problems: list[tuple[int, int, str, str]] = []
    columns = []
    for order, (name, kind) in enumerate(kinds.items()):
        series, problem = COERCERS[kind](frame.get_column(name))
        if problem is None and name in keys:
            problem = _first(series.is_null(), series, lambda v: "missing id (empty or NaN)")
        if problem is not None:
            problems.append((problem[0], order, name, problem[1]))
        columns.append(series.alias(name))
    if problems:
        index, _, name, message = min(problems)
        raise where.row_error(name, index, message)
    return frame.with_columns(columns)


def _first(mask: pl.Series, values: pl.Series, describe: Callable[[object], str]) -> Problem | None:
    mask = mask.fill_null(False)
    if not mask.any():
        return None
    index = int(mask.arg_max())
    return index, describe(values[index])


def _text(series: pl.Series) -> pl.Series:
    """Stripped text with the NA spellings as missing."""
    text = series.cast(pl.String).str.strip_chars()
    return text.zip_with(~text.is_in(NA_TEXT).fill_null(False), pl.Series(text.name, [None], pl.String))


def _integers(series: pl.Series, what: str) -> tuple[pl.Series, Problem | None]:
    """Int64 from integers, integral floats or integer text."""
    dtype = series.dtype
    if dtype.is_integer() or dtype == pl.Boolean:
        return series.cast(pl.Int64), None
    if dtype.is_float():
        values = series.fill_nan(None)
        bad = values.is_not_null() & ((values != values.floor()) | (values.abs() >= 2.0**63))
        problem = _first(bad, series, lambda v: f"{shown(v)} is not {what}")
        return (values.cast(pl.Int64, strict=False) if problem is None else series), problem
    if dtype == pl.String:
        text = _text(series)
        ints = text.cast(pl.Int64, strict=False)
        unparsed = text.is_not_null() & ints.is_null()
        if unparsed.any():  # integral floats written as text ("9.0")
            floats = text.cast(pl.Float64, strict=False)
            ints = ints.zip_with(ints.is_not_null(), floats.cast(pl.Int64, strict=False))
            bad = text.is_not_null() & (floats.is_null() | (floats != floats.floor()) | ints.is_null())
            return ints, _first(bad, series, lambda v: f"{shown(v)} is not {what}")
        return ints, None
    return series, (0, f"holds {dtype} values, not {what}")


@coercer(Kind.INT)
def _to_int(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    return _integers(series, "an integer")


@coercer(Kind.CODE)
def _to_code(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    return _integers(series, "an integer code")


@coercer(Kind.LABEL)
def _to_label(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    if series.dtype == pl.Int8:  # the CSV fast path
        ints, problem = series, None
    else:
        ints, problem = _integers(series, "a label 0 or 1")
    if problem is not None:
        return series, problem
    problem = _first(ints.is_null(), series, lambda v: "the label is missing (empty or NaN)")
    outside = _first(~ints.is_in([0, 1]), ints, lambda v: f"label {shown(v)} is outside {{0, 1}}")
    problem = min((p for p in (problem, outside) if p is not None), default=None)
    return (ints.cast(pl.Int8) if problem is None else series), problem


@coercer(Kind.FLOAT)
def _to_float(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    dtype = series.dtype
    if dtype.is_numeric() or dtype == pl.Boolean:
        return series.cast(pl.Float64).fill_nan(None), None
    if dtype == pl.String:
        text = _text(series)
        floats = text.cast(pl.Float64, strict=False)
        problem = _first(text.is_not_null() & floats.is_null(), series, lambda v: f"{shown(v)} is not a number")
        return floats.fill_nan(None), problem
    return series, (0, f"holds {dtype} values, not numbers")


@coercer(Kind.STR)
def _to_str(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    return series.cast(pl.String), None


@coercer(Kind.TEXT)
def _to_text(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    return _text(series), None


@coercer(Kind.AUTO)
def _to_auto(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    ints, problem = _integers(series, "an integer")
    if problem is None:
        return ints, None
    return _text(series), None


@coercer(Kind.DATE)
@coercer(Kind.DAY)
def _to_date(series: pl.Series) -> tuple[pl.Series, Problem | None]:
    """YYYYMMDD Int64 from dates, integers or text (YYYYMMDD, YYYY-MM-DD); real calendar days only."""
    if series.dtype in (pl.Date, pl.Datetime) or isinstance(series.dtype, pl.Datetime):
        return series.dt.strftime("%Y%m%d").cast(pl.Int64), None
    what = "a calendar date (YYYYMMDD or YYYY-MM-DD)"
    if series.dtype == pl.String:
        text = _text(series)
        ints = text.cast(pl.Int64, strict=False)
        if ints.null_count() > text.null_count():  # some YYYY-MM-DD (or bad) text
            days = text.str.to_date("%Y-%m-%d", strict=False).dt.strftime("%Y%m%d").cast(pl.Int64)
            ints = ints.zip_with(ints.is_not_null(), days)
            problem = _first(text.is_not_null() & ints.is_null(), text, lambda v: f"{shown(v)} is not {what}")
            if problem is not None:
                return series, problem
        series = ints
    ints, problem = _integers(series, what)
    if problem is not None:
        return series, problem
    bad = ints.is_not_null() & ~ints.is_in(_calendar_days(ints).to_list())
    return ints, _first(bad, ints, lambda v: f"{shown(v)} is not {what}")


def _calendar_days(ints: pl.Series) -> pl.Series:
    """The distinct values of ``ints`` that are real days YYYYMMDD of the years 1900..2999 (not
    20220231, nor 20230229): checked once per distinct value, a log has few."""
    distinct = ints.drop_nulls().unique()
    days = distinct.cast(pl.String).str.to_date("%Y%m%d", strict=False)
    return distinct.filter(days.is_not_null() & (distinct // 10000).is_between(1900, 2999))


# --- header checks --------------------------------------------------------------------------------
def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_header(path: Path, names: list[str], dataset: str, separator: str) -> None:
    """A file that should start with a header: line 1 must not be data."""
    if names and all(_numeric(n.strip()) for n in names):
        raise InputError(
            f"line 1 is data ({_fields(names, separator)}), not a header; {dataset} files start with a "
            "header line",
            file=str(path),
            hint="set data.has_header: false and list data.columns if this file has no header",
        )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"the header repeats column names: {clipped(', '.join(map(shown, duplicated)))}",
                         file=str(path))


def check_no_header(path: Path, first: list[str], columns: list[str], aliases: Mapping[str, str],
                    dataset: str, separator: str, *, numeric: bool) -> None:
    """A header-less file: line 1 must have len(columns) fields and must not look like names (one of
    ``columns``, or, when the file is known to hold numbers (``numeric``), nothing but words)."""
    known = {c.lower() for c in [*columns, *aliases]}
    words = [f.strip() for f in first if f.strip()]
    looks_named = any(w.lower() in known for w in words) or (
        numeric and bool(words) and all(w.isidentifier() for w in words))
    if looks_named:
        raise InputError(
            f"line 1 looks like a header ({_fields(first, separator)}), but {dataset} files have no header",
            file=str(path),
            hint="remove that line, or set data.has_header: true if this file is meant to have one",
        )
    if len(first) != len(columns):
        sep = {"\t": "tab", ",": "comma"}.get(separator, repr(separator))
        raise InputError(
            f"line 1 has {len(first)} {sep}-separated fields, expected {len(columns)} "
            f"({clipped(', '.join(columns))})",
            file=str(path),
            hint="check data.separator and data.columns",
        )


def _fields(fields: list[str], separator: str) -> str:
    """The first fields of line 1, for a message: at most 6, each and all cut."""
    text = separator.join(clipped(f, 40) for f in fields[:6]) + (separator + "..." if len(fields) > 6 else "")
    return shown(text)
