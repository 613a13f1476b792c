"""``prepare``: the data a run trains on. Load (``sources``), split, encode on train (``encode``), cache.

The first run with given input files and configuration reads, validates, splits and encodes them and
writes the result to the cache (``cache``); every later run reads the cache (``cache: hit <dir>`` in
the log and ``report["cache"]``). A hit opens the splits' files without decoding them
(:class:`~recsys_hmtl.data.split_source.EncodedSplit`): the ``memory`` reader (``data.reader``,
default) then reads a split whole when it is first streamed; the ``blocks`` reader never does
(:mod:`~recsys_hmtl.data.block_stream`), and on a miss it prepares the data chunk by chunk straight
into the cache entry (:mod:`~recsys_hmtl.data.chunked`), so memory is bounded in both. Validation
happens before anything is written, so bad input leaves no cache entry. A cache entry that cannot be read back is logged, removed and written again.

Rows of a date split dated outside ``data.split.date_range`` are refused or dropped before the split
(:mod:`~recsys_hmtl.data.dates`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import polars as pl

from ..errors import InputError
from .cache import CacheEntry, CorruptEntry, cache_key, cache_root
from .chunked import discard, encode_chunked, working_folder
from .config import DataConfig, TaskConfig
from .dates import restrict_to_range
from .digests import DigestMemo
from .encode import GROUP_COLUMN, Encoder, fit_encoder, label_column
from .encoded import SPLIT_COLUMN, build_report, encode_rows, group_index, split_summary
from .labels import check_rule_columns
from .sources import fingerprint, load, resolve
from .spec import FeatureSpec
from .split import SPLITS, assign_splits
from .split_source import EncodedSplit

if TYPE_CHECKING:
    from .batches import BatchStream

log = logging.getLogger(__name__)

DOCUMENTS = ("features", "encoder", "report")


@dataclass
class PreparedData:
    """Encoded splits (train, val, test: one column per feature, ``label:<task>`` per task, the user
    index ``group:user``) as ``sources`` (read on demand) and ``splits`` (the same as frames, each
    read whole on first access), the ``features`` a model sees, the ``tasks`` in priority order, a
    ``report``; ``reader``, ``block_rows`` and ``window_blocks`` are those of ``data:``."""

    sources: dict[str, EncodedSplit]
    features: FeatureSpec
    tasks: list[str]
    report: dict
    cache_hit: bool = False
    cache_dir: Path | None = None
    fitted: Encoder | None = field(default=None, repr=False)
    rebuild: Callable[[], "PreparedData"] | None = field(default=None, repr=False)  # a hit: encode again
    reader: str = "memory"
    block_rows: int = 65_536
    window_blocks: int = 4

    @property
    def splits(self) -> Mapping[str, pl.DataFrame]:
        """Each split as one frame (read whole from the cache on first access, then kept)."""
        return _Frames(self.sources)

    def encoder(self) -> Encoder:
        """Vocabularies and dense statistics (read from the cache on a hit, where they are not loaded;
        a damaged document there is logged and the entry rebuilt)."""
        if self.fitted is None:
            if self.cache_dir is None:
                raise RuntimeError("no encoder: the data was neither encoded here nor cached")
            entry = CacheEntry(self.cache_dir)
            try:
                self.fitted = Encoder.from_dict(entry.read_document("encoder"))
            except (CorruptEntry, KeyError, TypeError, ValueError) as exc:
                if self.rebuild is None:
                    raise
                _discard(entry, exc)
                rebuilt = self.rebuild()
                self.fitted, self.cache_dir = rebuilt.fitted, rebuilt.cache_dir
        return self.fitted

    def stream(self, split: str, batch_size: int, **options: Any) -> "BatchStream":
        """Batches of ``split`` (see :class:`~recsys_hmtl.data.batches.BatchStream` for ``options``):
        the whole split in memory, or with the ``blocks`` reader a window of blocks at a time (a subset
        of ``rows``, the held-out slices of bilevel mode, is always read in memory)."""
        from .batches import BatchStream, EncodedArrays

        if self.reader == "blocks" and options.get("rows") is None:
            from .block_stream import BlockStream

            options.pop("rows", None)
            return BlockStream(self.sources[split], self.features, self.tasks, batch_size,
                               block_rows=self.block_rows, window_blocks=self.window_blocks, **options)
        arrays = EncodedArrays(self.sources[split].frame(), self.features, self.tasks)
        return BatchStream(arrays, batch_size, **options)


class _Frames(Mapping):
    """The splits as frames, each read when first asked for."""

    def __init__(self, sources: dict[str, EncodedSplit]) -> None:
        self._sources = sources

    def __getitem__(self, name: str) -> pl.DataFrame:
        return self._sources[name].frame()

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


def prepare(data_cfg: DataConfig, tasks: list[TaskConfig], *, use_cache: bool = True) -> PreparedData:
    """Resolve the preset, then :func:`prepare_resolved`."""
    return prepare_resolved(*resolve(data_cfg, tasks), use_cache=use_cache)


def prepare_resolved(cfg: DataConfig, resolved: list[TaskConfig], *, use_cache: bool = True) -> PreparedData:
    """Read the cache or load + split + encode (+ write the cache) the data of an already resolved
    config (:func:`~recsys_hmtl.data.presets.resolve`: a run plan holds it)."""
    prepared = _prepare(cfg, resolved, use_cache)
    prepared.reader, prepared.block_rows, prepared.window_blocks = cfg.reader, cfg.block_rows, cfg.window_blocks
    return prepared


def _prepare(cfg: DataConfig, resolved: list[TaskConfig], use_cache: bool) -> PreparedData:
    if not use_cache:
        prepared = _encode(cfg, resolved)
        prepared.report.update(cache="off", cache_hit=False, cache_dir=None)
        return prepared
    memo = DigestMemo(cache_root(cfg))  # saved only once the data has passed validation
    entry = CacheEntry(cache_root(cfg) / cache_key(fingerprint(cfg, memo), cfg, resolved))
    if entry.exists(list(SPLITS), list(DOCUMENTS)):
        try:
            prepared = _read_entry(entry, [t.name for t in resolved])
        except CorruptEntry as exc:
            _discard(entry, exc)
        else:
            log.info("cache: hit %s", entry.path)
            prepared.rebuild = lambda: prepare_resolved(cfg, resolved)
            memo.save()
            return prepared
    if cfg.reader == "blocks":  # data larger than memory: encoded chunk by chunk into the entry
        prepared = _write_chunked(entry, cfg, resolved)
    else:
        prepared = _write_entry(entry, _encode(cfg, resolved))
    memo.save()
    return prepared


def _write_chunked(entry: CacheEntry, cfg: DataConfig, resolved: list[TaskConfig]) -> PreparedData:
    """Prepare chunk by chunk (:mod:`~recsys_hmtl.data.chunked`) into ``entry``, then open it."""
    try:
        workdir = working_folder(entry.path.parent)
        try:
            result = encode_chunked(cfg, resolved, workdir)
            result.documents["report"].update(cache=f"miss, wrote {entry.path}", cache_hit=False,
                                              cache_dir=str(entry.path))
            entry.write(result.splits, result.documents)
        finally:
            discard(workdir)
    except OSError as exc:  # unwritable, or full: the chunks and the entry live in the cache folder
        raise InputError(f"data.reader: blocks prepares the data in the cache folder {entry.path.parent}, which "
                         f"cannot be written ({exc})", key="data.cache_dir",
                         hint="set data.cache_dir to a writable folder with room for about twice the encoded "
                              "data") from None
    log.info("cache: miss, wrote %s (chunk by chunk)", entry.path)
    prepared = _read_entry(entry, [t.name for t in resolved])
    prepared.report.update(cache=f"miss, wrote {entry.path}", cache_hit=False)
    prepared.cache_hit = False
    return prepared


def _read_entry(entry: CacheEntry, tasks: list[str]) -> PreparedData:
    """The prepared data of a cache hit; :class:`CorruptEntry` if the entry does not read back whole."""
    report = entry.read_document("report")
    try:
        features = FeatureSpec.from_dict(entry.read_document("features"))
        rows = {name: int(report["rows"][name]) for name in SPLITS}
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptEntry(f"{entry.path}: a document lacks {exc}") from exc
    splits = {name: EncodedSplit.open(entry.path / f"{name}.parquet") for name in SPLITS}
    columns = [*features.sparse_names, *features.dense, *(label_column(t) for t in tasks), GROUP_COLUMN]
    for name, split in splits.items():
        if len(split) != rows[name] or sorted(split.columns()) != sorted(columns):
            raise CorruptEntry(f"{entry.path / f'{name}.parquet'}: {len(split)} rows and columns "
                               f"{split.columns()[:8]}, not the {rows[name]} rows and columns of the report")
    report.update(cache=f"hit {entry.path}", cache_hit=True, cache_dir=str(entry.path))
    return PreparedData(splits, features, tasks, report, cache_hit=True, cache_dir=entry.path)


def _discard(entry: CacheEntry, exc: Exception) -> None:
    log.warning("cache: entry %s is damaged (%s); removing it and encoding the data again", entry.path, exc)
    entry.remove()


def _write_entry(entry: CacheEntry, prepared: PreparedData) -> PreparedData:
    """Write ``prepared`` to ``entry`` (a read-only folder is logged, not fatal)."""
    prepared.report.update(cache=f"miss, wrote {entry.path}", cache_hit=False, cache_dir=str(entry.path))
    try:
        entry.write(dict(prepared.splits), {"features": prepared.features.to_dict(),
                                      "encoder": prepared.encoder().to_dict(), "report": prepared.report})
        prepared.cache_dir = entry.path
        log.info("cache: miss, wrote %s", entry.path)
    except OSError as exc:  # a read-only data folder must not stop a run
        prepared.report.update(cache=f"miss, not written ({exc})", cache_dir=None)
        log.warning("cache: not written to %s (%s); set data.cache_dir", entry.path, exc)
    return prepared


def _encode(cfg: DataConfig, tasks: list[TaskConfig]) -> PreparedData:
    loaded = load(cfg, tasks)
    frame, range_info = restrict_to_range(loaded.frame, cfg, loaded.locate)
    check_rule_columns(frame, tasks, loaded.locate)  # rows are still in file order here
    loaded_report = loaded.report
    del loaded  # the raw frame is freed as soon as it is encoded
    source = ", ".join(loaded_report.get("files", {})) or None
    codes, split_info = assign_splits(frame, cfg.split, source=source)
    split_info.update(range_info)
    encoder = fit_encoder(frame, codes == 0, cfg.sparse, cfg.dense, cfg.min_count)
    users = frame.get_column(cfg.user_column) if cfg.user_column is not None else None
    encoded = encode_rows(frame, encoder, tasks, group_index(users), codes)
    del frame
    task_names = [t.name for t in tasks]
    report = build_report(cfg, loaded_report, split_info, split_summary(encoded, encoder.spec, task_names),
                          encoder, task_names)
    splits = {name: EncodedSplit(frame=encoded.filter(pl.col(SPLIT_COLUMN) == code).drop(SPLIT_COLUMN))
              for code, name in enumerate(SPLITS)}
    return PreparedData(splits, encoder.spec, task_names, report, fitted=encoder)
