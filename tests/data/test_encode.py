"""Encoding fitted on the training rows only: vocabularies, multi-valued lists, dense transforms, spec."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from recsys_hmtl.data.config import DenseFeatureConfig, SparseFeatureConfig
from recsys_hmtl.data.encode import (
    TABLE_LIMIT, Encoder, Vocabulary, fit_encoder, index_dtype,
)
from recsys_hmtl.data.spec import SparseFeature
from recsys_hmtl.errors import InputError


def _fit(frame: pl.DataFrame, train_rows: int, sparse=(), dense=(), min_count: int = 1) -> Encoder:
    train = pl.Series([True] * train_rows + [False] * (frame.height - train_rows))
    return fit_encoder(frame, train, list(sparse), list(dense), min_count)


def test_vocabulary_indices_reserved_rare_and_order():
    # train: a x3, c x2, b x2, z x1 -> by count then value: a=2, b=3, c=4; z (count 1 < 2) rare=1.
    # The last three rows are not training rows: "q" is unseen -> 0; null -> 0; "z" -> rare 1.
    frame = pl.DataFrame({"f": ["a", "c", "b", "a", "z", "c", "b", "a", "q", None, "z"]})
    enc = _fit(frame, 8, [SparseFeatureConfig("f")], min_count=2)
    assert enc.vocabularies["f"].values.to_list() == ["a", "b", "c"]
    assert enc.vocabularies["f"].rare.to_list() == ["z"]
    assert enc.transform(frame)["f"].to_list() == [2, 4, 3, 2, 1, 4, 3, 2, 0, 0, 1]
    assert enc.spec.sparse == (SparseFeature("f", num_embeddings=5),)


def test_vocabulary_sees_only_the_training_rows():
    frame = pl.DataFrame({"f": [5, 5, 6, 7, 7, 7]})  # 7 only outside training
    enc = _fit(frame, 3, [SparseFeatureConfig("f")])
    assert enc.transform(frame)["f"].to_list() == [2, 2, 3, 0, 0, 0]
    assert enc.spec.sparse[0].num_embeddings == 4


def test_feature_min_count_overrides_the_default():
    frame = pl.DataFrame({"f": [1, 1, 2], "g": [1, 1, 2]})
    enc = _fit(frame, 3, [SparseFeatureConfig("f", min_count=1), SparseFeatureConfig("g")], min_count=2)
    out = enc.transform(frame)
    assert out["f"].to_list() == [2, 2, 3] and out["g"].to_list() == [2, 2, 1]


@pytest.mark.parametrize("offset", [0, TABLE_LIMIT], ids=["lookup-table", "hash"])
def test_integer_ids_with_missing_values_and_negatives(offset):
    # -1 is declared missing -> 0 and never in the vocabulary; -5 (not declared) is an id like any other.
    ids = [offset + 3, offset + 3, -1, -5, offset + 9, -1, offset + 10, None]
    frame = pl.DataFrame({"f": ids}, schema={"f": pl.Int64})
    enc = _fit(frame, 5, [SparseFeatureConfig("f", missing_values=["-1"])])
    assert enc.vocabularies["f"].values.to_list() == [offset + 3, -5, offset + 9]  # count 2, then by value
    assert enc.transform(frame)["f"].to_list() == [2, 2, 0, 3, 4, 0, 0, 0]


def test_lookup_table_and_hash_paths_agree_on_random_ids():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 500, 5000)
    frames = [pl.DataFrame({"f": small}), pl.DataFrame({"f": small + TABLE_LIMIT})]
    encoded = [_fit(f, 4000, [SparseFeatureConfig("f", min_count=3)]).transform(f)["f"] for f in frames]
    assert encoded[0].equals(encoded[1])


def test_separator_multi_valued_feature():
    # train tags: 12 x3, 65 x2, 7 x1; "0" is padding. Indices: 12=2, 65=3, 7=4.
    frame = pl.DataFrame({"tag": ["12,65", "12", "65,12,0", "7", "", None, "99,12", "0"]})
    enc = _fit(frame, 4, [SparseFeatureConfig("tag", separator=",", missing_values=["0"])])
    lists = enc.transform(frame)["tag"]
    assert lists.dtype == pl.List(pl.UInt8)
    # empty string, null and padding-only rows are empty lists; unseen 99 stays as 0
    assert lists.to_list() == [[2, 3], [2], [3, 2], [4], [], [], [0, 2], []]
    assert enc.spec.sparse == (SparseFeature("tag", 5, multi_valued=True),)


def test_column_multi_valued_feature_drops_padding_and_nulls():
    frame = pl.DataFrame({"h1": [5, 6, 0, 5], "h2": [6, 0, 0, 8], "h3": [None, 0, 0, 5]})
    feature = SparseFeatureConfig("hist", columns=["h1", "h2", "h3"], missing_values=["0"], pooling="mean")
    enc = _fit(frame, 3, [feature])
    # train ids (padding 0 and null excluded): 5 x1, 6 x2 -> 6=2, 5=3; row 4: 8 unseen -> 0
    assert enc.transform(frame)["hist"].to_list() == [[3, 2], [2], [], [3, 0, 3]]
    assert enc.spec.sparse == (SparseFeature("hist", 4, multi_valued=True, pooling="mean"),)


def test_normalize_with_training_statistics_only():
    # train x = 1, 2, 3: mean 2, sample std 1. Row 4 (x = 10) is not training; row 5 is missing -> 0.
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, None]})
    enc = _fit(frame, 3, dense=[DenseFeatureConfig("x")])
    assert enc.transform(frame)["x"].to_list() == [-1.0, 0.0, 1.0, 8.0, 0.0]
    assert enc.transform(frame)["x"].dtype == pl.Float32
    assert enc.spec.dense == ("x",)


def test_log_normalize():
    # log1p of train values e-1, e^2-1, e^3-1 = 1, 2, 3 -> mean 2, std 1; a negative value clips to 0.
    e = math.e
    frame = pl.DataFrame({"x": [e - 1, e**2 - 1, e**3 - 1, -4.0]})
    enc = _fit(frame, 3, dense=[DenseFeatureConfig("x", transform="log_normalize")])
    assert enc.transform(frame)["x"].to_list() == pytest.approx([-1.0, 0.0, 1.0, -2.0], abs=1e-6)


def test_constant_feature_does_not_divide_by_zero():
    frame = pl.DataFrame({"x": [4.0, 4.0, 5.0]})
    enc = _fit(frame, 2, dense=[DenseFeatureConfig("x")])
    assert enc.transform(frame)["x"].to_list() == [0.0, 0.0, 1.0]


def test_bucketize_uses_training_quantiles_and_becomes_sparse():
    # train 1..8, 4 buckets: inner quantiles at 0.25/0.5/0.75 = 2.75, 4.5, 6.25 (linear interpolation).
    frame = pl.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8, 100.0, None, 4.5]})
    enc = _fit(frame, 8, [SparseFeatureConfig("f", column="x")],
               [DenseFeatureConfig("b", column="x", transform="bucketize", num_buckets=4)])
    assert enc.dense_stats["b"].edges == [2.75, 4.5, 6.25]
    # bucket k -> 2 + k; missing -> 0; an edge value goes to the bucket above it
    assert enc.transform(frame)["b"].to_list() == [2, 2, 3, 3, 4, 4, 5, 5, 5, 0, 4]
    assert enc.spec.sparse[1] == SparseFeature("b", num_embeddings=2 + 4)
    assert enc.spec.dense == ()


def test_spec_order_and_index_dtypes():
    frame = pl.DataFrame({"big": np.arange(300), "small": np.arange(300) % 3, "x": np.ones(300)})
    enc = _fit(frame, 300, [SparseFeatureConfig("big"), SparseFeatureConfig("small")],
               [DenseFeatureConfig("x"), DenseFeatureConfig("xb", column="x", transform="bucketize")])
    assert enc.spec.sparse_names == ["big", "small", "xb"]
    out = enc.transform(frame)
    assert out.columns == ["big", "small", "xb", "x"]
    assert out.schema["big"] == pl.UInt16 and out.schema["small"] == pl.UInt8
    assert [index_dtype(n) for n in (256, 257, 65537, 2**31 + 1)] == [pl.UInt8, pl.UInt16, pl.Int32, pl.Int64]


def test_encoder_survives_json():
    frame = pl.DataFrame({"s": ["a", "b", "a", None], "i": [7, 8, 7, 9], "t": ["1,2", "2", None, "3"],
                          "x": [1.0, 2.0, 3.0, 4.0]})
    sparse = [SparseFeatureConfig("s"), SparseFeatureConfig("i"), SparseFeatureConfig("t", separator=",")]
    dense = [DenseFeatureConfig("x"), DenseFeatureConfig("xb", column="x", transform="bucketize", num_buckets=2)]
    enc = _fit(frame, 3, sparse, dense)
    restored = Encoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert restored.spec == enc.spec
    assert restored.transform(frame).equals(enc.transform(frame))


def test_vocabulary_from_counts_orders_ties_by_value():
    counts = pl.DataFrame({"value": [30, 10, 20, 40], "count": [2, 5, 5, 1]})
    vocab = Vocabulary.from_counts(counts, min_count=2)
    assert vocab.values.to_list() == [10, 20, 30] and vocab.rare.to_list() == [40]
    assert vocab.num_embeddings == 5


def test_unknown_dense_transform():
    frame = pl.DataFrame({"x": [1.0]})
    with pytest.raises(InputError, match="unknown transform 'bucketise'.*did you mean 'bucketize'"):
        _fit(frame, 1, dense=[DenseFeatureConfig("x", transform="bucketise")])


def test_separator_on_a_numeric_column_is_an_input_error():
    frame = pl.DataFrame({"tag": [1, 2]})
    with pytest.raises(InputError, match="splits text on ','") as err:
        _fit(frame, 2, [SparseFeatureConfig("tag", separator=",")])
    assert err.value.column == "tag"
