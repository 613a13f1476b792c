"""KJT batches against a slow row-by-row reference; rank shards; per-epoch shuffling."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from recsys_hmtl.data import synthetic
from recsys_hmtl.data.batches import BatchStream, EncodedArrays, segment_positions
from recsys_hmtl.data.config import DataConfig
from recsys_hmtl.data.encode import GROUP_COLUMN, label_column
from recsys_hmtl.data.pipeline import prepare
from recsys_hmtl.data.spec import FeatureSpec, SparseFeature

TASKS = ["b", "a"]  # priority order differs from the column order below
FEATURES = FeatureSpec(
    sparse=(SparseFeature("u", 6), SparseFeature("tag", 9, multi_valued=True), SparseFeature("item", 70_000),
            SparseFeature("hist", 5, multi_valued=True, pooling="mean")),
    dense=("x", "y"),
)


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "u": pl.Series([2, 3, 0, 5, 4, 2], dtype=pl.UInt8),
        "tag": pl.Series([[2, 3], [], [8], [4, 0, 5], [], [7]], dtype=pl.List(pl.UInt8)),
        "item": pl.Series([65_000, 2, 3, 0, 40_000, 9], dtype=pl.Int32),
        "hist": pl.Series([[], [2], [3, 4], [], [], [2, 2, 2]], dtype=pl.List(pl.UInt8)),
        "x": pl.Series([0.5, -1.0, 2.0, 0.0, 1.5, 3.0], dtype=pl.Float32),
        "y": pl.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=pl.Float32),
        label_column("a"): pl.Series([1, 0, 0, 1, 1, 0], dtype=pl.Int8),
        label_column("b"): pl.Series([0, 0, 1, 1, 0, 1], dtype=pl.Int8),
        GROUP_COLUMN: pl.Series([10, 11, 10, 12, 11, 13], dtype=pl.Int32),
    })


def _reference(frame: pl.DataFrame, features: FeatureSpec, tasks: list[str], rows: list[int]):
    """The KJT contents built the slow way: key by key, row by row."""
    values, lengths = [], []
    for feature in features.sparse:
        column = frame.get_column(feature.name).to_list()
        for r in rows:
            ids = column[r] if feature.multi_valued else [column[r]]
            lengths.append(len(ids))
            values.extend(ids)
    dense = [[frame[name][r] for name in features.dense] for r in rows]
    labels = [[float(frame[label_column(t)][r]) for t in tasks] for r in rows]
    groups = [frame[GROUP_COLUMN][r] for r in rows]
    return values, lengths, dense, labels, groups


def _assert_matches_reference(batch, frame, features, tasks, rows):
    values, lengths, dense, labels, groups = _reference(frame, features, tasks, rows)
    assert batch.sparse.keys() == features.sparse_names
    assert batch.sparse.values().dtype == torch.int64 and batch.sparse.lengths().dtype == torch.int32
    assert batch.sparse.values().tolist() == values
    assert batch.sparse.lengths().tolist() == lengths
    assert batch.sparse.stride() == len(rows)
    assert batch.dense.dtype == torch.float32 and batch.dense.tolist() == dense
    assert batch.labels.dtype == torch.float32 and batch.labels.tolist() == labels
    assert batch.groups.dtype == torch.int64 and batch.groups.tolist() == groups


@pytest.mark.parametrize("rows", [[0, 1, 2, 3, 4, 5], [4, 0, 3], [1], [1, 4]], ids=str)
def test_batch_equals_the_row_by_row_reference(rows):
    frame = _frame()
    batch = EncodedArrays(frame, FEATURES, TASKS).batch(np.array(rows))
    _assert_matches_reference(batch, frame, FEATURES, TASKS, rows)


def test_kjt_per_key_view():
    batch = EncodedArrays(_frame(), FEATURES, TASKS).batch(np.array([3, 1]))
    per_key = batch.sparse.to_dict()
    assert per_key["u"].to_dense() == [torch.tensor([5]), torch.tensor([3])]
    assert [t.tolist() for t in per_key["tag"].to_dense()] == [[4, 0, 5], []]
    assert [t.tolist() for t in per_key["hist"].to_dense()] == [[], [2]]


def test_torchrec_pools_each_rows_ids():
    """The KJT feeds an EmbeddingBagCollection: each row pools exactly its own ids."""
    torch.manual_seed(0)
    tables = [EmbeddingBagConfig(name=f.name, num_embeddings=f.num_embeddings, embedding_dim=3,
                                 feature_names=[f.name]) for f in FEATURES.sparse]
    ebc = EmbeddingBagCollection(tables=tables)
    rows = [3, 0, 5]
    pooled = ebc(EncodedArrays(_frame(), FEATURES, TASKS).batch(np.array(rows)).sparse).to_dict()
    weights = {f.name: ebc.embedding_bags[f.name].weight.detach() for f in FEATURES.sparse}
    frame = _frame()
    for feature in FEATURES.sparse:
        for i, r in enumerate(rows):
            ids = frame[feature.name][r]
            ids = ids.to_list() if feature.multi_valued else [ids]
            expected = weights[feature.name][ids].sum(0) if ids else torch.zeros(3)
            assert torch.allclose(pooled[feature.name][i], expected, atol=1e-6)


def test_segment_positions():
    # starts 5, 0, 9 with lengths 2, 0, 3 -> 5 6 | | 9 10 11
    assert segment_positions(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]
    assert segment_positions(np.array([1]), np.array([0])).tolist() == []


def _arrays(n: int) -> EncodedArrays:
    frame = pl.DataFrame({"u": np.arange(n) % 7, label_column("a"): np.zeros(n, dtype=np.int8),
                          GROUP_COLUMN: np.arange(n)})
    return EncodedArrays(frame, FeatureSpec((SparseFeature("u", 7),)), ["a"])


@pytest.mark.parametrize("n,world", [(10, 3), (11, 3), (12, 4), (2, 3), (25, 1)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_rank_shards_are_disjoint_cover_and_have_equal_batches(n, world, shuffle):
    arrays = _arrays(n)
    padded = [BatchStream(arrays, 2, shuffle=shuffle, seed=3, rank=r, world_size=world, remainder="pad")
              for r in range(world)]
    shards = [s.shard() for s in padded]
    assert len({len(s) for s in shards}) == 1 and len({len(s) for s in padded}) == 1
    seen = np.concatenate(shards)
    assert set(seen.tolist()) == set(range(n))  # covering
    assert len(seen) - n == (-n) % world  # only the padding repeats
    dropped = [BatchStream(arrays, 2, shuffle=shuffle, seed=3, rank=r, world_size=world) for r in range(world)]
    rows = np.concatenate([s.shard() for s in dropped])
    assert len(rows) == len(set(rows.tolist())) == n // world * world  # disjoint, n mod world left out
    counts = [sum(1 for _ in s) for s in dropped]
    assert counts == [len(dropped[0])] * world  # every rank runs the same number of steps
    read = np.concatenate([b.groups.numpy() for s in dropped for b in s]) if rows.size else np.empty(0)
    assert sorted(read.tolist()) == sorted(rows.tolist())  # the batches carry exactly the shard rows


def test_shuffle_is_reproducible_by_seed_and_epoch():
    arrays = _arrays(50)
    stream = BatchStream(arrays, 8, shuffle=True, seed=11)
    first = stream.shard()
    assert np.array_equal(first, BatchStream(arrays, 8, shuffle=True, seed=11).shard())
    assert sorted(first.tolist()) == list(range(50)) and not np.array_equal(first, np.arange(50))
    stream.set_epoch(1)
    assert not np.array_equal(stream.shard(), first)
    assert np.array_equal(stream.shard(epoch=0), first)
    assert not np.array_equal(BatchStream(arrays, 8, shuffle=True, seed=12).shard(), first)
    assert np.array_equal(BatchStream(arrays, 8).shard(), np.arange(50))


def test_batch_sizes_and_drop_last():
    arrays = _arrays(10)
    assert [b.batch_size for b in BatchStream(arrays, 4)] == [4, 4, 2]
    assert [b.batch_size for b in BatchStream(arrays, 4, drop_last=True)] == [4, 4]
    assert len(BatchStream(arrays, 4)) == 3 and len(BatchStream(arrays, 4, drop_last=True)) == 2


def test_bad_stream_arguments():
    with pytest.raises(ValueError, match="rank 3 of world_size 3"):
        BatchStream(_arrays(5), 2, rank=3, world_size=3)
    with pytest.raises(ValueError, match="remainder"):
        BatchStream(_arrays(5), 2, remainder="wrap")


def test_prepared_qk_video_batches_match_the_reference(tmp_path):
    """End to end: QK-Video file -> prepare (history as a multi-valued feature) -> stream -> KJT."""
    synthetic.write_qk_video(tmp_path / "ctr_data_1M.csv", rows=3000, seed=2)
    prepared = prepare(DataConfig(dataset="qk_video", root=str(tmp_path)), [], use_cache=False)
    assert prepared.features.sparse_names == ["user_id", "item_id", "video_category", "gender", "age", "hist"]
    assert prepared.features.sparse[-1].multi_valued
    train = prepared.splits["train"]
    assert isinstance(train.schema["hist"], pl.List)
    assert not train["hist"].explode(empty_as_null=False, keep_nulls=False).is_null().any()
    stream = prepared.stream("train", 64, shuffle=True, seed=5)
    batch = next(iter(stream))
    _assert_matches_reference(batch, train, prepared.features, prepared.tasks, stream.shard()[:64].tolist())
    assert prepared.tasks == ["like", "click"]


def test_genuine_kuairand_sample_end_to_end(shared_data, tmp_path):
    """The genuine random-log head joined to the Pure side files (different id spaces: most side rows are
    missing, which is what the left join must survive) -> date split -> encoded -> KJT batches."""
    for name, source in (("log_random_4_22_to_5_08_pure.csv", "log_random_4_22_to_5_08_1k.head.csv"),
                         ("user_features_pure.csv", "user_features_pure.csv"),
                         ("video_features_basic_pure.csv", "video_features_basic_pure.csv")):
        (tmp_path / name).symlink_to(shared_data / "kuairand" / source)
    cfg = DataConfig(dataset="kuairand", variant="pure", root=str(tmp_path),
                     files=["log_random_4_22_to_5_08_pure.csv"], cache_dir=str(tmp_path / "cache"))
    prepared = prepare(cfg, [])
    assert sum(prepared.report["rows"].values()) == 13_871
    assert prepared.report["split"]["test_start"] == 20220507  # the last two dates of 04-22..05-08 are test
    assert prepared.tasks[0] == "is_click" and len(prepared.tasks) == 8
    assert prepared.report["tasks"]["is_like"]["train"]["positives"] + sum(
        prepared.report["tasks"]["is_like"][s]["positives"] for s in ("val", "test")) == 25  # README: 25 likes
    stream = prepared.stream("test", 128)
    batch = next(iter(stream))
    _assert_matches_reference(batch, prepared.splits["test"], prepared.features, prepared.tasks, list(range(128)))
    assert "tag" in prepared.features.sparse_names and prepared.features.dense_dim == 5
