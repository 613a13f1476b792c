"""The cache of encoded splits: hits, invalidation, nothing written on bad input; the validate summary."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import polars as pl
import pytest

from recsys_hmtl.cli import main as cli_main
from recsys_hmtl.config import load_config
from recsys_hmtl.data.cache import CacheEntry
from recsys_hmtl.data.config import DataConfig, SideTableConfig, SparseFeatureConfig, TaskConfig
from recsys_hmtl.data.demo import write_demo_data
from recsys_hmtl.data.pipeline import prepare
from recsys_hmtl.data.split import SPLITS
from recsys_hmtl.data.validate import validate
from recsys_hmtl.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
LOG = "log_standard_4_22_to_5_08_1k.csv"


def _cfg(root: Path, **fields) -> DataConfig:
    return DataConfig(dataset="kuairand", root=str(root), cache_dir=str(root / "cache"), **fields)


def _entries(root: Path) -> list[Path]:
    """The cache entries (folders; the input digest memo beside them is not one)."""
    folder = root / "cache"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def test_second_run_hits_the_cache(root, caplog):
    first = prepare(_cfg(root), [])
    assert not first.cache_hit and first.report["cache"].startswith("miss, wrote")
    assert [p.name for p in _entries(root)] == [first.cache_dir.name]
    with caplog.at_level(logging.INFO, logger="recsys_hmtl.data.pipeline"):
        second = prepare(_cfg(root), [])
    assert second.cache_hit and second.cache_dir == first.cache_dir
    assert f"cache: hit {first.cache_dir}" in caplog.text
    assert second.report["cache"] == f"hit {first.cache_dir}"
    for split in SPLITS:
        assert second.splits[split].equals(first.splits[split])
    assert second.features == first.features and second.tasks == first.tasks
    assert second.encoder().spec == first.encoder().spec  # vocabularies read back from the cache
    assert second.report["rows"] == first.report["rows"]


def test_touching_an_input_file_keeps_the_cache(root):
    """The key is the content: a new modification time alone is the same data."""
    first = prepare(_cfg(root), [])
    stat = (root / LOG).stat()
    os.utime(root / LOG, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = prepare(_cfg(root), [])
    assert second.cache_hit and second.cache_dir == first.cache_dir
    assert len(_entries(root)) == 1


def test_changing_an_input_file_invalidates(root):
    first = prepare(_cfg(root), [])
    with open(root / LOG, "a") as fh:
        fh.write((root / LOG).read_text().splitlines()[1] + "\n")  # one more row
    second = prepare(_cfg(root), [])
    assert not second.cache_hit and second.cache_dir != first.cache_dir
    assert len(_entries(root)) == 2


@pytest.mark.parametrize("change", [
    {"min_count": 2},
    {"split": {"test_days": 1}},
    {"tasks": [TaskConfig("long_view"), TaskConfig("is_click")]},  # another priority order
])
def test_changing_the_config_invalidates(root, change):
    first = prepare(_cfg(root), [])
    change = dict(change)
    tasks = change.pop("tasks", [])
    cfg = _cfg(root, **{k: v for k, v in change.items() if k != "split"})
    if "split" in change:
        cfg.split.test_days = change["split"]["test_days"]
    second = prepare(cfg, tasks)
    assert not second.cache_hit and second.cache_dir != first.cache_dir
    assert prepare(cfg, tasks).cache_hit


def test_the_cache_folder_does_not_change_the_key(root):
    first = prepare(_cfg(root), [])
    moved = _cfg(root)
    moved.cache_dir = str(root / "elsewhere")
    assert prepare(moved, []).cache_dir.name == first.cache_dir.name


@pytest.mark.parametrize("breakage", ["label", "missing_file", "empty_split"])
def test_failed_validation_writes_nothing(root, breakage):
    cfg = _cfg(root)
    if breakage == "label":
        lines = (root / LOG).read_text().splitlines()
        names = lines[0].split(",")
        fields = lines[5].split(",")
        fields[names.index("is_like")] = "2"
        lines[5] = ",".join(fields)
        (root / LOG).write_text("\n".join(lines) + "\n")
    elif breakage == "missing_file":
        (root / LOG).unlink()
    else:
        cfg.split.test_start = "20300101"
    with pytest.raises(InputError):
        prepare(cfg, [])
    assert not (root / "cache").exists()


def test_use_cache_false_writes_nothing(root):
    prepared = prepare(_cfg(root), [], use_cache=False)
    assert prepared.report["cache"] == "off" and prepared.cache_dir is None
    assert not (root / "cache").exists()


def test_default_cache_folder_is_under_the_data_root(root):
    prepared = prepare(DataConfig(dataset="kuairand", root=str(root)), [])
    assert prepared.cache_dir.parent == root / ".recsys_hmtl_cache"


def test_a_second_writer_keeps_the_first_entry(tmp_path):
    entry = CacheEntry(tmp_path / "entry")
    frames = {"train": pl.DataFrame({"a": [1]})}
    assert entry.write(frames, {"report": {"n": 1}})
    assert not entry.write({"train": pl.DataFrame({"a": [2]})}, {"report": {"n": 2}})
    assert entry.read_frames(["train"])["train"]["a"].to_list() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # no temporary folder left


def test_report_counts_rows_positives_and_coverage(root):
    prepared = prepare(_cfg(root), [], use_cache=False)
    report = prepared.report
    assert sum(report["rows"].values()) == 4000
    assert report["rows"] == {s: prepared.splits[s].height for s in SPLITS}
    click = report["tasks"]["is_click"]["train"]
    assert click["positives"] == prepared.splits["train"]["label:is_click"].sum()
    assert click["rate"] == pytest.approx(click["positives"] / report["rows"]["train"])
    assert report["vocabulary"]["user_id"]["num_embeddings"] == prepared.features.sparse[0].num_embeddings
    assert report["side_tables"]["user_features_1k.csv"]["coverage"] == 1.0


def test_missing_side_rows_are_counted_and_encoded_as_missing(tmp_path):
    pl.DataFrame({"user": [1, 3, 2, 1, 3], "day": [20220401, 20220401, 20220402, 20220403, 20220404],
                  "click": [1, 0, 1, 0, 1]}).write_csv(tmp_path / "log.csv")
    pl.DataFrame({"user": [1, 2], "city": ["x", "y"]}).write_csv(tmp_path / "users.csv")  # no user 3
    cfg = DataConfig(dataset="custom", root=str(tmp_path), files=["log.csv"], user_column="user",
                     side_tables=[SideTableConfig("users.csv", "user")], sparse=[SparseFeatureConfig("city")])
    cfg.split.column = "day"
    prepared = prepare(cfg, [TaskConfig("click")], use_cache=False)
    side = prepared.report["side_tables"]["users.csv"]
    assert (side["matched"], side["missing"]) == (3, 2) and side["coverage"] == pytest.approx(0.6)
    assert prepared.encoder().vocabularies["city"].values.to_list() == ["x"]  # the null is not an id
    assert prepared.splits["train"]["city"].to_list() == [2, 0]  # user 3 has no side row: index 0


def test_validate_summary_and_cli(root, capsys):
    cfg = load_config(ROOT / "configs" / "kuairand_demo.yaml",
                      [f"data.root={root}", f"data.cache_dir={root / 'cache'}"])
    text = validate(cfg.data, cfg.tasks)
    assert "rows: train" in text and "is_click" in text and "is_hate" in text
    assert "  user_id " in text and "user_features_1k.csv: 100.00%" in text
    assert "cache: miss, wrote" in text
    assert cli_main(["validate", "--config", str(ROOT / "configs" / "kuairand_demo.yaml"),
                     "--set", f"data.root={root}", "--set", f"data.cache_dir={root / 'cache'}"]) == 0
    assert "cache: hit" in capsys.readouterr().out
