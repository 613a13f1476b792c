"""Cache of encoded splits: one folder per (input files, configuration), Parquet frames + JSON documents.

The folder name is a hash of the inputs' fingerprints (path, size, modification time: a ``stat``, no
read) and of the resolved data configuration and tasks (``cache_dir`` excluded), plus the cache
format and the Polars version. Touching an input file or changing the configuration therefore gives
another folder; the old one stays until deleted (``rm -r <cache_dir>``).

An entry is written to a temporary folder beside its final place and renamed into place at the end,
so a reader never sees half an entry, and a crash or a failed validation leaves nothing behind. When
two processes (e.g. the ranks of a distributed run) write the same entry, the first rename wins and
the other copy is discarded: both hold the same data.
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

CACHE_FORMAT = 1  # bump when the layout or the encoding changes
DEFAULT_FOLDER = ".recsys_hmtl_cache"


def cache_root(cfg: DataConfig) -> Path:
    """``data.cache_dir``, else ``<data.root>/.recsys_hmtl_cache``."""
    folder = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.root) / DEFAULT_FOLDER
    return folder.expanduser().absolute()


def cache_key(fingerprints: list[dict], cfg: DataConfig, tasks: list[TaskConfig]) -> str:
    """Hash of the input fingerprints and of the resolved configuration (``cache_dir`` excluded)."""
    config = dataclasses.asdict(cfg)
    config.pop("cache_dir", None)
    blob = json.dumps({
        "format": CACHE_FORMAT, "polars": pl.__version__, "inputs": fingerprints, "data": config,
        "tasks": [[t.name, t.label_column] for t in tasks],
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class CacheEntry:
    """One cache folder: ``<name>.parquet`` frames and ``<name>.json`` documents."""

    path: Path

    def exists(self, frames: list[str], documents: list[str]) -> bool:
        return all((self.path / f"{n}.parquet").is_file() for n in frames) and all(
            (self.path / f"{n}.json").is_file() for n in documents)

    def read_frames(self, names: list[str]) -> dict[str, pl.DataFrame]:
        return {n: pl.read_parquet(self.path / f"{n}.parquet") for n in names}

    def read_document(self, name: str) -> dict:
        return json.loads((self.path / f"{name}.json").read_text())

    def write(self, frames: dict[str, pl.DataFrame], documents: dict[str, dict]) -> bool:
        """Write the entry atomically; False when another process wrote it first (its copy is kept)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.parent / f".tmp-{self.path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            pl.collect_all([frame.lazy().sink_parquet(tmp / f"{name}.parquet", compression="lz4", statistics=False,
                                                      lazy=True) for name, frame in frames.items()])
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
