"""One encoded split, in memory or as a Parquet file of the cache, read whole or by row ranges.

A cache hit opens its splits without reading them: the row count comes from the Parquet footer.
``frame()`` reads the whole split (the ``memory`` reader, and callers that need every row at once)
and keeps it; ``read(start, length)`` reads a row range only (Polars pushes the slice into the
Parquet reader, which decodes only the row groups it covers): the ``blocks`` reader
(:mod:`~recsys_hmtl.data.block_stream`) holds a few of them at a time.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .cache import READ_ERRORS, CorruptEntry
from .shown import first_line


class EncodedSplit:
    """An encoded split: ``len()`` rows; ``frame()`` whole; ``read(start, length)`` a row range."""

    def __init__(self, *, frame: pl.DataFrame | None = None, path: Path | None = None,
                 rows: int | None = None) -> None:
        if (frame is None) == (path is None):
            raise ValueError("give a frame or a path")
        self.path = path
        self._frame = frame
        self.rows = frame.height if frame is not None else int(rows if rows is not None else _footer_rows(path))

    @classmethod
    def open(cls, path: Path) -> "EncodedSplit":
        """The split stored at ``path`` (its footer read, no row decoded); :class:`CorruptEntry` if
        the file is not a readable Parquet file."""
        return cls(path=path, rows=_footer_rows(path))

    def __len__(self) -> int:
        return self.rows

    @property
    def height(self) -> int:
        return self.rows

    def columns(self) -> list[str]:
        if self._frame is not None:
            return self._frame.columns
        return list(_read(self.path, pl.read_parquet_schema))

    def frame(self) -> pl.DataFrame:
        """Every row (read once from the file, then kept)."""
        if self._frame is None:
            self._frame = _read(self.path, pl.read_parquet)
            if self._frame.height != self.rows:
                raise CorruptEntry(f"{self.path}: {self._frame.height} rows, its footer says {self.rows}")
        return self._frame

    def read(self, start: int, length: int) -> pl.DataFrame:
        """Rows ``[start, start + length)``, from the kept frame or the file."""
        if self._frame is not None:
            return self._frame.slice(start, length)
        return _read(self.path, lambda p: pl.scan_parquet(p).slice(start, length).collect())

    def release(self) -> None:
        """Forget the kept frame of a file-backed split (it is read again when needed)."""
        if self.path is not None:
            self._frame = None


def _footer_rows(path: Path) -> int:
    return _read(path, lambda p: pl.scan_parquet(p).select(pl.len()).collect().item())


def _read(path: Path, reader):
    try:
        return reader(path)
    except READ_ERRORS as exc:
        raise CorruptEntry(f"{path}: {first_line(exc)}") from exc
