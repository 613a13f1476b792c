"""Cache of encoded splits: one folder per (input files, configuration), Parquet frames + JSON documents.

The folder name is a hash of the inputs' contents (path, size and SHA-256 digest, read once per
version of a file: :mod:`~recsys_hmtl.data.digests`) and of the resolved data configuration and tasks
(``cache_dir`` excluded), plus the cache format and the Polars version. Changing an input file's
content (even keeping its size and modification time) or the configuration therefore gives another
folder; touching a file does not. An old folder stays until deleted (``rm -r <cache_dir>``).

An entry is written to a temporary folder beside its final place and renamed into place at the end,
so a reader never sees half an entry, and a crash or a failed validation leaves nothing behind. When
two processes (e.g. the ranks of a distributed run) write the same entry, the first rename wins and
the other copy is discarded: both hold the same data.

An entry that cannot be read back (a Parquet file truncated or overwritten, a JSON document that is
not JSON, a frame that does not match the report) raises :class:`CorruptEntry`; the pipeline then
removes it and writes it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .config import DataConfig, TaskConfig
from .shown import first_line

CACHE_FORMAT = 2  # bump when the layout or the encoding changes
DEFAULT_FOLDER = ".recsys_hmtl_cache"
ROW_GROUP_ROWS = 65_536  # rows of a Parquet row group: the block the ``blocks`` reader decodes
READER_KEYS = ("cache_dir", "reader", "block_rows", "window_blocks")  # how the cache is found and read: not in the key


def cache_root(cfg: DataConfig) -> Path:
    """``data.cache_dir``, else ``<data.root>/.recsys_hmtl_cache``."""
    folder = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.root) / DEFAULT_FOLDER
    return folder.expanduser().absolute()


def cache_key(fingerprints: list[dict], cfg: DataConfig, tasks: list[TaskConfig]) -> str:
    """Hash of the input files' contents (path, size, sha256 of each fingerprint) and of the resolved
    configuration (``cache_dir`` and how it is read, ``READER_KEYS``, excluded)."""
    config = dataclasses.asdict(cfg)
    for key in READER_KEYS:
        config.pop(key, None)
    inputs = [{k: f.get(k) for k in ("path", "size", "sha256")} for f in fingerprints]
    blob = json.dumps({
        "format": CACHE_FORMAT, "polars": pl.__version__, "inputs": inputs, "data": config,
        "tasks": [[t.name, t.label_column, *_rule(t)] for t in tasks],
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# What reading a damaged entry raises: Polars (a bad Parquet file, or a panic in its reader), the file
# system, json (ValueError), and documents of the wrong shape (KeyError, TypeError).
READ_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError, KeyError,
               TypeError)


class CorruptEntry(Exception):
    """A cache entry that cannot be read back; the message names the file and the reason."""


@dataclass(frozen=True)
class CacheEntry:
    """One cache folder: ``<name>.parquet`` frames and ``<name>.json`` documents."""

    path: Path

    def exists(self, frames: list[str], documents: list[str]) -> bool:
        return all((self.path / f"{n}.parquet").is_file() for n in frames) and all(
            (self.path / f"{n}.json").is_file() for n in documents)

    def read_frames(self, names: list[str]) -> dict[str, pl.DataFrame]:
        """The frames; :class:`CorruptEntry` if one cannot be read."""
        return {n: self._read(f"{n}.parquet", pl.read_parquet) for n in names}

    def read_document(self, name: str) -> dict:
        """A JSON document (a mapping); :class:`CorruptEntry` if it cannot be read."""
        document = self._read(f"{name}.json", lambda path: json.loads(path.read_text()))
        if not isinstance(document, dict):
            raise CorruptEntry(f"{self.path / f'{name}.json'}: not a JSON object")
        return document

    def remove(self) -> None:
        """Delete the entry (renamed aside first, so that no reader sees it half deleted)."""
        aside = self.path.parent / f".del-{self.path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.path, aside)
        except OSError:
            aside = self.path
        shutil.rmtree(aside, ignore_errors=True)

    def _read(self, name: str, reader):
        try:
            return reader(self.path / name)
        except READ_ERRORS as exc:
            raise CorruptEntry(f"{self.path / name}: {first_line(exc)}") from exc

    def write(self, frames: dict[str, pl.DataFrame | pl.LazyFrame], documents: dict[str, dict]) -> bool:
        """Write the entry atomically (frames streamed, in row groups of :data:`ROW_GROUP_ROWS`); False
        when another process wrote it first (its copy is kept)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.parent / f".tmp-{self.path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            pl.collect_all([frame.lazy().sink_parquet(tmp / f"{name}.parquet", compression="lz4", statistics=False,
                                                      row_group_size=ROW_GROUP_ROWS, lazy=True)
                            for name, frame in frames.items()])
            for name, document in documents.items():
                (tmp / f"{name}.json").write_text(json.dumps(document, default=_json_default))
            if self.path.exists():
                if self.exists(list(frames), list(documents)):  # another process was faster
                    return False
                shutil.rmtree(self.path, ignore_errors=True)  # an incomplete entry (files deleted by hand)
            try:
                os.rename(tmp, self.path)
            except OSError:
                if self.path.is_dir():  # another process renamed its copy first
                    return False
                raise
            return True
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _json_default(value: object) -> object:
    """numpy scalars and paths in reports."""
    if hasattr(value, "item"):
        return value.item()  # type: ignore[attr-defined]
    return str(value)


def _rule(task) -> list:
    """A label rule, in the key only where one is set (keys of caches without rules stay as they were)."""
    if task.positive is None and task.threshold is None:
        return []
    return [{"positive": task.positive, "threshold": task.threshold}]
