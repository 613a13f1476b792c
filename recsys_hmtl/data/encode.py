"""Encoding of the loaded rows into model inputs, fitted on the training split only (SPEC §3).

Sparse (id) features: a :class:`Vocabulary` per feature, counted on the training rows. Index 0 = the
id is missing (null, or one of the feature's ``missing_values``) or was never seen in training;
1 = the rare bucket (seen fewer than ``min_count`` times in training); 2, 3, ... = the other training
ids by descending count, then by value. Multi-valued features (a ``separator``-joined string such as
KuaiRand's ``tag`` "12,65", or several ``columns`` such as QK-Video's ``hist_1..hist_10``) become a
``List`` column of indices, with missing and padding values dropped (an empty list when nothing is
left); unseen values inside a list stay, as index 0.

Dense features: ``normalize`` (``(x - mean) / std`` with the training mean and standard deviation;
missing values become 0, the training mean), ``log_normalize`` (the same after ``log1p(max(x, 0))``)
or ``bucketize`` (``num_buckets`` training quantiles; the feature becomes a sparse id feature with
index 0 = missing, 2 + k = bucket k).

The encoded frame has one column per sparse feature (the smallest integer type that holds its
indices), one Float32 column per dense feature, an Int8 column :func:`label_column` per task and the
user index :data:`GROUP_COLUMN` (for GAUC).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl

from ..errors import InputError, did_you_mean
from .config import DenseFeatureConfig, SparseFeatureConfig
from .spec import FeatureSpec, SparseFeature

MISSING, RARE, FIRST_ID = 0, 1, 2
GROUP_COLUMN = "group:user"
TRAIN = "__train"
TABLE_LIMIT = 2**24  # integer ids below this are mapped through a dense lookup table
DENSE_TRANSFORMS = ("normalize", "log_normalize", "bucketize")


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def label_column(task: str) -> str:
    """Column of the encoded frame holding the labels of ``task``."""
    return f"label:{task}"


def vocabulary_order(counts: FrameT) -> FrameT:
    """Rows of (``value``, ``count``) by descending count, then ascending value: the index order."""
    return counts.sort(["count", "value"], descending=[True, False])


def index_dtype(num_embeddings: int) -> pl.DataType:
    """The smallest integer type holding indices 0 .. num_embeddings - 1."""
    for dtype, top in ((pl.UInt8(), 2**8), (pl.UInt16(), 2**16), (pl.Int32(), 2**31)):
        if num_embeddings <= top:
            return dtype
    return pl.Int64()


@dataclass
class Vocabulary:
    """Training ids of one sparse feature: ``values[k]`` has index 2 + k; ``rare`` ids index 1."""

    values: pl.Series
    rare: pl.Series
    min_count: int = 1

    @property
    def num_embeddings(self) -> int:
        return len(self.values) + FIRST_ID

    @classmethod
    def from_counts(cls, counts: pl.DataFrame, min_count: int, *, ordered: bool = False) -> "Vocabulary":
        """``counts``: columns ``value``, ``count`` (training occurrences); ``ordered``: already in
        :func:`vocabulary_order`."""
        if not ordered:
            counts = vocabulary_order(counts)
        frequent = counts.get_column("count") >= min_count
        return cls(counts.get_column("value").filter(frequent), counts.get_column("value").filter(~frequent),
                   min_count)

    def lookup(self, values: pl.Expr, missing: list) -> pl.Expr:
        """Index of every value: vocabulary -> 2.., rare -> 1, unseen -> 0, ``missing`` and null -> null.

        Integer ids in ``[0, TABLE_LIMIT)`` are looked up in a dense table (a gather, ~7x faster than
        hashing); other ids through ``replace_strict``."""
        dtype = index_dtype(self.num_embeddings)
        seen = pl.concat([self.values, self.rare])
        if self.values.dtype.is_integer() and len(seen) and 0 <= int(seen.min()) and int(seen.max()) < TABLE_LIMIT:
            top = int(seen.max()) + 1
            table = np.zeros(top + 1, dtype=np.int64)
            table[self.values.to_numpy()] = np.arange(FIRST_ID, self.num_embeddings)
            table[self.rare.to_numpy()] = RARE
            inside = [m for m in missing if 0 <= m < top]
            outside = [m for m in missing if not 0 <= m < top]
            lookup = pl.Series(table).cast(dtype)
            if inside:
                lookup = lookup.scatter(inside, None)
            slot = pl.when((values < 0) | (values >= top)).then(top).otherwise(values)  # top: 0; null stays
            index = pl.lit(lookup).gather(slot)
            return pl.when(values.is_in(outside)).then(None).otherwise(index) if outside else index
        old = pl.concat([seen, pl.Series(missing, dtype=self.values.dtype)])
        new = pl.concat([
            pl.int_range(FIRST_ID, self.num_embeddings, eager=True, dtype=dtype),
            pl.repeat(RARE, len(self.rare), eager=True, dtype=dtype),
            pl.repeat(None, len(missing), eager=True, dtype=dtype),
        ])
        index = values.replace_strict(old, new, default=MISSING, return_dtype=dtype)
        return pl.when(values.is_null()).then(None).otherwise(index)

    def to_dict(self) -> dict:
        return {"dtype": str(self.values.dtype), "min_count": self.min_count,
                "values": self.values.to_list(), "rare": self.rare.to_list()}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        dtype = pl.Int64 if data["dtype"] == "Int64" else pl.String
        return cls(pl.Series("value", data["values"], dtype=dtype), pl.Series("value", data["rare"], dtype=dtype),
                   data["min_count"])


@dataclass
class DenseStats:
    """Training statistics of one dense feature: mean/std (normalize) or bucket edges (bucketize)."""

    transform: str
    mean: float = 0.0
    std: float = 1.0
    edges: list[float] = field(default_factory=list)

    @property
    def num_embeddings(self) -> int:  # bucketize: missing, rare (unused), len(edges) + 1 buckets
        return FIRST_ID + len(self.edges) + 1


@dataclass
class Encoder:
    """Fitted encoding of every configured feature (see the module docstring)."""

    sparse: list[SparseFeatureConfig]
    dense: list[DenseFeatureConfig]
    vocabularies: dict[str, Vocabulary]
    dense_stats: dict[str, DenseStats]

    @property
    def spec(self) -> FeatureSpec:
        """Sparse features in config order, then the bucketised dense ones; dense in config order."""
        sparse = [SparseFeature(f.name, self.vocabularies[f.name].num_embeddings, f.multi_valued, f.pooling)
                  for f in self.sparse]
        sparse += [SparseFeature(f.name, self.dense_stats[f.name].num_embeddings) for f in self._bucketized]
        return FeatureSpec(tuple(sparse), tuple(f.name for f in self.dense if f.transform != "bucketize"))

    @property
    def _bucketized(self) -> list[DenseFeatureConfig]:
        return [f for f in self.dense if f.transform == "bucketize"]

    def expressions(self, frame_schema: pl.Schema) -> list[pl.Expr]:
        """One Polars expression per feature (in spec order) mapping the raw columns to indices/values."""
        exprs = [_sparse_expression(f, self.vocabularies[f.name], frame_schema) for f in self.sparse]
        exprs += [_bucket_expression(f, self.dense_stats[f.name]) for f in self._bucketized]
        exprs += [_dense_expression(f, self.dense_stats[f.name]) for f in self.dense if f.transform != "bucketize"]
        return exprs

    def finish(self, encoded: pl.DataFrame) -> pl.DataFrame:
        """Drop the missing values (nulls) inside the multi-valued columns of ``encoded``."""
        fixes = []
        for f in self.sparse:
            if f.multi_valued and encoded.get_column(f.name).list.eval(pl.element().is_null()).list.any().any():
                fixes.append(pl.col(f.name).list.eval(pl.element().drop_nulls()))
        return encoded.with_columns(fixes) if fixes else encoded

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The encoded features of ``frame`` (any rows with the configured columns)."""
        return self.finish(frame.lazy().select(self.expressions(frame.schema)).collect())

    def to_dict(self) -> dict:
        return {
            "sparse": [dataclasses.asdict(f) for f in self.sparse],
            "dense": [dataclasses.asdict(f) for f in self.dense],
            "vocabularies": {name: v.to_dict() for name, v in self.vocabularies.items()},
            "dense_stats": {name: dataclasses.asdict(s) for name, s in self.dense_stats.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Encoder":
        return cls(
            sparse=[SparseFeatureConfig(**f) for f in data["sparse"]],
            dense=[DenseFeatureConfig(**f) for f in data["dense"]],
            vocabularies={n: Vocabulary.from_dict(v) for n, v in data["vocabularies"].items()},
            dense_stats={n: DenseStats(**s) for n, s in data["dense_stats"].items()},
        )


def fit_encoder(frame: pl.DataFrame, train: pl.Series, sparse: list[SparseFeatureConfig],
                dense: list[DenseFeatureConfig], min_count: int = 1) -> Encoder:
    """Vocabularies and dense statistics from the rows where ``train`` (Boolean) is true."""
    return encoder_from_fit(fit_statistics(frame, train, sparse, dense), sparse, dense, min_count)


@dataclass
class FitStatistics:
    """What fitting counts on training rows, mergeable over chunks of them (:meth:`merge`):
    ``counts`` per sparse feature (``value``, ``count``), ``moments`` per normalised dense feature
    (rows with a value, mean, sum of squared deviations), ``values`` of the bucketised ones (the
    chunks' arrays, joined once when fitting)."""

    counts: list[pl.DataFrame]
    moments: dict[str, tuple[int, float, float]]
    values: list[list[np.ndarray]]

    def merge(self, other: "FitStatistics") -> "FitStatistics":
        counts = [pl.concat([a, b]).group_by("value").agg(pl.col("count").sum())
                  for a, b in zip(self.counts, other.counts)]
        moments = {name: _merge_moments(self.moments[name], other.moments[name]) for name in self.moments}
        return FitStatistics(counts, moments, [a + b for a, b in zip(self.values, other.values)])


def fit_statistics(frame: pl.DataFrame, train: pl.Series, sparse: list[SparseFeatureConfig],
                   dense: list[DenseFeatureConfig]) -> FitStatistics:
    """The statistics of the rows of ``frame`` where ``train`` is true."""
    for f in dense:
        if f.transform not in DENSE_TRANSFORMS:
            raise InputError(f"unknown transform '{f.transform}' of dense feature '{f.name}'",
                             key="data.dense", hint=did_you_mean(f.transform, DENSE_TRANSFORMS))
    schema = frame.schema

    def rows(columns: list[str]) -> pl.LazyFrame:  # the training rows of ``columns`` only
        return frame.lazy().select(*columns, pl.lit(train).alias(TRAIN)).filter(pl.col(TRAIN))

    count_queries = [_count_query(rows(f.source_columns), f, schema) for f in sparse]
    moment_features = [f for f in dense if f.transform != "bucketize"]
    moments = rows([f.source_column for f in moment_features]).select(
        pl.lit(0).alias("rows"), *(e for f in moment_features for e in _moments(f))).head(1)
    bucket_queries = [rows([f.source_column]).select(pl.col(f.source_column).drop_nulls().cast(pl.Float64))
                      for f in dense if f.transform == "bucketize"]
    results = pl.collect_all([*count_queries, moments, *bucket_queries])
    row = results[len(sparse)].row(0, named=True)
    return FitStatistics(
        counts=results[: len(sparse)],
        moments={f.name: (int(row[f"{f.name}:n"]), row[f"{f.name}:mean"], row[f"{f.name}:m2"])
                 for f in moment_features},
        values=[[r.to_series().to_numpy()] for r in results[len(sparse) + 1:]],
    )


def encoder_from_fit(fit: FitStatistics, sparse: list[SparseFeatureConfig], dense: list[DenseFeatureConfig],
                     min_count: int = 1) -> Encoder:
    """The encoder of the training rows ``fit`` describes."""
    vocabularies = {f.name: Vocabulary.from_counts(c, f.min_count or min_count) for f, c in zip(sparse, fit.counts)}
    stats: dict[str, DenseStats] = {}
    for f in dense:
        if f.transform == "bucketize":
            continue
        n, mean, m2 = fit.moments[f.name]
        std = (m2 / (n - 1)) ** 0.5 if n > 1 and m2 is not None else None
        stats[f.name] = DenseStats(f.transform, float(mean) if n and mean is not None else 0.0,
                                   float(std) if std is not None and std > 0 else 1.0)
    for f, values in zip([f for f in dense if f.transform == "bucketize"], fit.values):
        stats[f.name] = DenseStats(f.transform, edges=_quantile_edges(np.concatenate(values), f))
    return Encoder(list(sparse), list(dense), vocabularies, stats)


def _merge_moments(a: tuple[int, float, float], b: tuple[int, float, float]) -> tuple[int, float, float]:
    """(n, mean, Σ(x - mean)²) of two sets of values from each set's (Chan et al.'s parallel update)."""
    (na, ma, qa), (nb, mb, qb) = a, b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, qa + qb + delta * delta * na * nb / n


# --- sparse features ------------------------------------------------------------------------------
def _value_dtype(feature: SparseFeatureConfig, schema: pl.Schema) -> pl.DataType:
    """Int64 when every source column holds integers, else String (a separator string: String)."""
    if feature.separator is not None:
        return pl.String()
    dtypes = [schema[c] for c in feature.source_columns]
    return pl.Int64() if all(d.is_integer() for d in dtypes) else pl.String()


def _missing(feature: SparseFeatureConfig, dtype: pl.DataType) -> list:
    """The feature's ``missing_values`` in the column's type ("" too for separator strings)."""
    values = list(dict.fromkeys([*feature.missing_values, *([""] if feature.separator is not None else [])]))
    if dtype == pl.String:
        return values
    out = []
    for v in values:
        try:
            out.append(int(str(v).strip()))
        except ValueError:
            continue  # text can never equal an integer id
    return out


def _tokens(feature: SparseFeatureConfig, schema: pl.Schema) -> list[pl.Expr]:
    """The raw values of the feature as one expression per source column, in the vocabulary's type."""
    dtype = _value_dtype(feature, schema)
    if feature.separator is not None:
        return [pl.col(feature.source_columns[0]).str.split(feature.separator)]
    return [pl.col(c).cast(dtype) for c in feature.source_columns]


def _count_query(train: pl.LazyFrame, feature: SparseFeatureConfig, schema: pl.Schema) -> pl.LazyFrame:
    _check_columns(feature, schema)
    missing = _missing(feature, _value_dtype(feature, schema))
    parts = [train.select(token.alias("value")) for token in _tokens(feature, schema)]
    values = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
    if feature.separator is not None:
        values = values.explode("value", empty_as_null=False, keep_nulls=False)
    return (values.filter(pl.col("value").is_not_null() & ~pl.col("value").is_in(missing))
            .group_by("value").agg(pl.len().cast(pl.Int64).alias("count")).pipe(vocabulary_order))


def _sparse_expression(feature: SparseFeatureConfig, vocabulary: Vocabulary, schema: pl.Schema) -> pl.Expr:
    missing = _missing(feature, _value_dtype(feature, schema))
    if feature.separator is not None:  # "12,65" -> [i12, i65]; a null string -> [""] -> [] by finish()
        column = pl.col(feature.source_columns[0]).fill_null("").str.split(feature.separator)
        return column.list.eval(vocabulary.lookup(pl.element(), missing)).alias(feature.name)
    indices = [vocabulary.lookup(t, missing) for t in _tokens(feature, schema)]
    if feature.columns:  # hist_1..hist_10 -> one list; nulls and padding removed by finish()
        return pl.concat_arr(indices).arr.to_list().alias(feature.name)
    return indices[0].fill_null(MISSING).alias(feature.name)


def _check_columns(feature: SparseFeatureConfig, schema: pl.Schema) -> None:
    for column in feature.source_columns:
        if column not in schema:
            raise InputError(f"sparse feature '{feature.name}' reads a column the data does not have",
                             column=column, key="data.sparse")
    if feature.separator is not None and schema[feature.source_columns[0]] != pl.String:
        raise InputError(f"multi-valued feature '{feature.name}' splits text on {feature.separator!r}, but the "
                         f"column holds {schema[feature.source_columns[0]]}", column=feature.source_columns[0],
                         key="data.sparse")


# --- dense features -------------------------------------------------------------------------------
def _raw_dense(feature: DenseFeatureConfig) -> pl.Expr:
    x = pl.col(feature.source_column).cast(pl.Float64)
    return x.clip(lower_bound=0.0).log1p() if feature.transform == "log_normalize" else x


def _moments(feature: DenseFeatureConfig) -> list[pl.Expr]:
    x = _raw_dense(feature).fill_nan(None)
    return [x.count().alias(f"{feature.name}:n"), x.mean().alias(f"{feature.name}:mean"),
            ((x - x.mean()) ** 2).sum().alias(f"{feature.name}:m2")]


def _dense_expression(feature: DenseFeatureConfig, stats: DenseStats) -> pl.Expr:
    z = (_raw_dense(feature) - stats.mean) / stats.std
    return z.fill_null(0.0).fill_nan(0.0).cast(pl.Float32).alias(feature.name)


def _quantile_edges(values: np.ndarray, feature: DenseFeatureConfig) -> list[float]:
    """Distinct inner quantiles of the training values: at most ``num_buckets - 1`` edges."""
    if feature.num_buckets < 2:
        raise InputError(f"num_buckets of '{feature.name}' must be at least 2, got {feature.num_buckets}",
                         key="data.dense")
    values = values[~np.isnan(values)]
    if values.size == 0:
        return []
    levels = np.linspace(0.0, 1.0, feature.num_buckets + 1)[1:-1]
    return [float(e) for e in np.unique(np.quantile(values, levels))]


def _bucket_expression(feature: DenseFeatureConfig, stats: DenseStats) -> pl.Expr:
    """Bucket k (``edges[k-1] <= x < edges[k]``) -> index 2 + k; missing -> 0."""
    x = pl.col(feature.source_column).cast(pl.Float64)
    dtype = index_dtype(stats.num_embeddings)
    bucket = pl.lit(pl.Series(stats.edges, dtype=pl.Float64)).search_sorted(x, side="right")
    index = (bucket + FIRST_ID).cast(dtype)
    return pl.when(x.is_null() | x.is_nan()).then(pl.lit(MISSING, dtype)).otherwise(index).alias(feature.name)
