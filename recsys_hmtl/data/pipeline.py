"""``prepare``: the data a run trains on. Load (``sources``), split, encode on train (``encode``), cache.

The first run with given input files and configuration reads, validates, splits and encodes them and
writes the result to the cache (``cache``); every later run reads the cache (``cache: hit <dir>`` in
the log and ``report["cache"]``). Validation happens before anything is written, so bad input leaves
no cache entry. A cache entry that cannot be read back is logged, removed and written again.

Rows of a date split dated outside ``data.split.date_range`` are refused or dropped before the split
(:mod:`~recsys_hmtl.data.dates`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import polars as pl

from .cache import CacheEntry, CorruptEntry, cache_key, cache_root
from .config import DataConfig, TaskConfig
from .dates import restrict_to_range
from .digests import DigestMemo
from .encode import GROUP_COLUMN, Encoder, fit_encoder, label_column
from .labels import check_rule_columns, label_expression
from .sources import fingerprint, load, resolve
from .spec import FeatureSpec
from .split import SPLITS, assign_splits

if TYPE_CHECKING:
    from .batches import BatchStream

log = logging.getLogger(__name__)

SPLIT_COLUMN = "__split"
DOCUMENTS = ("features", "encoder", "report")


@dataclass
class PreparedData:
    """Encoded ``splits`` (train, val, test: one column per feature, ``label:<task>`` per task, the user
    index ``group:user``), the ``features`` a model sees, the ``tasks`` in priority order, a ``report``."""

    splits: dict[str, pl.DataFrame]
    features: FeatureSpec
    tasks: list[str]
    report: dict
    cache_hit: bool = False
    cache_dir: Path | None = None
    fitted: Encoder | None = field(default=None, repr=False)
    rebuild: Callable[[], "PreparedData"] | None = field(default=None, repr=False)  # a hit: encode again

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
        """Batches of ``split`` (see :class:`~recsys_hmtl.data.batches.BatchStream` for ``options``)."""
        from .batches import BatchStream, EncodedArrays

        arrays = EncodedArrays(self.splits[split], self.features, self.tasks)
        return BatchStream(arrays, batch_size, **options)


def prepare(data_cfg: DataConfig, tasks: list[TaskConfig], *, use_cache: bool = True) -> PreparedData:
    """Resolve the preset, then :func:`prepare_resolved`."""
    return prepare_resolved(*resolve(data_cfg, tasks), use_cache=use_cache)


def prepare_resolved(cfg: DataConfig, resolved: list[TaskConfig], *, use_cache: bool = True) -> PreparedData:
    """Read the cache or load + split + encode (+ write the cache) the data of an already resolved
    config (:func:`~recsys_hmtl.data.presets.resolve`: a run plan holds it)."""
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
    prepared = _write_entry(entry, _encode(cfg, resolved))
    memo.save()
    return prepared


def _read_entry(entry: CacheEntry, tasks: list[str]) -> PreparedData:
    """The prepared data of a cache hit; :class:`CorruptEntry` if the entry does not read back whole."""
    report = entry.read_document("report")
    try:
        features = FeatureSpec.from_dict(entry.read_document("features"))
        rows = {name: int(report["rows"][name]) for name in SPLITS}
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptEntry(f"{entry.path}: a document lacks {exc}") from exc
    splits = entry.read_frames(list(SPLITS))
    columns = [*features.sparse_names, *features.dense, *(label_column(t) for t in tasks), GROUP_COLUMN]
    for name, frame in splits.items():
        if frame.height != rows[name] or sorted(frame.columns) != sorted(columns):
            raise CorruptEntry(f"{entry.path / f'{name}.parquet'}: {frame.height} rows and columns "
                               f"{frame.columns[:8]}, not the {rows[name]} rows and columns of the report")
    report.update(cache=f"hit {entry.path}", cache_hit=True, cache_dir=str(entry.path))
    return PreparedData(splits, features, tasks, report, cache_hit=True, cache_dir=entry.path)


def _discard(entry: CacheEntry, exc: Exception) -> None:
    log.warning("cache: entry %s is damaged (%s); removing it and encoding the data again", entry.path, exc)
    entry.remove()


def _write_entry(entry: CacheEntry, prepared: PreparedData) -> PreparedData:
    """Write ``prepared`` to ``entry`` (a read-only folder is logged, not fatal)."""
    prepared.report.update(cache=f"miss, wrote {entry.path}", cache_hit=False, cache_dir=str(entry.path))
    try:
        entry.write(prepared.splits, {"features": prepared.features.to_dict(),
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
    task_names = [t.name for t in tasks]
    encoded = frame.lazy().select(
        *encoder.expressions(frame.schema),
        *(label_expression(t) for t in tasks),
        (_group_index(frame.get_column(cfg.user_column)) if cfg.user_column is not None
         else pl.lit(0, pl.Int32)).alias(GROUP_COLUMN),  # no user column: one group, GAUC not reported
        pl.lit(codes).alias(SPLIT_COLUMN),
    ).collect()
    del frame
    encoded = encoder.finish(encoded)
    features = encoder.spec
    report = _report(cfg, loaded_report, split_info, encoded, encoder, features, task_names)
    splits = {name: encoded.filter(pl.col(SPLIT_COLUMN) == code).drop(SPLIT_COLUMN)
              for code, name in enumerate(SPLITS)}
    return PreparedData(splits, features, task_names, report, fitted=encoder)


def _group_index(users: pl.Series) -> pl.Expr:
    """User index 0.. in sorted raw-id order, over all splits (a group key for GAUC, not a feature)."""
    distinct = users.unique().sort()
    dtype = pl.Int32 if len(distinct) < 2**31 else pl.Int64
    return pl.col(users.name).replace_strict(distinct, pl.int_range(0, len(distinct), eager=True, dtype=dtype),
                                             return_dtype=dtype)


def _report(cfg: DataConfig, loaded: dict, split_info: dict, encoded: pl.DataFrame, encoder: Encoder,
            features: FeatureSpec, tasks: list[str]) -> dict:
    single = [f.name for f in features.sparse if not f.multi_valued]
    summary = encoded.group_by(SPLIT_COLUMN).agg(
        pl.len().alias("rows"),
        *(pl.col(label_column(t)).cast(pl.Int64).sum().alias(f"pos:{t}") for t in tasks),
        *((pl.col(f) == 0).sum().alias(f"zero:{f}") for f in single),
    )
    by_split = {SPLITS[row[SPLIT_COLUMN]]: row for row in summary.iter_rows(named=True)}
    rows = {name: int(by_split.get(name, {}).get("rows", 0)) for name in SPLITS}

    def rate(count: int, total: int) -> float:
        return count / total if total else 0.0

    task_report = {t: {name: {"positives": int(by_split[name][f"pos:{t}"]),
                              "rate": rate(by_split[name][f"pos:{t}"], rows[name])}
                       for name in SPLITS if name in by_split} for t in tasks}
    unseen = {f: {name: rate(by_split[name][f"zero:{f}"], rows[name]) for name in SPLITS if name in by_split}
              for f in single}
    vocabulary = {f.name: {"num_embeddings": f.num_embeddings, "multi_valued": f.multi_valued}
                  for f in features.sparse}
    for name, vocab in encoder.vocabularies.items():
        vocabulary[name]["rare_ids"] = len(vocab.rare)
    sides = {}
    for file, side in loaded.get("side_tables", {}).items():
        matched, missing = side.get("matched"), side.get("missing")
        coverage = rate(matched, matched + missing) if matched is not None and missing is not None else None
        sides[file] = {**side, "coverage": coverage}
    return {
        "dataset": cfg.dataset, "variant": cfg.variant, "files": loaded.get("files", {}),
        "rows": rows, "split": split_info, "tasks": task_report, "vocabulary": vocabulary,
        "missing_or_unseen": unseen, "dense": {n: vars(s).copy() for n, s in encoder.dense_stats.items()},
        "side_tables": sides, "missing_values": loaded.get("missing_values", {}),
    }
