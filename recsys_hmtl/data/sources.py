"""Reading what a resolved :class:`DataConfig` points at: the logs, concatenated in file order, with
the side tables left-joined on their keys.

Each file is one Polars lazy scan with an explicit schema (no inference), projected to the columns
the config needs, collected once so that an error can name the file. A parse failure re-reads the
needed columns as text to find the first bad row (:func:`~recsys_hmtl.data.schema.coerce`); clean
files never pay for that. File names are looked up under ``data.root`` and then ``data.root/data``
(the layout of the KuaiRand tarball and of ``recsys-hmtl demo-data``); a name may be a glob
(``video_features_statistic_27k_part[123].csv``): the matching files are read as one table.

Missing side rows are left as nulls (the encoder maps them to the missing index) and counted in
``LoadedData.report["side_tables"]``. A CSV row with more fields than the header (or ``data.columns``)
is refused (:mod:`~recsys_hmtl.data.ragged`).

:func:`fingerprint` gives each input file's stat key and content digest
(:mod:`~recsys_hmtl.data.digests`): the cache key and the resume check compare contents.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import polars as pl

from ..errors import InputError, closest, did_you_mean
from .cache import cache_root
from .config import DataConfig, SideTableConfig, TaskConfig
from .digests import DigestMemo
from .labels import label_role
from .presets import DatasetPreset, get_preset, resolve
from .ragged import EXTRA, drop_extra, large_csv_fields, with_extra
from .schema import CSV_DTYPE, FileSchema, Kind, Where, check_header, check_no_header, coerce
from .shown import clipped, first_line, shown

__all__ = ["LoadedData", "fingerprint", "input_files", "load", "resolve"]

SEARCH = (".", "data")  # under data.root: the folder itself, then its data/ (KuaiRand tarball layout)
PARQUET_SUFFIXES = (".parquet", ".pq")
MATCHED = "__recsys_hmtl_matched"
# A column needed in several roles takes the kind of the first role listed here.
ROLE_ORDER = ("label", "key", "date", "number", "id", "text")


@dataclass
class LoadedData:
    frame: pl.DataFrame  # logs in file order, needed columns only, side tables joined, typed
    report: dict = field(default_factory=dict)  # files, rows, side_tables, columns, missing_values
    logs: list[tuple[Where, int]] = field(default_factory=list)  # each log file and its row count, in order

    def locate(self, index: int) -> tuple[Where, int]:
        """The log file holding row ``index`` (0-based) of :attr:`frame`, and the row's index in it."""
        part, row = _part_of(index, [rows for _, rows in self.logs])
        return self.logs[part][0], row


@dataclass(frozen=True)
class _Table:
    """One file and how to read it."""

    path: Path
    format: str  # csv | parquet
    separator: str
    has_header: bool
    columns: tuple[str, ...]  # names of a header-less file
    schema: FileSchema
    aliases: Mapping[str, str]
    dataset: str

    def names(self) -> list[str]:
        """Column names (aliases applied), after the header checks."""
        if self.format == "parquet":
            try:
                names = pl.scan_parquet(self.path).collect_schema().names()
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise InputError(f"not a readable Parquet file ({first_line(exc)})",
                                 file=str(self.path)) from None
            return [self.aliases.get(n, n) for n in names]
        first = self._first_line()
        if not self.has_header:
            check_no_header(self.path, first, list(self.columns), self.aliases, self.dataset, self.separator,
                            numeric=bool(self.schema.kinds))
            return list(self.columns)
        check_header(self.path, first, self.dataset, self.separator)
        return [self.aliases.get(n, n) for n in first]

    @property
    def where(self) -> Where:
        return Where(self.path, None if self.format == "parquet" else self.has_header)

    def read(self, names: list[str], kinds: dict[str, Kind], keys: set[str]) -> pl.DataFrame:
        """The ``kinds`` columns, typed and checked (:func:`coerce`); a CSV row with more fields than
        ``names`` is refused."""
        where = self.where
        if self.format == "parquet":
            renames = {raw: name for raw, name in zip(self._raw_names(), names) if raw != name}
            frame = _collect(pl.scan_parquet(self.path).rename(renames).select(list(kinds)), self.path)
        else:
            schema = {n: CSV_DTYPE[kinds[n]] if n in kinds else pl.String() for n in names}
            try:
                frame = self._scan(schema).select(*kinds, EXTRA).collect()
            except pl.exceptions.PolarsError:  # locate the bad value on the slow path
                text = {n: pl.String() for n in names}
                frame = _collect(self._scan(text).select(*kinds, EXTRA), self.path)
            named = "one per header name" if self.has_header else "one per name in data.columns"
            frame = drop_extra(frame, where, len(names), self.separator, named=named)
        if frame.height == 0:
            raise InputError("no data rows" + (" after the header" if where.has_header else ""),
                             file=str(self.path))
        return coerce(frame, kinds, keys, where)

    def stage(self, names: list[str], kinds: dict[str, Kind], dest: Path) -> Path:
        """Where :meth:`read_rows` reads this log: a Parquet log itself; a CSV log's ``kinds``
        columns as written (text) and the extra-field sentinel, streamed once to Parquet ``dest``."""
        if self.format == "parquet":
            return self.path
        try:
            self._scan({n: pl.String() for n in names}).select(*kinds, EXTRA).sink_parquet(dest)
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"cannot be read ({first_line(exc)})", file=str(self.path)) from None
        return dest

    def read_rows(self, staged: Path, names: list[str], kinds: dict[str, Kind], keys: set[str], start: int,
                  length: int) -> pl.DataFrame:
        """Rows ``[start, start + length)`` of this log (from :meth:`stage`), typed and checked as
        :meth:`read` does (row numbers in errors count from the top of the file)."""
        where = Where(self.path, self.where.has_header, offset=start)
        if self.format == "parquet":
            renames = {raw: name for raw, name in zip(self._raw_names(), names) if raw != name}
            frame = _collect(pl.scan_parquet(staged).rename(renames).select(list(kinds)).slice(start, length),
                             self.path)
        else:
            frame = _collect(pl.scan_parquet(staged).slice(start, length), self.path)
            named = "one per header name" if self.has_header else "one per name in data.columns"
            frame = drop_extra(frame, where, len(names), self.separator, named=named)
        return coerce(frame, kinds, keys, where)

    def _first_line(self) -> list[str]:
        """The fields of line 1 as written (Polars would rename repeated header names; and reading one
        line with Polars maps the whole file)."""
        with open(self.path, "rb") as fh:
            head = fh.readline(1 << 20)
        try:
            text = head.decode("utf-8-sig").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError("line 1 is not UTF-8 text: not a CSV file?", file=str(self.path)) from None
        if not text.strip():
            raise InputError("the file is empty" if not head else "line 1 is blank", file=str(self.path))
        with large_csv_fields():
            return [f.strip() for f in next(csv.reader([text], delimiter=self.separator))]

    def _scan(self, schema: dict) -> pl.LazyFrame:
        """The CSV file with ``schema`` and the sentinel column of extra fields (:mod:`.ragged`)."""
        return pl.scan_csv(self.path, separator=self.separator, has_header=self.has_header,
                           schema=with_extra(schema), truncate_ragged_lines=True,
                           null_values=list(self.schema.null_values) or None)

    def _raw_names(self) -> list[str]:
        return pl.scan_parquet(self.path).collect_schema().names()


def _collect(frame: pl.LazyFrame, path: Path) -> pl.DataFrame:
    try:
        return frame.collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"cannot be read ({first_line(exc)})", file=str(path)) from None


# --- files ----------------------------------------------------------------------------------------
def input_files(cfg: DataConfig) -> list[Path]:
    """Every file the resolved config reads (logs, then side tables), absolute; InputError if missing."""
    paths = [p for name in cfg.files for p in _locate(cfg, name, "log file")]
    return paths + [p for side in cfg.side_tables for p in _locate(cfg, side.file, "side table")]


def fingerprint(cfg: DataConfig, memo: DigestMemo | None = None) -> list[dict]:
    """``{path, size, mtime_ns, ctime_ns, inode, sha256}`` of every input file: the stat key and the
    content digest, read once per stat key (:mod:`.digests`). With a ``memo`` the caller saves it;
    without one the memo under the cache root is used and saved there if that folder exists."""
    own = memo is None
    memo = memo or DigestMemo(cache_root(cfg))
    out = [memo.fingerprint(path) for path in input_files(cfg)]
    if own and memo.path.parent.is_dir():
        memo.save()
    return out


def _root(cfg: DataConfig) -> Path:
    return Path(cfg.root).expanduser().absolute()


def _locate(cfg: DataConfig, name: str, what: str) -> list[Path]:
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [_root(cfg) / sub / given for sub in SEARCH]
    for path in candidates:
        if any(ch in path.name for ch in "*?["):
            found = sorted(p for p in path.parent.glob(path.name) if p.is_file())
            if found:
                return found
        elif path.is_file():
            return [path]
    raise _missing(cfg, candidates[0], what, candidates[1:])


def _missing(cfg: DataConfig, path: Path, what: str, also: list[Path]) -> InputError:
    preset = f"dataset {cfg.dataset}" + (f", variant {cfg.variant}" if cfg.dataset == "kuairand" else "")
    looked = f" under data.root; also looked in {', '.join(str(p.parent) for p in also)}" if also else ""
    hint = "set data.root to the folder holding the files, or data.files / data.variant"
    if path.parent.is_dir():
        nearest = closest(path.name, [p.name for p in path.parent.iterdir() if p.is_file()])
        if nearest:
            hint = f"did you mean '{nearest}'? ({hint})"
    elif not _root(cfg).is_dir():
        hint = f"data.root '{_root(cfg)}' does not exist; {hint}"
    return InputError(f"{what} not found ({preset} expects '{path.name}'{looked})",
                      file=str(path), hint=hint)


def _tables(cfg: DataConfig, preset: DatasetPreset, name: str, what: str, *, log: bool,
            separator: str | None = None) -> list[_Table]:
    out = []
    for path in _locate(cfg, name, what):
        fmt = "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else cfg.format
        out.append(_Table(
            path=path, format=fmt, separator=separator or cfg.separator or ",",
            has_header=bool(cfg.has_header) if log else True, columns=tuple(cfg.columns) if log else (),
            schema=preset.schema_for(path, log=log), aliases=preset.aliases, dataset=preset.title,
        ))
    return out


# --- loading --------------------------------------------------------------------------------------
@dataclass
class SourcePlan:
    """What to read for a resolved config: the log files (each with its column names), the side
    tables, which table provides each needed column (``owner``: -1 the logs, i side table i)."""

    logs: list[_Table]
    log_names: list[list[str]]
    sides: list[tuple[SideTableConfig, list[_Table]]]
    side_names: list[list[str]]
    needed: "Needs"
    owner: dict[str, int]

    @property
    def log_columns(self) -> list[str]:
        return [c for c in self.needed if self.owner[c] == -1]

    @property
    def keys(self) -> set[str]:
        """Log columns that must hold a value on every row (ids, join keys)."""
        return {c for c in self.log_columns if "key" in self.needed[c][0]}

    def kinds(self, table: _Table) -> dict[str, Kind]:
        """The final type of every log column read from ``table``."""
        return {c: _kind(self.needed[c][0], table.schema, c) for c in self.log_columns}

    def read_sides(self) -> tuple[list[tuple[int, str, pl.DataFrame]], dict]:
        """The side tables that provide a column, read and checked: ``(index, key, table)``; and the
        report's ``side_tables`` (``matched``/``missing`` left to the join)."""
        tables, report = [], {}
        for index, ((side, parts), names) in enumerate(zip(self.sides, self.side_names)):
            columns = [c for c in self.needed if self.owner[c] == index]
            report[side.file] = {"paths": [str(p.path) for p in parts], "key": side.key, "columns": columns,
                                 "used": bool(columns), "rows": None, "matched": None, "missing": None}
            if columns:
                table = _read_side(side, parts, names, columns, self.needed)
                report[side.file]["rows"] = table.height
                tables.append((index, side.key, table))
        return tables, report

    def join_sides(self, frame: pl.DataFrame, tables: list[tuple[int, str, pl.DataFrame]]
                   ) -> tuple[pl.DataFrame, dict[str, int]]:
        """``frame`` with the side tables left-joined (one plan), and the rows each side table matched
        (by file name)."""
        joined = frame.lazy()
        for index, key, table in tables:
            joined = _left_join(joined, table, key, f"{MATCHED}{index}")
        frame = joined.collect()
        markers = [c for c in frame.columns if c.startswith(MATCHED)]
        matched = {}
        if markers:
            counts = frame.select(pl.col(m).is_not_null().sum() for m in markers).row(0)
            for marker, count in zip(markers, counts):
                matched[self.sides[int(marker[len(MATCHED):])][0].file] = int(count)
            frame = frame.drop(markers)
        return frame, matched


def plan_sources(cfg: DataConfig, tasks: list[TaskConfig]) -> SourcePlan:
    """Locate the files of ``cfg`` (already resolved), check their headers and the needed columns."""
    preset = get_preset(cfg.dataset)
    logs = [t for name in cfg.files for t in _tables(cfg, preset, name, "log file", log=True)]
    sides = [(side, _tables(cfg, preset, side.file, "side table", log=False, separator=side.separator))
             for side in cfg.side_tables]
    needed = _needed(cfg, tasks, preset)
    log_names = [t.names() for t in logs]
    side_names = [parts[0].names() for _, parts in sides]
    owner = _assign(needed, logs[0].path, log_names[0], sides, side_names)
    plan = SourcePlan(logs, log_names, sides, side_names, needed, owner)
    for table, names in zip(logs, log_names):
        _require(table.path, names, plan.log_columns, needed)
    return plan


def loaded_report(cfg: DataConfig, rows: int, files: dict, side_report: dict, matched: dict[str, int],
                  columns: dict[str, str], nulls: dict[str, int]) -> dict:
    """``LoadedData.report`` from what loading counted."""
    for file, count in matched.items():
        side_report[file]["matched"], side_report[file]["missing"] = count, rows - count
    return {
        "dataset": cfg.dataset, "variant": cfg.variant, "rows": rows, "files": files,
        "side_tables": side_report, "columns": columns, "missing_values": {n: v for n, v in nulls.items() if v},
    }


def load(cfg: DataConfig, tasks: list[TaskConfig]) -> LoadedData:
    """Read, check, type and join everything ``cfg`` (already resolved) names for ``tasks``."""
    plan = plan_sources(cfg, tasks)
    frames, files, log_parts = [], {}, []
    for table, names in zip(plan.logs, plan.log_names):
        frame = table.read(names, plan.kinds(table), plan.keys)
        files[str(table.path)] = frame.height
        frames.append(frame)
        log_parts.append((table.where, frame.height))
    frame = pl.concat(frames, how="vertical_relaxed")
    tables, side_report = plan.read_sides()
    frame, matched = plan.join_sides(frame, tables)
    report = loaded_report(cfg, frame.height, files, side_report, matched,
                           {n: str(t) for n, t in frame.schema.items()}, frame.null_count().row(0, named=True))
    return LoadedData(frame=frame, report=report, logs=log_parts)


Needs = dict[str, tuple[set[str], list[str]]]  # column -> (roles, what uses it)


def _needed(cfg: DataConfig, tasks: list[TaskConfig], preset: DatasetPreset) -> Needs:
    """Every column to read: its roles and what uses it (for messages), in a stable order."""
    needed: Needs = {}

    def need(column: str, role: str, use: str) -> None:
        roles, uses = needed.setdefault(column, (set(), []))
        roles.add(role)
        uses.append(use)

    if cfg.user_column is not None:
        need(cfg.user_column, "key", "data.user_column")
    for side in cfg.side_tables:
        need(side.key, "key", f"the join key of {side.file}")
    if cfg.split.kind == "date":
        need(cfg.split.column, "date", "the date split (data.split.column)")
    for task in tasks:
        need(task.label_column, label_role(task), f"task '{task.name}'")
    for sparse in cfg.sparse:
        for column in sparse.source_columns:
            need(column, "text" if sparse.separator is not None else "id", f"sparse feature '{sparse.name}'")
    for dense in cfg.dense:
        need(dense.source_column, "number", f"dense feature '{dense.name}'")
    for column in preset.id_columns:
        if column in needed:
            needed[column][0].add("key")
    return needed


def _kind(roles: set[str], schema: FileSchema, column: str) -> Kind:
    role = min(roles, key=ROLE_ORDER.index)
    if role == "label":
        return Kind.LABEL
    if role == "number":
        return Kind.FLOAT
    if role == "text":
        return Kind.STR
    if role == "date":  # a calendar day, whatever else the file's schema says
        return Kind.DAY if schema.kinds.get(column) is Kind.DAY else Kind.DATE
    return schema.kinds.get(column, Kind.AUTO)


def _assign(needed: Needs, log_path: Path, log_names: list[str], sides: list,
            side_names: list[list[str]]) -> dict[str, int]:
    """Which table provides each column: -1 = the logs, i = side table i (the first that has it)."""
    owner = {}
    side_keys = {side.key for side, _ in sides}
    for column, (_, uses) in needed.items():
        if column in log_names:
            owner[column] = -1
            continue
        found = [i for i, names in enumerate(side_names) if column in names and column not in side_keys]
        if found:
            owner[column] = found[0]
            continue
        everything = log_names + [n for names in side_names for n in names]
        searched = [str(log_path)] + [str(parts[0].path) for _, parts in sides]
        raise InputError(
            f"no column '{column}' (needed by {', '.join(dict.fromkeys(uses))})",
            file=str(log_path), column=column,
            hint=f"{_names_hint(column, log_names if len(log_names) == 1 else everything)} "
                 f"Searched: {', '.join(searched)}",
        )
    return owner


def _require(path: Path, names: list[str], columns: list[str], needed: Needs) -> None:
    for column in columns:
        if column not in names:
            uses = ", ".join(dict.fromkeys(needed[column][1])) if column in needed else "the join"
            raise InputError(f"no column '{column}' (needed by {uses})", file=str(path), column=column,
                             hint=_names_hint(column, names))


def _names_hint(column: str, names: list[str]) -> str:
    """'did you mean ...?', or the separator the header seems to use when it came out as one name."""
    if len(names) == 1:
        for sep, label in (("\t", "a tab"), (",", "','"), (";", "';'"), ("|", "'|'")):
            if sep in names[0]:
                return f"the header is a single name; the file seems separated by {label}: set data.separator."
    return clipped(did_you_mean(column, {clipped(n, 60) for n in names}), 1000)


def _read_side(side: SideTableConfig, parts: list[_Table], names: list[str], columns: list[str],
               needed: Needs) -> pl.DataFrame:
    frames = []
    for i, part in enumerate(parts):
        part_names = names if i == 0 else part.names()
        _require(part.path, part_names, [side.key, *columns], needed)
        kinds = {side.key: part.schema.kinds.get(side.key, Kind.AUTO),
                 **{c: _kind(needed[c][0] - {"key"} or {"id"}, part.schema, c) for c in columns}}
        frames.append(part.read(part_names, kinds, {side.key}))
    table = pl.concat(frames, how="vertical_relaxed")
    duplicated = table.get_column(side.key).is_duplicated()
    if duplicated.any():
        first = int(duplicated.arg_max())
        value = table.get_column(side.key)[first]
        again = int((table.get_column(side.key) == value).arg_true()[1])
        heights = [f.height for f in frames]
        (i, index), (j, index2) = _part_of(first, heights), _part_of(again, heights)
        part, other = parts[i], parts[j]
        where = f"row {index2 + 1}" + ("" if other is part else f" of {other.path}")
        raise part.where.row_error(
            side.key, index, f"key {shown(value)} appears again in {where}; a side table has one row per key")
    return table


def _part_of(index: int, heights: list[int]) -> tuple[int, int]:
    """(which part, row in it) of row ``index`` of a concatenation of parts ``heights`` rows long."""
    for part, rows in enumerate(heights):
        if index < rows:
            return part, index
        index -= rows
    raise IndexError(index)


def _left_join(frame: pl.LazyFrame, table: pl.DataFrame, key: str, marker: str) -> pl.LazyFrame:
    """``frame`` LEFT JOIN ``table`` on ``key``, row order kept; ``marker`` is null where no side row."""
    left, right = frame.collect_schema()[key], table.schema[key]
    if left != right:  # e.g. ids read as integers in the log and as text in a custom side file
        cast = table.get_column(key).cast(left, strict=False)
        if cast.null_count() == table.get_column(key).null_count():
            table = table.with_columns(cast)
        else:
            frame = frame.with_columns(pl.col(key).cast(pl.String))
            table = table.with_columns(pl.col(key).cast(pl.String))
    side = table.lazy().with_columns(pl.lit(True).alias(marker))
    return frame.join(side, on=key, how="left", maintain_order="left")
