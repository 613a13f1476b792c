"""Preparation in bounded memory (``data.reader: blocks``): the logs read, checked and encoded chunk
by chunk, straight into a cache entry; the same splits, vocabularies and report as the in-memory
preparation (:func:`~recsys_hmtl.data.pipeline.prepare`), with memory set by ``chunk_rows``, not by
the rows of the data set.

1. **Stage and check.** Each CSV log is streamed once to a Parquet file of its needed columns as
   written (text, and the extra-field sentinel of :mod:`.ragged`); a Parquet log is read in place.
   Chunks of ``chunk_rows`` rows are typed and checked as a whole file is (:func:`coerce`: errors
   name the file and its row), joined to the side tables (read whole once: they are small),
   restricted to the date range, and written to a working folder. An id column of unknown type
   (``Kind.AUTO``) that one chunk reads as integers and another as text is read again as text in
   every chunk of that file, as the whole file would be; across files the columns are unified as a
   concatenation of the files is (``vertical_relaxed``).
2. **Fit.** The split's cut is fixed from every chunk's dates (:class:`~recsys_hmtl.data.split.Cut`);
   vocabulary counts, dense moments (merged exactly up to rounding: Chan et al.'s update) and the
   bucketised features' values (kept whole: an O(rows) exception, documented) are summed over the
   training rows of each chunk, and the users over all rows.
3. **Encode.** Each chunk is encoded and cut into its splits' parts; the cache entry's split files
   are then streamed from the parts (:meth:`~recsys_hmtl.data.cache.CacheEntry.write`), in row
   groups of 65,536 rows.

The working folder lives beside the cache entry and is removed however this ends.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from .config import DataConfig, TaskConfig
from .dates import restrict_to_range
from .encode import encoder_from_fit, fit_statistics
from .encoded import SPLIT_COLUMN, add_summaries, build_report, encode_rows, group_index, split_summary
from .labels import check_rule_columns
from .schema import Kind
from .sources import SourcePlan, loaded_report, plan_sources
from .split import SPLITS, Cut, split_cut

log = logging.getLogger(__name__)

CHUNK_ROWS = 1_000_000


@dataclass
class _Chunk:
    path: Path  # typed, checked, joined rows
    start: int  # its first row in the concatenated (range-restricted) logs
    rows: int


@dataclass
class ChunkedResult:
    """What the chunked preparation leaves for the cache entry: each split as a scan of its parts
    (in the working folder) and the entry's documents (features, encoder, report)."""

    splits: dict[str, pl.LazyFrame]
    documents: dict[str, dict]


def encode_chunked(cfg: DataConfig, tasks: list[TaskConfig], workdir: Path,
                   chunk_rows: int | None = None) -> ChunkedResult:
    """Load, check, split and encode the data of ``cfg`` (resolved) chunk by chunk into ``workdir``
    (``chunk_rows``: :data:`CHUNK_ROWS`)."""
    plan = plan_sources(cfg, tasks)
    sides, side_report = plan.read_sides()
    source = ", ".join(str(t.path) for t in plan.logs) or None
    cut = split_cut(cfg.split, source)
    staged = _Staged(plan, workdir, chunk_rows or CHUNK_ROWS)
    chunks, counted = staged.check_all(cfg, tasks, sides, cut)

    # 2. fit: the cut, then the training rows' statistics and the users
    position = sum(c.rows for c in chunks)
    cut.fit(counted.seen, position)
    fit, users, split_rows = None, None, np.zeros(len(SPLITS), dtype=np.int64)
    for chunk in chunks:
        frame = staged.typed(chunk)
        codes = cut.codes(frame, chunk.start)
        split_rows += np.bincount(codes, minlength=len(SPLITS))
        part = fit_statistics(frame, pl.Series(codes == 0), cfg.sparse, cfg.dense)
        fit = part if fit is None else fit.merge(part)
        if cfg.user_column is not None:
            seen = frame.get_column(cfg.user_column).unique()
            users = seen if users is None else pl.concat([users, seen]).unique()
    split_info = cut.finish(split_rows, position)
    split_info.update(counted.range_info)
    encoder = encoder_from_fit(fit, cfg.sparse, cfg.dense, cfg.min_count)
    group = group_index(users)

    # 3. encode each chunk into its splits' parts
    task_names = [t.name for t in tasks]
    parts: dict[str, list[Path]] = {name: [] for name in SPLITS}
    summaries = []
    for k, chunk in enumerate(chunks):
        frame = staged.typed(chunk)
        encoded = encode_rows(frame, encoder, tasks, group, cut.codes(frame, chunk.start))
        del frame
        summaries.append(split_summary(encoded, encoder.spec, task_names))
        for code, name in enumerate(SPLITS):
            rows = encoded.filter(pl.col(SPLIT_COLUMN) == code).drop(SPLIT_COLUMN)
            if rows.height:
                parts[name].append(workdir / f"{name}-{k:05d}.parquet")
                rows.write_parquet(parts[name][-1])
        chunk.path.unlink()
    loaded = loaded_report(cfg, counted.rows, counted.files, side_report, dict(counted.matched),
                           {n: str(t) for n, t in staged.schema.items()}, dict(counted.nulls))
    report = build_report(cfg, loaded, split_info, add_summaries(summaries), encoder, task_names)
    return ChunkedResult(
        splits={name: pl.scan_parquet(files) for name, files in parts.items()},
        documents={"features": encoder.spec.to_dict(), "encoder": encoder.to_dict(), "report": report},
    )


@dataclass
class _Counted:
    """What checking chunks counted for the reports (per file, then added up)."""

    rows: int = 0
    files: dict = field(default_factory=dict)
    matched: Counter = field(default_factory=Counter)
    nulls: Counter = field(default_factory=Counter)
    seen: list = field(default_factory=list)
    range_info: dict = field(default_factory=dict)

    def add(self, other: "_Counted") -> None:
        self.matched.update(other.matched)
        self.nulls.update(other.nulls)
        self.seen += other.seen
        _add_range(self.range_info, other.range_info)


class _Staged:
    """Step 1: the logs' chunks typed, checked, joined and range-restricted, on disk."""

    def __init__(self, plan: SourcePlan, workdir: Path, chunk_rows: int) -> None:
        self.plan, self.workdir, self.chunk_rows = plan, workdir, chunk_rows
        self.schema: dict[str, pl.DataType] = {}

    def check_all(self, cfg: DataConfig, tasks: list[TaskConfig], sides: list, cut: Cut
                  ) -> tuple[list[_Chunk], _Counted]:
        total, chunks, schemas = _Counted(), [], []
        for index, (table, names) in enumerate(zip(self.plan.logs, self.plan.log_names)):
            kinds = self.plan.kinds(table)
            text = table.stage(names, kinds, self.workdir / f"log-{index}.parquet")
            rows = pl.scan_parquet(text).select(pl.len()).collect().item()
            if rows == 0:
                raise InputError("no data rows" + (" after the header" if table.where.has_header else ""),
                                 file=str(table.path))
            total.files[str(table.path)] = rows
            start = sum(c.rows for c in chunks)
            args = (cfg, tasks, sides, cut, table, names, text, rows, index, start)
            done, dtypes, counted = self._check_file(*args, kinds)
            mixed = [c for c, found in dtypes.items() if len(found) > 1 and kinds.get(c) is Kind.AUTO]
            if mixed:  # as the whole file would be read: those ids as text in every chunk
                for chunk in done:
                    chunk.path.unlink()
                done, dtypes, counted = self._check_file(*args, {**kinds, **{c: Kind.TEXT for c in mixed}})
            if text != table.path:
                text.unlink()
            total.add(counted)
            chunks += done
            schemas += [pl.DataFrame(schema={c: next(iter(t)) for c, t in dtypes.items()})]
        self.schema = dict(pl.concat(schemas, how="vertical_relaxed").schema)  # as the files' concatenation
        total.rows = sum(total.files.values())
        return chunks, total

    def _check_file(self, cfg: DataConfig, tasks: list[TaskConfig], sides: list, cut: Cut, table, names: list[str],
                    text: Path, rows: int, index: int, start: int, kinds: dict[str, Kind]
                    ) -> tuple[list[_Chunk], dict[str, set], _Counted]:
        chunks, dtypes, counted, position = [], {}, _Counted(), start
        for offset in range(0, rows, self.chunk_rows):
            frame = table.read_rows(text, names, kinds, self.plan.keys, offset, self.chunk_rows)
            frame, matched = self.plan.join_sides(frame, sides)
            counted.matched.update(matched)
            counted.nulls.update(frame.null_count().row(0, named=True))
            for column, dtype in frame.schema.items():
                dtypes.setdefault(column, set()).add(dtype)
            locate = (lambda i, where=table.where, at=offset: (where, at + i))
            frame, info = restrict_to_range(frame, cfg, locate)
            _add_range(counted.range_info, info)
            check_rule_columns(frame, tasks, locate)
            seen = cut.check(frame, position)
            if seen is not None:
                counted.seen.append(seen)
            chunk = _Chunk(self.workdir / f"typed-{index}-{offset // self.chunk_rows:05d}.parquet", position,
                           frame.height)
            frame.write_parquet(chunk.path)
            chunks.append(chunk)
            position += frame.height
        return chunks, dtypes, counted

    def typed(self, chunk: _Chunk) -> pl.DataFrame:
        """A chunk's rows, with the columns' types of the files' concatenation."""
        frame = pl.read_parquet(chunk.path)
        casts = [pl.col(n).cast(t) for n, t in self.schema.items() if frame.schema[n] != t]
        return frame.with_columns(casts) if casts else frame


def _add_range(total: dict, info: dict) -> None:
    if info:
        total["date_range"] = info["date_range"]
        total["dropped_out_of_range"] = total.get("dropped_out_of_range", 0) + info["dropped_out_of_range"]


def working_folder(root: Path) -> Path:
    """A new folder under ``root`` for one preparation (remove it with :func:`discard`)."""
    path = root / f".stage-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
