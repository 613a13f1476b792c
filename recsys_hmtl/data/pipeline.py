"""``prepare``: the data a run trains on. Load (``sources``), split, encode on train (``encode``), cache.

The first run with given input files and configuration reads, validates, splits and encodes them and
writes the result to the cache (``cache``); every later run reads the cache (``cache: hit <dir>`` in
the log and ``report["cache"]``). Validation happens before anything is written, so bad input leaves
no cache entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from .cache import CacheEntry, cache_key, cache_root
from .config import DataConfig, TaskConfig
from .encode import GROUP_COLUMN, Encoder, fit_encoder, label_column
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

    def encoder(self) -> Encoder:
        """Vocabularies and dense statistics (read from the cache on a hit, where they are not loaded)."""
        if self.fitted is None:
            if self.cache_dir is None:
                raise RuntimeError("no encoder: the data was neither encoded here nor cached")
            self.fitted = Encoder.from_dict(CacheEntry(self.cache_dir).read_document("encoder"))
        return self.fitted

    def stream(self, split: str, batch_size: int, **options: Any) -> "BatchStream":
        """Batches of ``split`` (see :class:`~recsys_hmtl.data.batches.BatchStream` for ``options``)."""
        from .batches import BatchStream, EncodedArrays

        arrays = EncodedArrays(self.splits[split], self.features, self.tasks)
        return BatchStream(arrays, batch_size, **options)


def prepare(data_cfg: DataConfig, tasks: list[TaskConfig], *, use_cache: bool = True) -> PreparedData:
    """Resolve the preset, then read the cache or load + split + encode (+ write the cache)."""
    cfg, tasks = resolve(data_cfg, tasks)
    entry = CacheEntry(cache_root(cfg) / cache_key(fingerprint(cfg), cfg, tasks)) if use_cache else None
    if entry is not None and entry.exists(list(SPLITS), list(DOCUMENTS)):
        log.info("cache: hit %s", entry.path)
        report = entry.read_document("report")
        report.update(cache=f"hit {entry.path}", cache_hit=True, cache_dir=str(entry.path))
        features = FeatureSpec.from_dict(entry.read_document("features"))
        return PreparedData(entry.read_frames(list(SPLITS)), features, [t.name for t in tasks], report,
                            cache_hit=True, cache_dir=entry.path)

    prepared = _encode(cfg, tasks)
    if entry is None:
        prepared.report.update(cache="off", cache_hit=False, cache_dir=None)
        return prepared
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
    frame, loaded_report = loaded.frame, loaded.report
    del loaded  # the raw frame is freed as soon as it is encoded
    source = ", ".join(loaded_report.get("files", {})) or None
    codes, split_info = assign_splits(frame, cfg.split, source=source)
    encoder = fit_encoder(frame, codes == 0, cfg.sparse, cfg.dense, cfg.min_count)
    task_names = [t.name for t in tasks]
    encoded = frame.lazy().select(
        *encoder.expressions(frame.schema),
        *(pl.col(t.label_column).cast(pl.Int8).alias(label_column(t.name)) for t in tasks),
        _group_index(frame.get_column(cfg.user_column)).alias(GROUP_COLUMN),
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
