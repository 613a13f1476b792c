"""The rows ``predict`` scores: a CSV or Parquet file in the run's log format, read in batches.

The file is read the way training read the logs (:mod:`recsys_hmtl.data.sources`): a ``.parquet``
/ ``.pq`` file as Parquet, any other as CSV with the data set's separator and header (or its
``data.columns`` when the logs have none), the data set's column names and aliases, and every
column with the type training gave it (the log's schema, else the side table's that provided it),
checked the same way: a bad value, a missing id or a row with too many fields is an error naming
the file, the column and the row (1-based in the file). Labels and the split's date column are not
needed. Columns the file lacks are joined from the run's side tables (``data.side_tables`` under
``data.root``, e.g. KuaiRand's user and video features) as in training, so log-format rows are
enough; columns the file has win.

Id columns whose type training inferred from the data (``auto``: integers if every value is one,
else text) are read as the feature's vocabulary holds them: integers (a value that is not one can
never match: index 0, unseen), or text as written. Memory is bounded by the batch size (and the
side tables, read whole once, as training does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import polars as pl

from ...data.config import DataConfig, SplitConfig
from ...data.encode import Encoder
from ...data.presets import get_preset
from ...data.ragged import EXTRA, ragged_row_error
from ...data.schema import Kind, Where, _text, coerce
from ...data.shown import first_line
from ...data.sources import (  # the loader's own steps, so that predict reads exactly as training did
    MATCHED,
    PARQUET_SUFFIXES,
    _assign,
    _kind,
    _left_join,
    _needed,
    _read_side,
    _tables,
)
from ...errors import InputError, did_you_mean


# How an ``auto`` id column of a feature is read: as its vocabulary holds the ids.
AS_INTEGERS, AS_TEXT = "integers", "text"


@dataclass
class RawBatch:
    """One batch: ``features`` (the typed, joined columns the encoder reads) and ``ids`` (the id and
    kept columns to write beside the scores), row for row."""

    features: pl.DataFrame
    ids: pl.DataFrame


class RawRows:
    """The rows of ``path`` in batches of at most ``batch_size`` (:meth:`batches`), read for a run
    whose resolved data config is ``data`` and whose features ``encoder`` encodes. ``id_columns``
    (the data set's user and item ids) and ``keep`` (any other columns) are passed through."""

    def __init__(self, path: str | Path, data: DataConfig, encoder: Encoder, *, batch_size: int,
                 id_columns: Sequence[str], keep: Sequence[str] = ()) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("input file not found" if not self.path.exists() else "is not a file",
                             file=str(self.path), key="--input")
        self.batch_size = batch_size
        self._parts: list = []  # the run's side tables, located only when the file lacks a column
        self.data = data  # the run's: how its side tables are read
        self.preset = get_preset(data.dataset)
        # Training's logs (not this file) say which type each column had.
        self.log_schema = (self.preset.schema_for(Path(data.files[0]), log=True) if data.files
                           else self.preset.log_schema)
        fmt = "parquet" if self.path.suffix.lower() in PARQUET_SUFFIXES else "csv"
        # The run's reading options, its features, no labels and no date split.
        self.cfg = dataclasses.replace(data, files=[str(self.path.absolute())], format=fmt, sparse=list(encoder.sparse),
                                       dense=list(encoder.dense), split=SplitConfig(kind="random"))
        self.table = _tables(self.cfg, self.preset, str(self.path.absolute()), "input file", log=True)[0]
        self.names = self.table.names()  # header checks; aliases applied
        needed = _needed(self.cfg, [], self.preset)
        owner = self._owners(needed)
        self.columns = [c for c in needed if owner[c] == -1]  # read from the file
        self.kinds = {c: self._kind(c, needed[c][0], encoder) for c in self.columns}
        self.keys = {c for c in self.columns if "key" in needed[c][0]}
        self.sides = self._side_tables(needed, owner)
        self.id_columns = list(dict.fromkeys([*id_columns, *keep]))
        for column in self.id_columns:
            if column not in self.names:
                what = "a column to keep (--keep)" if column in keep and column not in id_columns else "an id column"
                raise InputError(f"no column '{column}' ({what} of the scores)", file=str(self.path), column=column,
                                 hint=did_you_mean(column, self.names))
        self.read = list(dict.fromkeys([*self.columns, *self.id_columns]))
        # Passed-through columns keep a type training fixed (the logs' schema), else the file's own.
        kinds = {c: self.kinds.get(c, self.log_schema.kinds.get(c)) for c in self.id_columns}
        self.id_kinds = {c: k for c, k in kinds.items() if isinstance(k, Kind) and k is not Kind.AUTO}

    # --- which columns, of which type --------------------------------------------------------------
    def _owners(self, needed) -> dict[str, int]:
        """Where each needed column comes from: -1 the file, i side table i (as training's loader)."""
        missing = [c for c in needed if c not in self.names]
        if not missing or not self.cfg.side_tables:
            return _assign(needed, self.path, self.names, [], [])  # names the first missing column
        try:
            self._parts = [(side, _tables(self.data, self.preset, side.file, "side table", log=False,
                                          separator=side.separator)) for side in self.cfg.side_tables]
            side_names = [parts[0].names() for _, parts in self._parts]
        except InputError as exc:
            uses = ", ".join(dict.fromkeys(needed[missing[0]][1]))
            raise InputError(f"no column '{missing[0]}' (needed by {uses}), and the run's side tables that would "
                             f"provide it cannot be read: {exc}", file=str(self.path), column=missing[0]) from None
        return _assign(needed, self.path, self.names, self._parts, side_names)

    def _side_tables(self, needed, owner) -> list[tuple[str, pl.DataFrame]]:
        """(join key, table) of each side table that provides a column the file lacks."""
        out = []
        for index in sorted({o for o in owner.values() if o >= 0}):
            side, parts = self._parts[index]
            columns = [c for c in needed if owner[c] == index]
            out.append((side.key, _read_side(side, parts, parts[0].names(), columns, needed)))
        return out

    def _kind(self, column: str, roles: set[str], encoder: Encoder) -> Kind | str:
        """The type training gave ``column`` (the log's schema, else a side table's that declares
        it); an ``auto`` id of a feature is read as its vocabulary holds ids (:data:`AS_INTEGERS`,
        :data:`AS_TEXT`)."""
        schema = self.log_schema
        kind = _kind(roles, schema, column)
        if column not in schema.kinds:
            for side in self.cfg.side_tables:
                side_schema = self.preset.schema_for(Path(side.file), log=False)
                if column in side_schema.kinds:
                    kind = _kind(roles - {"key"} or {"id"}, side_schema, column)
                    break
        if kind is Kind.AUTO:
            for feature in encoder.sparse:
                if column in feature.source_columns and feature.separator is None:
                    integer = encoder.vocabularies[feature.name].values.dtype.is_integer()
                    return AS_INTEGERS if integer else AS_TEXT
        return kind

    # --- reading ---------------------------------------------------------------------------------------
    def _scan(self) -> pl.LazyFrame:
        if self.table.format == "parquet":
            raw = pl.scan_parquet(self.path).collect_schema().names()
            renames = {r: n for r, n in zip(raw, self.names) if r != n}
            return pl.scan_parquet(self.path).rename(renames).select(self.read)
        text = {n: pl.String() for n in self.names}  # typed below, per batch, as the loader's slow path
        return self.table._scan(text).select(*self.read, EXTRA)

    def row_count(self) -> int | None:
        """The number of rows when it is cheap to know (Parquet metadata), else None."""
        if self.table.format != "parquet":
            return None
        return int(pl.scan_parquet(self.path).select(pl.len()).collect().item())

    def batches(self) -> Iterator[RawBatch]:
        """The file's rows in order, typed and joined, ``batch_size`` rows at a time."""
        offset = 0
        try:
            for chunk in self._scan().collect_batches(chunk_size=self.batch_size):
                for start in range(0, chunk.height, self.batch_size):
                    part = chunk.slice(start, self.batch_size)
                    yield self._batch(part, offset)
                    offset += part.height
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"cannot be read ({first_line(exc)})", file=str(self.path)) from None
        if offset == 0:
            raise InputError("no data rows" + (" after the header" if self.table.where.has_header else ""),
                             file=str(self.path))

    def _batch(self, raw: pl.DataFrame, offset: int) -> RawBatch:
        where = self.table.where
        if EXTRA in raw.columns:
            extra = raw.get_column(EXTRA)
            if extra.null_count() != raw.height:
                named = "one per header name" if where.has_header else "one per name in data.columns"
                raise ragged_row_error(where, offset + int(extra.is_not_null().arg_max()), len(self.names),
                                       self.table.separator, named)
            raw = raw.drop(EXTRA)
        at = Where(where.path, where.has_header, offset)
        standard = {c: k for c, k in self.kinds.items() if isinstance(k, Kind)}
        typed = coerce(raw.select(self.columns), standard, self.keys, at)
        typed = typed.with_columns(_as_vocabulary(raw.get_column(c), k, c in self.keys, at)
                                   for c, k in self.kinds.items() if not isinstance(k, Kind))
        if self.sides:
            joined = typed.lazy()
            for index, (key, table) in enumerate(self.sides):
                joined = _left_join(joined, table, key, f"{MATCHED}{index}")
            typed = joined.collect()
            typed = typed.drop([c for c in typed.columns if c.startswith(MATCHED)])
        return RawBatch(typed, coerce(raw.select(self.id_columns), self.id_kinds, set(), at))


def _as_vocabulary(series: pl.Series, kind: str, key: bool, where: Where) -> pl.Series:
    """An ``auto`` id column as its feature's vocabulary holds ids: Int64 (other values null, so
    index 0) or text as training's inference keeps it (stripped, NA spellings missing)."""
    text = _text(series)
    if key:
        missing = text.is_null()
        if missing.any():
            raise where.row_error(series.name, int(missing.arg_max()), "missing id (empty or NaN)")
    if kind == AS_TEXT:
        return text
    ints = text.cast(pl.Int64, strict=False)
    floats = text.cast(pl.Float64, strict=False)  # integral floats written as text ("9.0")
    integral = floats.is_not_null() & (floats == floats.floor()) & (floats.abs() < 2.0**63)
    return ints.zip_with(ints.is_not_null() | ~integral, floats.cast(pl.Int64, strict=False)).alias(series.name)
