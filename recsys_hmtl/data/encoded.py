"""The encoded frame of loaded rows (features, labels, user index, split code) and the data report.

Shared by the in-memory preparation (all rows at once, :mod:`~recsys_hmtl.data.pipeline`) and the
chunked one (:mod:`~recsys_hmtl.data.chunked`), which encodes chunk by chunk and adds up the
per-split summaries: both give the same frame and the same report.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .config import DataConfig, TaskConfig
from .encode import GROUP_COLUMN, Encoder, label_column
from .labels import label_expression
from .spec import FeatureSpec
from .split import SPLITS

SPLIT_COLUMN = "__split"


def group_index(users: pl.Series | None) -> pl.Expr:
    """User index 0.. in sorted raw-id order of ``users`` (every user of every split; a group key for
    GAUC, not a feature); no user column: one group (GAUC not reported)."""
    if users is None:
        return pl.lit(0, pl.Int32).alias(GROUP_COLUMN)
    distinct = users.unique().sort()
    dtype = pl.Int32 if len(distinct) < 2**31 else pl.Int64
    return pl.col(users.name).replace_strict(distinct, pl.int_range(0, len(distinct), eager=True, dtype=dtype),
                                             return_dtype=dtype).alias(GROUP_COLUMN)


def encode_rows(frame: pl.DataFrame, encoder: Encoder, tasks: list[TaskConfig], group: pl.Expr,
                codes: pl.Series | np.ndarray) -> pl.DataFrame:
    """The encoded columns of ``frame`` and its split codes (column :data:`SPLIT_COLUMN`)."""
    encoded = frame.lazy().select(
        *encoder.expressions(frame.schema),
        *(label_expression(t) for t in tasks),
        group,
        pl.lit(pl.Series(SPLIT_COLUMN, codes, dtype=pl.UInt8)).alias(SPLIT_COLUMN),
    ).collect()
    return encoder.finish(encoded)


def split_summary(encoded: pl.DataFrame, features: FeatureSpec, tasks: list[str]) -> pl.DataFrame:
    """Per split code: rows, positives per task, rows at index 0 per single-valued feature (sums:
    summaries of chunks add up with :func:`add_summaries`)."""
    single = [f.name for f in features.sparse if not f.multi_valued]
    return encoded.group_by(SPLIT_COLUMN).agg(
        pl.len().cast(pl.Int64).alias("rows"),
        *(pl.col(label_column(t)).cast(pl.Int64).sum().alias(f"pos:{t}") for t in tasks),
        *((pl.col(f) == 0).cast(pl.Int64).sum().alias(f"zero:{f}") for f in single),
    )


def add_summaries(summaries: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(summaries).group_by(SPLIT_COLUMN).agg(pl.all().sum())


def build_report(cfg: DataConfig, loaded: dict, split_info: dict, summary: pl.DataFrame, encoder: Encoder,
                 tasks: list[str]) -> dict:
    """The data report (``report.json`` of the cache, ``validate``'s summary)."""
    features = encoder.spec
    single = [f.name for f in features.sparse if not f.multi_valued]
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
