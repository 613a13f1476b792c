"""Issue 10 (reliability) in the data layer: dates outside the expected range and impossible dates,
values cut in messages, rows with extra fields, content fingerprints, damaged cache entries."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from recsys_hmtl.cli import main as cli_main
from recsys_hmtl.config import load_config
from recsys_hmtl.data import digests
from recsys_hmtl.data.cache import CacheEntry
from recsys_hmtl.data.config import DataConfig, SideTableConfig, SparseFeatureConfig, SplitConfig, TaskConfig
from recsys_hmtl.data.demo import write_demo_data
from recsys_hmtl.data.pipeline import prepare
from recsys_hmtl.data.presets import resolve
from recsys_hmtl.data.schema import TIKTOK_COLUMNS
from recsys_hmtl.data.shown import shown
from recsys_hmtl.data.sources import fingerprint
from recsys_hmtl.data.split import SPLITS
from recsys_hmtl.data.validate import summary
from recsys_hmtl.errors import InputError
from recsys_hmtl.training.setup import check_inputs_unchanged

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "configs" / "kuairand_demo.yaml"
LOG = "log_standard_4_22_to_5_08_1k.csv"
USERS = "user_features_1k.csv"


def _cfg(root: Path, **fields) -> DataConfig:
    return DataConfig(dataset="kuairand", root=str(root), cache_dir=str(root / "cache"), **fields)


def _set(path: Path, rows: list[int], column: str, value: str) -> None:
    """Set ``column`` of the data rows ``rows`` (1-based, header excluded) of a headed CSV."""
    lines = path.read_text().splitlines()
    names = lines[0].split(",")
    for row in rows:
        fields = lines[row].split(",")
        fields[names.index(column)] = value
        lines[row] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def _rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1


def _validate(root: Path, *sets: str) -> int:
    args = [f"data.root={root}", f"data.cache_dir={root / 'cache'}", *sets]
    return cli_main(["validate", "--config", str(DEMO_CONFIG), *[x for s in args for x in ("--set", s)]])


# --- 1. dates ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("day", ["20220231", "20220431", "20220229"])
def test_impossible_calendar_dates_are_refused(root, day):
    _set(root / LOG, [7], "date", day)
    with pytest.raises(InputError) as info:
        prepare(_cfg(root), [])
    err = info.value
    assert (err.file, err.column, err.row) == (str(root / LOG), "date", 7)
    assert f"{day} is not a calendar date" in str(err) and "line 8 of the file" in str(err)
    assert not (root / "cache").exists()


def test_impossible_iso_date_in_custom_data(tmp_path):
    (tmp_path / "log.csv").write_text("user,day,click\n1,2022-04-01,0\n2,2022-02-31,1\n")
    cfg = DataConfig(dataset="custom", root=str(tmp_path), files=["log.csv"], user_column="user",
                     sparse=[SparseFeatureConfig("user")], split=SplitConfig(column="day"))
    with pytest.raises(InputError, match=r"row 2 \(line 3 of the file\): '2022-02-31' is not a calendar date"):
        prepare(cfg, [TaskConfig("click")], use_cache=False)


def test_rows_dated_outside_the_presets_range_are_refused(root, capsys):
    rows = list(range(1, _rows(root / LOG) + 1, 10))  # 10% of the rows, dated 2030
    _set(root / LOG, rows, "date", "20300101")
    with pytest.raises(InputError) as info:
        prepare(_cfg(root), [])
    err = info.value
    assert (err.file, err.column, err.row) == (str(root / LOG), "date", 1)
    assert "date 20300101 is outside the expected range 20220408..20220508" in str(err)
    assert f"{len(rows):,} of 4,000 rows" in str(err) and "data.out_of_range: drop" in str(err)
    assert _validate(root) == 2
    message = capsys.readouterr().err
    assert str(root / LOG) in message and "row 1 (line 2 of the file)" in message and "20300101" in message
    assert not [p for p in (root / "cache").glob("*") if p.is_dir()] if (root / "cache").exists() else True


def test_out_of_range_drop_counts_logs_and_summarises(root, caplog, capsys):
    rows = list(range(3, _rows(root / LOG) + 1, 10))
    _set(root / LOG, rows, "date", "20300101")
    with caplog.at_level(logging.WARNING, logger="recsys_hmtl.data.dates"):
        prepared = prepare(_cfg(root, out_of_range="drop"), [])
    split = prepared.report["split"]
    assert split["dropped_out_of_range"] == len(rows) and split["date_range"] == [20220408, 20220508]
    assert sum(prepared.report["rows"].values()) == 4000 - len(rows)
    assert split["last_date"] <= 20220508 and split["test_start"] == 20220507
    assert f"dropped {len(rows)} of 4000 rows dated outside 20220408..20220508" in caplog.text
    per_date = dict(map(tuple, split["rows_per_date"]))
    assert 20300101 not in per_date and sum(per_date.values()) == 4000 - len(rows)
    text = summary(prepared)
    assert f"dropped: {len(rows):,} rows dated outside 20220408..20220508" in text
    assert f"rows per date ({len(per_date)} dates):" in text
    assert f"  20220508  {per_date[20220508]:>12,}  test" in text
    assert f"  20220506  {per_date[20220506]:>12,}  val" in text
    assert f"  20220408  {per_date[20220408]:>12,}  train" in text
    assert _validate(root, "data.out_of_range=drop") == 0  # the same through the CLI, from the cache
    out = capsys.readouterr().out
    assert "cache: hit" in out and f"dropped: {len(rows):,} rows" in out and "rows per date" in out


def test_the_users_range_overrides_the_presets(root):
    cfg = _cfg(root, out_of_range="drop")
    cfg.split.date_range = ["2022-04-08", 20220430]
    prepared = prepare(cfg, [])
    assert prepared.report["split"]["last_date"] == 20220430 and prepared.report["split"]["dropped_out_of_range"]
    cfg = _cfg(root)
    cfg.split.date_range = []  # no range check
    _set(root / LOG, [5], "date", "20300101")
    assert prepare(cfg, [], use_cache=False).report["split"]["last_date"] == 20300101


def test_custom_data_range_from_the_config(tmp_path):
    (tmp_path / "log.csv").write_text("user,day,click\n" + "".join(
        f"{u},{d},{u % 2}\n" for d in (20220401, 20220402, 20220403, 20220404, 20220405) for u in range(3)))
    (tmp_path / "run.yaml").write_text(
        "data:\n  dataset: custom\n  root: " + str(tmp_path) + "\n  files: [log.csv]\n  user_column: user\n"
        "  sparse: [{name: user}]\n  split: {column: day, date_range: [2022-04-01, 20220404]}\n"
        "tasks: [click]\n")
    with pytest.raises(InputError) as info:
        prepare(load_config(tmp_path / "run.yaml").data, [TaskConfig("click")])
    assert info.value.row == 13 and "date 20220405 is outside the expected range 20220401..20220404" in str(info.value)
    cfg = load_config(tmp_path / "run.yaml", ["data.out_of_range=drop"])
    prepared = prepare(cfg.data, cfg.tasks, use_cache=False)
    assert prepared.report["split"]["dropped_out_of_range"] == 3 and prepared.report["split"]["last_date"] == 20220404
    assert prepared.report["rows"] == {"train": 3, "val": 3, "test": 6}


@pytest.mark.parametrize("key,value,message", [
    ("data.out_of_range", "skip", "unknown value 'skip'"),
    ("data.split.date_range", "[20220408]", "expected [first, last]"),
    ("data.split.date_range", "[20220408, 20220231]", "expected a calendar date"),
    ("data.split.date_range", "[20220508, 20220408]", "comes after"),
])
def test_bad_range_settings_name_the_key(root, capsys, key, value, message):
    assert _validate(root, f"{key}={value}") == 2
    err = capsys.readouterr().err
    assert f"key '{key}" in err and message in err
    assert not (root / "cache").exists()


def test_random_splits_have_no_range():
    for dataset in ("tiktok", "qk_video"):
        assert resolve(DataConfig(dataset=dataset), [])[0].split.date_range is None
    for variant in ("1k", "pure", "27k"):
        assert resolve(DataConfig(variant=variant), [])[0].split.date_range == ["20220408", "20220508"]


# --- 2. values cut in messages ----------------------------------------------------------------------
def test_shown_cuts_long_values():
    assert shown("a" * 30_000_000) == "'" + "a" * 200 + "…' (30,000,000 characters)"
    assert shown("abc") == "'abc'" and shown(12) == "12"


def test_a_huge_field_is_cut_and_no_other_line_is_echoed(root):
    _set(root / LOG, [3], "video_id", "x" * 3_000_000)
    _set(root / LOG, [4], "video_id", "SECRET_OTHER_LINE")
    with pytest.raises(InputError) as info:
        prepare(_cfg(root), [])
    text = str(info.value)
    assert info.value.row == 3 and "row 3 (line 4 of the file)" in text
    assert "'" + "x" * 200 + "…' (3,000,000 characters) is not an integer" in text
    assert len(text) < 1000 and "SECRET_OTHER_LINE" not in text


def test_a_huge_first_line_is_cut(tmp_path):
    (tmp_path / "final_track2_train.txt").write_text(
        "\t".join(["uid" * 100_000, *TIKTOK_COLUMNS[1:]]) + "\nSECRET\tLINE\n")
    with pytest.raises(InputError, match="looks like a header") as info:
        prepare(DataConfig(dataset="tiktok", root=str(tmp_path)), [], use_cache=False)
    assert len(str(info.value)) < 1000 and "SECRET" not in str(info.value)
    (tmp_path / "log.csv").write_text("1" * 100_000 + ",2,3\nSECRET,LINE,x\n")
    cfg = DataConfig(dataset="custom", root=str(tmp_path), files=["log.csv"], sparse=[SparseFeatureConfig("a")])
    with pytest.raises(InputError, match="line 1 is data") as info:
        prepare(cfg, [TaskConfig("b")], use_cache=False)
    assert len(str(info.value)) < 1000 and "SECRET" not in str(info.value)


def test_a_huge_duplicated_side_key_is_cut(tmp_path):
    key = "k" * 50_000
    (tmp_path / "log.csv").write_text("user,day,click\n" + "".join(
        f"{key},{d},1\n" for d in (20220401, 20220402, 20220403, 20220404)))
    (tmp_path / "users.csv").write_text(f"user,city\n{key},a\n{key},b\n")
    cfg = DataConfig(dataset="custom", root=str(tmp_path), files=["log.csv"], user_column="user",
                     side_tables=[SideTableConfig("users.csv", "user")], sparse=[SparseFeatureConfig("city")],
                     split=SplitConfig(column="day"))
    with pytest.raises(InputError, match="appears again") as info:
        prepare(cfg, [TaskConfig("click")], use_cache=False)
    assert "(50,000 characters)" in str(info.value) and len(str(info.value)) < 1000


# --- 3. rows with extra fields ------------------------------------------------------------------------
def test_a_row_with_an_extra_field_is_refused(root):
    lines = (root / LOG).read_text().splitlines()
    lines[9] += ",5"
    (root / LOG).write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        prepare(_cfg(root), [])
    err = info.value
    assert (err.file, err.row) == (str(root / LOG), 9)
    assert "row 9 (line 10 of the file): 20 fields, expected 19 (one per header name)" in str(err)
    assert not (root / "cache").exists()


def test_a_headerless_row_with_an_extra_field_is_refused(tmp_path):
    rows = ["\t".join(str((i * 7 + k) % 5) for k in range(12)) for i in range(30)]
    rows[20] += "\t9"
    (tmp_path / "final_track2_train.txt").write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError) as info:
        prepare(DataConfig(dataset="tiktok", root=str(tmp_path)), [], use_cache=False)
    assert info.value.row == 21
    assert "row 21 (line 21 of the file): 13 fields, expected 12 (one per name in data.columns)" in str(info.value)


def test_an_extra_field_in_a_side_table_is_refused(root):
    lines = (root / USERS).read_text().splitlines()
    lines[2] += ",extra"
    (root / USERS).write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 2 \(line 3 of the file\): 32 fields, expected 31") as info:
        prepare(_cfg(root), [])
    assert info.value.file == str(root / USERS)


# --- 4. content fingerprints --------------------------------------------------------------------------
def _rewrite_same_size_same_mtime(path: Path) -> None:
    """Change one label in place, keeping the size, then put the modification time back."""
    stat = path.stat()
    lines = path.read_text().splitlines()
    names = lines[0].split(",")
    column = names.index("is_click")
    for row in range(1, len(lines)):
        fields = lines[row].split(",")
        if fields[column] == "0":
            fields[column] = "1"
            lines[row] = ",".join(fields)
            break
    path.write_text("\n".join(lines) + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_a_rewrite_keeping_size_and_mtime_is_noticed(root):
    cfg = _cfg(root)
    first = prepare(cfg, [])
    before = fingerprint(resolve(cfg, [])[0])
    assert all({"path", "size", "mtime_ns", "ctime_ns", "inode", "sha256"} == set(f) for f in before)
    _rewrite_same_size_same_mtime(root / LOG)
    second = prepare(cfg, [])
    assert not second.cache_hit and second.cache_dir != first.cache_dir
    now = fingerprint(resolve(cfg, [])[0])
    with pytest.raises(InputError, match="content differs") as info:
        check_inputs_unchanged(now, {"inputs": before}, "a resumed run continues on the data it started on")
    assert info.value.file == str(root / LOG)


def test_touch_keeps_the_resume_check_and_the_cache(root):
    cfg = _cfg(root)
    first = prepare(cfg, [])
    before = fingerprint(resolve(cfg, [])[0])
    stat = (root / LOG).stat()
    os.utime(root / LOG, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    now = fingerprint(resolve(cfg, [])[0])
    assert now != before
    check_inputs_unchanged(now, {"inputs": before}, "why")
    assert prepare(cfg, []).cache_dir == first.cache_dir


def test_fingerprints_of_old_runs_still_resume(root):
    cfg = resolve(_cfg(root), [])[0]
    now = fingerprint(cfg)
    old = [{k: f[k] for k in ("path", "size", "mtime_ns")} for f in now]  # recorded before content digests
    check_inputs_unchanged(now, {"inputs": old}, "why")
    with open(root / LOG, "a") as fh:
        fh.write((root / LOG).read_text().splitlines()[1] + "\n")
    with pytest.raises(InputError, match="since the run was trained"):
        check_inputs_unchanged(fingerprint(cfg), {"inputs": old}, "why")


def test_digests_are_memoised_and_a_corrupt_memo_is_rewritten(root, monkeypatch):
    cfg = _cfg(root)
    prepare(cfg, [])
    memo = root / "cache" / digests.MEMO_NAME
    stored = json.loads(memo.read_text())
    assert stored[str(root / LOG)]["sha256"] == digests.sha256_of(root / LOG)
    reads = []
    monkeypatch.setattr(digests, "sha256_of", lambda path: reads.append(path) or "0" * 64)
    monkeypatch.setattr(digests, "_SEEN", {})
    assert prepare(cfg, []).cache_hit and reads == []  # read from the memo, not from the files
    memo.write_text("{not json")
    monkeypatch.undo()
    monkeypatch.setattr(digests, "_SEEN", {})
    assert prepare(cfg, []).cache_hit
    assert json.loads(memo.read_text())[str(root / LOG)]["sha256"] == stored[str(root / LOG)]["sha256"]


# --- 5. damaged cache entries -------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate train.parquet", "garbage val.parquet", "garbage test.parquet",
                                    "garbage report.json", "garbage features.json", "list report.json"])
def test_a_damaged_cache_entry_is_rebuilt(root, caplog, damage):
    cfg = _cfg(root)
    first = prepare(cfg, [])
    how, name = damage.split()
    path = first.cache_dir / name
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "list":
        path.write_text("[1, 2]")
    else:
        path.write_bytes(b"\x00garbage" * 10)
    with caplog.at_level(logging.WARNING, logger="recsys_hmtl.data.pipeline"):
        second = prepare(cfg, [])
    assert f"cache: entry {first.cache_dir} is damaged" in caplog.text and name in caplog.text
    assert not second.cache_hit and second.cache_dir == first.cache_dir
    assert all(second.splits[s].equals(first.splits[s]) for s in SPLITS)
    third = prepare(cfg, [])
    assert third.cache_hit and all(third.splits[s].equals(first.splits[s]) for s in SPLITS)


def test_a_damaged_encoder_document_is_rebuilt_when_read(root, caplog):
    cfg = _cfg(root)
    first = prepare(cfg, [])
    vocabularies = {n: v.values.to_list() for n, v in first.encoder().vocabularies.items()}
    (first.cache_dir / "encoder.json").write_text("{not json")
    hit = prepare(cfg, [])
    assert hit.cache_hit
    with caplog.at_level(logging.WARNING, logger="recsys_hmtl.data.pipeline"):
        encoder = hit.encoder()
    assert "encoder.json" in caplog.text and "is damaged" in caplog.text
    assert {n: v.values.to_list() for n, v in encoder.vocabularies.items()} == vocabularies
    assert CacheEntry(first.cache_dir).read_document("encoder")  # written again, readable
