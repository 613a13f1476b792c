"""Train / validation / test assignment of the loaded rows (SPEC §3).

``date``: rows on or after ``test_start`` are test, rows on or after ``val_start`` (and before
``test_start``) validation, earlier rows train. Cut dates left empty are derived from the distinct
dates present: the last ``test_days`` dates are test and the ``val_days`` before them validation.
Rows dated outside ``date_range`` were refused or dropped before (:mod:`~recsys_hmtl.data.dates`);
the description of the cut counts the rows of every date (``rows_per_date``) for the summary.

``random``: each row draws ``u`` in [0, 1) from a hash of (its position in the concatenated logs,
``seed``) and falls in train / val / test by the cumulative ``fractions``. The hash (SplitMix64,
computed with numpy) is the same on every machine and version, needs no sort and no permutation, and
depends neither on the features nor on the tasks configured, so changing them keeps the split.
Duplicated rows are split like any other rows (as in a row permutation).

Every split must be non-empty; otherwise an :class:`~recsys_hmtl.errors.InputError` names the split,
the cut and the column.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import polars as pl

from ..errors import InputError, did_you_mean
from .config import SplitConfig
from .dates import parse_date

SPLITS = ("train", "val", "test")  # split codes 0, 1, 2
SplitFunction = Callable[[pl.DataFrame, SplitConfig, "str | None"], "tuple[np.ndarray, dict]"]
SPLIT_KINDS: dict[str, SplitFunction] = {}


def split_kind(name: str) -> Callable[[SplitFunction], SplitFunction]:
    def deco(fn: SplitFunction) -> SplitFunction:
        SPLIT_KINDS[name] = fn
        return fn

    return deco


def assign_splits(frame: pl.DataFrame, cfg: SplitConfig, *, source: str | None = None) -> tuple[pl.Series, dict]:
    """Split code of every row (UInt8: 0 train, 1 val, 2 test) and a description of the cut for reports.

    ``source`` names the input files in error messages."""
    if cfg.kind not in SPLIT_KINDS:
        raise InputError(f"unknown split kind '{cfg.kind}'", key="data.split.kind",
                         hint=did_you_mean(cfg.kind, SPLIT_KINDS))
    codes, info = SPLIT_KINDS[cfg.kind](frame, cfg, source)
    rows = np.bincount(codes, minlength=len(SPLITS))
    info["rows"] = {name: int(n) for name, n in zip(SPLITS, rows)}
    return pl.Series("split", codes, dtype=pl.UInt8), info


@split_kind("date")
def _by_date(frame: pl.DataFrame, cfg: SplitConfig, source: str | None) -> tuple[np.ndarray, dict]:
    if cfg.column not in frame.columns:
        raise InputError(f"no date column '{cfg.column}' for the date split", file=source, column=cfg.column,
                         key="data.split.column", hint=did_you_mean(cfg.column, frame.columns))
    dates = frame.get_column(cfg.column)
    if not dates.dtype.is_integer():
        raise InputError(f"the date split needs YYYYMMDD integers, the column holds {dates.dtype}",
                         file=source, column=cfg.column)
    if dates.null_count():
        row = int(dates.is_null().arg_max()) + 1
        raise InputError(f"row {row} of the concatenated logs has no date; the date split needs one on every row",
                         file=source, column=cfg.column, row=row)
    val_start, test_start = date_cuts(dates, cfg, source)
    values = dates.to_numpy()
    codes = (values >= val_start).astype(np.uint8) + (values >= test_start).astype(np.uint8)
    info = {"kind": "date", "column": cfg.column, "val_start": val_start, "test_start": test_start,
            "first_date": int(values.min()), "last_date": int(values.max()), "rows_per_date": rows_per_date(dates)}
    counts = np.bincount(codes, minlength=len(SPLITS))
    for code, name in enumerate(SPLITS):
        if counts[code] == 0:
            ranges = (f"train: {cfg.column} < {val_start}; val: {val_start} <= {cfg.column} < {test_start}; "
                      f"test: {cfg.column} >= {test_start}")
            raise InputError(
                f"empty split '{name}' after the date cut ({ranges}); the data has dates "
                f"{info['first_date']}..{info['last_date']}",
                file=source, column=cfg.column, key="data.split",
                hint="set data.split.val_start / test_start (YYYYMMDD) inside the data's dates, "
                     "or val_days / test_days",
            )
    return codes, info


def rows_per_date(dates: pl.Series) -> list[list[int]]:
    """``[[date, rows], ...]`` in date order (a list: JSON keeps it as it is)."""
    counts = dates.value_counts(name="rows").sort(dates.name)
    return [[int(d), int(n)] for d, n in counts.iter_rows()]


def date_cuts(dates: pl.Series, cfg: SplitConfig, source: str | None = None) -> tuple[int, int]:
    """(val_start, test_start) as YYYYMMDD integers: the configured ones, else derived from the dates."""
    for key, days in (("test_days", cfg.test_days), ("val_days", cfg.val_days)):
        if days < 1:
            raise InputError(f"must be at least 1, got {days}", key=f"data.split.{key}")
    distinct = dates.unique().sort().to_numpy()
    test_start = parse_date(cfg.test_start, "data.split.test_start")
    val_start = parse_date(cfg.val_start, "data.split.val_start")
    if test_start is None:
        if val_start is not None:  # the test days follow the validation start
            after = distinct[distinct >= val_start]
            test_start = int(after[-cfg.test_days]) if len(after) > cfg.test_days else None
        elif len(distinct) >= cfg.test_days:
            test_start = int(distinct[-cfg.test_days])
    if test_start is not None and val_start is None:
        before = distinct[distinct < test_start]
        val_start = int(before[-cfg.val_days]) if len(before) > cfg.val_days else None
    if val_start is None or test_start is None:
        need = cfg.test_days + cfg.val_days + 1
        raise InputError(
            f"the date split needs at least {need} distinct dates (train, {cfg.val_days} validation, "
            f"{cfg.test_days} test), the data has {len(distinct)}"
            + (f" ({int(distinct[0])}..{int(distinct[-1])})" if len(distinct) else ""),
            file=source, column=cfg.column, key="data.split",
            hint="set data.split.val_start and test_start, or fewer val_days / test_days",
        )
    if val_start >= test_start:
        raise InputError(f"val_start {val_start} must come before test_start {test_start}", key="data.split")
    return val_start, test_start


@split_kind("random")
def _at_random(frame: pl.DataFrame, cfg: SplitConfig, source: str | None) -> tuple[np.ndarray, dict]:
    fractions = [float(f) for f in cfg.fractions]
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"expected three non-negative fractions (train, val, test) summing to 1, got "
                         f"{cfg.fractions}", key="data.split.fractions")
    u = uniform_hash(frame.height, cfg.seed)
    codes = np.searchsorted(np.cumsum(fractions)[:2], u, side="right").astype(np.uint8)
    counts = np.bincount(codes, minlength=len(SPLITS))
    for code, name in enumerate(SPLITS):
        if counts[code] == 0:
            raise InputError(
                f"empty split '{name}' after the random split of {frame.height} rows (fractions "
                f"{'/'.join(f'{f:g}' for f in fractions)}, seed {cfg.seed})",
                file=source, key="data.split.fractions", hint="give that split a larger fraction or use more rows",
            )
    return codes, {"kind": "random", "fractions": fractions, "seed": cfg.seed}


def uniform_hash(n: int, seed: int) -> np.ndarray:
    """``u[i]`` in [0, 1) from SplitMix64 of (row position ``i``, ``seed``): reproducible everywhere."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) * golden + np.uint64(seed % 2**64) * np.uint64(0xD1B54A32D192ED03)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
