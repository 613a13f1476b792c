"""The ``blocks`` reader: every row once an epoch, disjoint equal rank parts, block-local shuffling,
exact mid-epoch resume, bounded reading; and the same batches from a cached Parquet file as from memory."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys_hmtl.data.batches import BatchStream, EncodedArrays
from recsys_hmtl.data.block_stream import BlockStream
from recsys_hmtl.data.encode import GROUP_COLUMN, label_column
from recsys_hmtl.data.spec import FeatureSpec, SparseFeature
from recsys_hmtl.data.split_source import EncodedSplit

FEATURES = FeatureSpec(sparse=(SparseFeature("row", 10_000), SparseFeature("tag", 9, multi_valued=True)),
                       dense=("x",))
TASKS = ["t"]


def _split(rows: int) -> pl.DataFrame:
    """Feature ``row`` holds the row's own position, so a batch says which rows it read."""
    index = np.arange(rows)
    return pl.DataFrame({
        "row": pl.Series(index, dtype=pl.Int32),
        "tag": pl.Series([[int(i % 9)] * int(i % 3) for i in index], dtype=pl.List(pl.Int32)),
        "x": pl.Series(index * 0.5, dtype=pl.Float32),
        label_column("t"): pl.Series(index % 2, dtype=pl.Int8),
        GROUP_COLUMN: pl.Series(index // 7, dtype=pl.Int32),
    })


def _rows(batch) -> list[int]:
    return batch.sparse["row"].values().tolist()


def _stream(source, batch_size=16, **options) -> BlockStream:
    options = {"block_rows": 10, "window_blocks": 3, **options}
    return BlockStream(source, FEATURES, TASKS, batch_size, **options)


@pytest.mark.parametrize("rows", [1, 95, 160])
def test_an_epoch_reads_every_row_once_in_batches_of_the_asked_size(rows):
    stream = _stream(EncodedSplit(frame=_split(rows)), shuffle=True, seed=3)
    batches = list(stream)
    assert len(batches) == len(stream) == -(-rows // 16)
    assert all(b.batch_size == 16 for b in batches[:-1])
    read = [r for b in batches for r in _rows(b)]
    assert sorted(read) == list(range(rows))
    if rows > 30:
        assert read != sorted(read)  # shuffled


def test_a_batch_carries_its_own_rows_features_labels_and_groups():
    frame = _split(95)
    batch = next(iter(_stream(EncodedSplit(frame=frame), shuffle=True, seed=1)))
    rows = _rows(batch)
    expected = EncodedArrays(frame, FEATURES, TASKS).batch(np.array(rows))
    assert batch.sparse["tag"].values().tolist() == expected.sparse["tag"].values().tolist()
    assert batch.dense.tolist() == expected.dense.tolist()
    assert batch.labels.tolist() == expected.labels.tolist() and batch.groups.tolist() == expected.groups.tolist()


def test_without_shuffling_the_batches_are_those_of_the_memory_reader():
    frame = _split(95)
    ours = list(_stream(EncodedSplit(frame=frame), batch_size=20))
    memory = list(BatchStream(EncodedArrays(frame, FEATURES, TASKS), 20))
    assert [_rows(b) for b in ours] == [_rows(b) for b in memory]


def test_the_shuffle_is_block_local_and_set_by_seed_and_epoch():
    source = EncodedSplit(frame=_split(160))
    stream = _stream(source, batch_size=30, shuffle=True, seed=5)
    first = [_rows(b) for b in stream]
    assert first == [_rows(b) for b in _stream(source, batch_size=30, shuffle=True, seed=5)]
    stream.set_epoch(1)
    assert first != [_rows(b) for b in stream]
    # Each window of 3 blocks (30 rows, one batch here) holds whole blocks of 10 consecutive rows.
    for rows in first[:-1]:
        assert len(rows) == 30 and sorted(rows) == sorted(r for b in {r // 10 for r in rows}
                                                           for r in range(10 * b, 10 * b + 10))
    assert len(first[-1]) == 10 and len({r // 10 for r in first[-1]}) == 1


@pytest.mark.parametrize("remainder", ["drop", "pad"])
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_read_disjoint_equal_parts(world, remainder):
    rows = 101
    source = EncodedSplit(frame=_split(rows))
    parts = [[r for b in _stream(source, shuffle=True, seed=2, rank=k, world_size=world, remainder=remainder)
              for r in _rows(b)] for k in range(world)]
    assert len({len(p) for p in parts}) == 1
    lens = {len(_stream(source, rank=k, world_size=world, remainder=remainder)) for k in range(world)}
    assert len(lens) == 1
    read = [r for p in parts for r in p]
    if remainder == "drop":
        assert len(read) == len(set(read)) == rows // world * world
    else:
        assert set(read) == set(range(rows)) and len(read) == -(-rows // world) * world


@pytest.mark.parametrize("drop_last", [False, True])
def test_resuming_at_batch_k_gives_the_rest_of_the_epoch(drop_last):
    source = EncodedSplit(frame=_split(157))
    stream = _stream(source, batch_size=12, shuffle=True, seed=9, drop_last=drop_last)
    stream.set_epoch(2)
    whole = [_rows(b) for b in stream.batches()]
    assert len(whole) == len(stream)
    for start in (1, 2, 3, 7, len(whole) - 1):
        assert [_rows(b) for b in stream.batches(start)] == whole[start:]


def test_a_cached_file_is_read_window_by_window(tmp_path):
    path = tmp_path / "train.parquet"
    _split(160).write_parquet(path, row_group_size=10)
    source = EncodedSplit.open(path)
    assert len(source) == 160 and source._frame is None
    reads = []
    original = source.read
    source.read = lambda start, length: reads.append(length) or original(start, length)
    from_file = [_rows(b) for b in _stream(source, shuffle=True, seed=4)]
    assert source._frame is None  # never read whole
    assert max(reads) <= 10 and sum(reads) == 160
    from_memory = [_rows(b) for b in _stream(EncodedSplit(frame=_split(160)), shuffle=True, seed=4)]
    assert from_file == from_memory


@pytest.mark.parametrize("fields,key", [({"reader": "blockz"}, "data.reader"), ({"block_rows": 0}, "data.block_rows"),
                                        ({"window_blocks": 0}, "data.window_blocks")])
def test_reader_settings_are_checked_before_any_file_is_read(tmp_path, fields, key):
    from recsys_hmtl.data.config import DataConfig
    from recsys_hmtl.data.presets import resolve
    from recsys_hmtl.errors import InputError

    with pytest.raises(InputError) as info:
        resolve(DataConfig(dataset="kuairand", root=str(tmp_path / "absent"), **fields), [])
    assert info.value.key == key
    if key == "data.reader":
        assert "blocks" in str(info.value)  # did you mean
