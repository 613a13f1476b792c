"""Chunked preparation (``data.reader: blocks``) gives what the in-memory one gives: the same encoded
splits, vocabularies and report on every data set shape, the same errors (file and row) for bad input,
and leaves no working files behind, whatever the outcome."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

import recsys_hmtl.data.chunked as chunked
from recsys_hmtl.data import synthetic
from recsys_hmtl.data.config import DataConfig, DenseFeatureConfig, SparseFeatureConfig, TaskConfig
from recsys_hmtl.data.pipeline import prepare
from recsys_hmtl.data.split import SPLITS
from recsys_hmtl.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
GENUINE = ROOT.parent / "shared" / "data"
LOG = "log_standard_4_22_to_5_08_1k.csv"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 700)


def _both(cfg: DataConfig, tasks: list[TaskConfig] | None = None, tmp: Path | None = None):
    """The data prepared in memory and chunk by chunk (each into its own cache)."""
    out = []
    for reader in ("memory", "blocks"):
        cache = Path(tmp or cfg.root) / f"cache-{reader}"
        shutil.rmtree(cache, ignore_errors=True)
        out.append(prepare(DataConfig(**{**vars(cfg), "reader": reader, "cache_dir": str(cache)}), tasks or []))
    return out


def _assert_same(memory, blocks) -> None:
    assert memory.features == blocks.features and memory.tasks == blocks.tasks
    for split in SPLITS:
        a, b = memory.splits[split], blocks.splits[split]
        assert a.schema == b.schema and a.height == b.height, split
        for column in a.columns:
            if a.schema[column] == pl.Float32:  # dense: statistics merged over chunks, equal to rounding
                assert (a[column] - b[column]).abs().max() <= 1e-6, column
            else:
                assert a[column].equals(b[column]), (split, column)
    ours, theirs = memory.encoder().to_dict(), blocks.encoder().to_dict()
    assert ours["vocabularies"] == theirs["vocabularies"]
    for name, stats in ours["dense_stats"].items():
        assert theirs["dense_stats"][name] == pytest.approx(stats, rel=1e-12), name
    skip = {"cache", "cache_hit", "cache_dir", "dense"}
    assert {k: v for k, v in memory.report.items() if k not in skip} == \
        {k: v for k, v in blocks.report.items() if k not in skip}


def test_kuairand_demo_with_side_tables_and_a_date_split(root):
    _assert_same(*_both(DataConfig(dataset="kuairand", root=str(root))))


def test_every_row_dropped_outside_the_range_is_counted_alike(root):
    lines = (root / LOG).read_text().splitlines()
    lines[1500] = lines[1500].replace(",2022", ",2021", 1)  # its date, in chunk 3
    (root / LOG).write_text("\n".join(lines) + "\n")
    memory, blocks = _both(DataConfig(dataset="kuairand", root=str(root), out_of_range="drop"))
    assert blocks.report["split"]["dropped_out_of_range"] == 1
    _assert_same(memory, blocks)


def test_qk_video_history_lists_bucketised_dense_and_a_random_split(tmp_path):
    synthetic.write_qk_video(tmp_path / "ctr_data_1M.csv", rows=3000, seed=1)
    cfg = DataConfig(dataset="qk_video", root=str(tmp_path),
                     dense=[DenseFeatureConfig("age_bucket", column="age", transform="bucketize",
                                               num_buckets=5)])
    memory, blocks = _both(cfg, [TaskConfig("click"), TaskConfig("like")])
    assert any(f.multi_valued for f in blocks.features.sparse)
    _assert_same(memory, blocks)


def test_tiktok_without_header_and_rare_ids(tmp_path):
    synthetic.write_tiktok(tmp_path / "final_track2_train.txt", rows=2500, seed=2)
    _assert_same(*_both(DataConfig(dataset="tiktok", root=str(tmp_path))))


@pytest.mark.skipif(not (GENUINE / "kuairand").is_dir(), reason="../shared/data is not beside the checkout")
def test_genuine_kuairand_rows(tmp_path):
    cfg = DataConfig(dataset="kuairand", variant="pure", root=str(GENUINE / "kuairand"),
                     files=["log_random_4_22_to_5_08_1k.head.csv"],
                     split=DataConfig().split.__class__(kind="date", column="date", test_days=2, val_days=1))
    _assert_same(*_both(cfg, tmp=tmp_path))


def test_an_id_column_read_as_integers_in_one_chunk_and_text_in_another_is_text_everywhere(tmp_path):
    rows = ["user,item,day,click"] + [f"{u % 40},{'v' + str(i % 90) if i > 1800 else i % 90},"
                                      f"{20220401 + i % 9},{i % 3 == 0:d}" for i, u in enumerate(range(2100))]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    cfg = DataConfig(dataset="custom", root=str(tmp_path), files=["log.csv"], user_column="user",
                     sparse=[SparseFeatureConfig("user"), SparseFeatureConfig("item")],
                     split=DataConfig().split.__class__(kind="date", column="day", test_days=2, val_days=2))
    memory, blocks = _both(cfg, [TaskConfig("click")])
    assert blocks.report["files"] and blocks.encoder().vocabularies["item"].values.dtype == pl.String
    _assert_same(memory, blocks)


def _set(path: Path, row: int, column: str, value: str) -> None:
    """Set ``column`` of data row ``row`` (1-based) of a headed CSV."""
    lines = path.read_text().splitlines()
    fields = lines[row].split(",")
    fields[lines[0].split(",").index(column)] = value
    lines[row] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def _errors(cfg: DataConfig) -> list[tuple]:
    """The error of each preparation; neither leaves a cache entry nor a working folder."""
    out = []
    for reader in ("memory", "blocks"):
        cache = Path(cfg.root) / f"cache-{reader}"
        with pytest.raises(InputError) as info:
            prepare(DataConfig(**{**vars(cfg), "reader": reader, "cache_dir": str(cache)}), [])
        out.append((str(info.value), info.value.file, getattr(info.value, "row", None)))
        assert not cache.exists() or not [p for p in cache.iterdir() if p.is_dir()], list(cache.iterdir())
    return out


@pytest.mark.parametrize("column,value", [("is_click", "2"), ("date", "20220231"), ("video_id", "abc"),
                                          ("date", ""), ("tab", "x,y")])
def test_a_bad_value_deep_in_a_file_is_named_alike(root, column, value):
    _set(root / LOG, 1650, column, value)  # chunk 3 of the second log
    memory, blocks = _errors(DataConfig(dataset="kuairand", root=str(root)))
    assert memory == blocks
    assert memory[1] == str(root / LOG) or column == "date"


def test_no_working_folder_is_left_after_success(root):
    _, blocks = _both(DataConfig(dataset="kuairand", root=str(root)))
    cache = root / "cache-blocks"
    assert not [p.name for p in cache.iterdir() if p.name.startswith((".stage", ".tmp"))]
    assert blocks.cache_dir is not None and (blocks.cache_dir / "train.parquet").is_file()


def test_a_row_with_an_extra_field_deep_in_a_file_is_named_alike(root):
    lines = (root / LOG).read_text().splitlines()
    lines[1650] += ",5"
    (root / LOG).write_text("\n".join(lines) + "\n")
    memory, blocks = _errors(DataConfig(dataset="kuairand", root=str(root)))
    assert memory == blocks and "row 1650 (line 1651 of the file): 20 fields, expected 19" in memory[0]


def test_a_cache_folder_that_cannot_be_written_is_named(root):
    blocked = root / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(InputError, match="cannot be written") as info:
        prepare(DataConfig(dataset="kuairand", root=str(root), reader="blocks", cache_dir=str(blocked / "cache")), [])
    assert info.value.key == "data.cache_dir"
