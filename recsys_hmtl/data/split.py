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


class Cut:
    """One split kind, usable on all rows at once (:func:`assign_splits`) or chunk by chunk in the
    order of the concatenated logs: :meth:`check` each chunk (and note its dates), :meth:`fit` once
    on what all chunks showed, :meth:`codes` each chunk, :meth:`finish` with the rows per split."""

    def __init__(self, cfg: SplitConfig, source: str | None) -> None:
        self.cfg, self.source = cfg, source

    def check(self, frame: pl.DataFrame, start: int) -> pl.DataFrame | None:
        """Check a chunk whose first row is row ``start`` of the logs; what :meth:`fit` needs of it."""
        return None

    def fit(self, seen: list[pl.DataFrame], rows: int) -> None:
        """Fix the cut from the :meth:`check` results of every chunk and the number of rows."""

    def codes(self, frame: pl.DataFrame, start: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, counts: np.ndarray, rows: int) -> dict:  # pragma: no cover - abstract
        """The description of the cut for reports; an InputError if a split is empty."""
        raise NotImplementedError


SPLIT_KINDS: dict[str, type[Cut]] = {}


def split_kind(name: str) -> Callable[[type[Cut]], type[Cut]]:
    def deco(cls: type[Cut]) -> type[Cut]:
        SPLIT_KINDS[name] = cls
        return cls

    return deco


def split_cut(cfg: SplitConfig, source: str | None = None) -> Cut:
    """The :class:`Cut` of ``cfg.kind``; ``source`` names the input files in error messages."""
    if cfg.kind not in SPLIT_KINDS:
        raise InputError(f"unknown split kind '{cfg.kind}'", key="data.split.kind",
                         hint=did_you_mean(cfg.kind, SPLIT_KINDS))
    return SPLIT_KINDS[cfg.kind](cfg, source)


def assign_splits(frame: pl.DataFrame, cfg: SplitConfig, *, source: str | None = None) -> tuple[pl.Series, dict]:
    """Split code of every row (UInt8: 0 train, 1 val, 2 test) and a description of the cut for reports.

    ``source`` names the input files in error messages."""
    cut = split_cut(cfg, source)
    seen = cut.check(frame, 0)
    cut.fit([] if seen is None else [seen], frame.height)
    codes = cut.codes(frame, 0)
    counts = np.bincount(codes, minlength=len(SPLITS))
    info = cut.finish(counts, frame.height)
    return pl.Series("split", codes, dtype=pl.UInt8), info


def split_rows(counts: np.ndarray) -> dict[str, int]:
    return {name: int(n) for name, n in zip(SPLITS, counts)}


@split_kind("date")
class DateCut(Cut):
    def check(self, frame: pl.DataFrame, start: int) -> pl.DataFrame:
        """The chunk's rows per date (the date column checked: integers, one on every row)."""
        cfg, source = self.cfg, self.source
        if cfg.column not in frame.columns:
            raise InputError(f"no date column '{cfg.column}' for the date split", file=source, column=cfg.column,
                             key="data.split.column", hint=did_you_mean(cfg.column, frame.columns))
        dates = frame.get_column(cfg.column)
        if not dates.dtype.is_integer():
            raise InputError(f"the date split needs YYYYMMDD integers, the column holds {dates.dtype}",
                             file=source, column=cfg.column)
        if dates.null_count():
            row = start + int(dates.is_null().arg_max()) + 1
            raise InputError(f"row {row} of the concatenated logs has no date; the date split needs one on "
                             "every row", file=source, column=cfg.column, row=row)
        return dates.cast(pl.Int64).value_counts(name="rows")

    def fit(self, seen: list[pl.DataFrame], rows: int) -> None:
        counts = pl.concat(seen).group_by(self.cfg.column).agg(pl.col("rows").sum()).sort(self.cfg.column)
        self.per_date = [[int(d), int(n)] for d, n in counts.iter_rows()]
        self.val_start, self.test_start = date_cuts(counts.get_column(self.cfg.column), self.cfg, self.source)

    def codes(self, frame: pl.DataFrame, start: int) -> np.ndarray:
        values = frame.get_column(self.cfg.column).to_numpy()
        return (values >= self.val_start).astype(np.uint8) + (values >= self.test_start).astype(np.uint8)

    def finish(self, counts: np.ndarray, rows: int) -> dict:
        cfg, val_start, test_start = self.cfg, self.val_start, self.test_start
        info = {"kind": "date", "column": cfg.column, "val_start": val_start, "test_start": test_start,
                "first_date": self.per_date[0][0], "last_date": self.per_date[-1][0],
                "rows_per_date": self.per_date}
        for code, name in enumerate(SPLITS):
            if counts[code] == 0:
                ranges = (f"train: {cfg.column} < {val_start}; val: {val_start} <= {cfg.column} < {test_start}; "
                          f"test: {cfg.column} >= {test_start}")
                raise InputError(
                    f"empty split '{name}' after the date cut ({ranges}); the data has dates "
                    f"{info['first_date']}..{info['last_date']}",
                    file=self.source, column=cfg.column, key="data.split",
                    hint="set data.split.val_start / test_start (YYYYMMDD) inside the data's dates, "
                         "or val_days / test_days",
                )
        info["rows"] = split_rows(counts)
        return info


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
class RandomCut(Cut):
    def __init__(self, cfg: SplitConfig, source: str | None) -> None:
        super().__init__(cfg, source)
        self.fractions = [float(f) for f in cfg.fractions]
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise InputError(f"expected three non-negative fractions (train, val, test) summing to 1, got "
                             f"{cfg.fractions}", key="data.split.fractions")

    def codes(self, frame: pl.DataFrame, start: int) -> np.ndarray:
        u = uniform_hash(frame.height, self.cfg.seed, start=start)
        return np.searchsorted(np.cumsum(self.fractions)[:2], u, side="right").astype(np.uint8)

    def finish(self, counts: np.ndarray, rows: int) -> dict:
        for code, name in enumerate(SPLITS):
            if counts[code] == 0:
                raise InputError(
                    f"empty split '{name}' after the random split of {rows} rows (fractions "
                    f"{'/'.join(f'{f:g}' for f in self.fractions)}, seed {self.cfg.seed})",
                    file=self.source, key="data.split.fractions",
                    hint="give that split a larger fraction or use more rows",
                )
        return {"kind": "random", "fractions": self.fractions, "seed": self.cfg.seed, "rows": split_rows(counts)}


def uniform_hash(n: int, seed: int, start: int = 0) -> np.ndarray:
    """``u[i]`` in [0, 1) from SplitMix64 of (row position ``start + i``, ``seed``): reproducible everywhere."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = np.arange(start, start + n, dtype=np.uint64) * golden
        z += np.uint64(seed % 2**64) * np.uint64(0xD1B54A32D192ED03)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
