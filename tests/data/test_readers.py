"""Readers: presets, file resolution, typed Polars scans and left joins, on the genuine samples in
../shared/data and on small files written here in the exact published formats (DATASETS.md)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import polars as pl
import pytest

from recsys_hmtl.data.config import (
    DataConfig, DenseFeatureConfig, SideTableConfig, SparseFeatureConfig, SplitConfig, TaskConfig,
)
from recsys_hmtl.data import demo, synthetic
from recsys_hmtl.data.presets import KUAIRAND_TASKS
from recsys_hmtl.data.schema import (
    KUAIRAND_LOG_COLUMNS, KUAIRAND_USER_COLUMNS, KUAIRAND_VIDEO_COLUMNS, QK_VIDEO_COLUMNS, TIKTOK_COLUMNS,
)
from recsys_hmtl.data.sources import fingerprint, input_files, load, resolve

RANDOM_HEAD = "kuairand/log_random_4_22_to_5_08_1k.head.csv"


def _link(target: Path, link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _load(**data) -> tuple[pl.DataFrame, dict]:
    tasks = data.pop("tasks", [])
    cfg, tasks = resolve(DataConfig(**data), tasks)
    loaded = load(cfg, tasks)
    return loaded.frame, loaded.report


@pytest.fixture
def pure_root(shared_data, tmp_path) -> Path:
    """The random-log head and the Pure side files under the names the `pure` variant expects."""
    _link(shared_data / RANDOM_HEAD, tmp_path / "log_random_4_22_to_5_08_pure.csv")
    for name in ("user_features_pure.csv", "video_features_basic_pure.csv"):
        _link(shared_data / "kuairand" / name, tmp_path / name)
    return tmp_path


# --- genuine KuaiRand samples ---------------------------------------------------------------------
def test_random_log_head_rows_types_and_label_rates(pure_root):
    frame, report = _load(dataset="kuairand", variant="pure", root=str(pure_root),
                          files=["log_random_4_22_to_5_08_pure.csv"])
    assert frame.height == 13_871 == report["rows"]
    assert report["files"] == {str(pure_root / "log_random_4_22_to_5_08_pure.csv"): 13_871}
    schema = frame.schema
    assert schema["user_id"] == schema["video_id"] == schema["author_id"] == schema["hourmin"] == pl.Int64
    assert all(schema[t] == pl.Int8 for t in KUAIRAND_TASKS)
    assert schema["tag"] == schema["user_active_degree"] == schema["fans_user_num_range"] == pl.String
    assert schema["onehot_feat4"] == schema["music_type"] == pl.Int64  # written as "4.0" / blank
    assert schema["video_duration"] == schema["register_days"] == pl.Float64
    # Rates and counts from ../shared/data/README.md.
    assert frame["is_click"].mean() == pytest.approx(0.170, abs=5e-4)
    assert frame["long_view"].mean() == pytest.approx(0.083, abs=5e-4)
    counts = {t: int(frame[t].sum()) for t in KUAIRAND_TASKS[2:]}
    assert counts == {"is_like": 25, "is_follow": 4, "is_comment": 3, "is_forward": 2,
                      "is_profile_enter": 67, "is_hate": 18}
    assert frame["user_id"].min() == 0 and frame["user_id"].max() == 304
    assert frame["video_id"].n_unique() == 6_241
    # Post-view measurements never reach the frame.
    assert not {"play_time_ms", "profile_stay_time", "comment_stay_time", "duration_ms"} & set(frame.columns)


def test_pure_side_values_arrive_unchanged(pure_root, shared_data):
    """Quoted range strings, float codes with blanks and the multi-valued tag string survive the join."""
    frame, _ = _load(dataset="kuairand", variant="pure", root=str(pure_root),
                     files=["log_random_4_22_to_5_08_pure.csv"])
    users = {r["user_id"]: r for r in _csv_rows(shared_data / "kuairand/user_features_pure.csv")}
    videos = {r["video_id"]: r for r in _csv_rows(shared_data / "kuairand/video_features_basic_pure.csv")}
    log = _csv_rows(shared_data / RANDOM_HEAD)

    def code(text: str) -> int | None:
        return int(float(text)) if text else None

    assert frame["fans_user_num_range"].to_list() == [users[r["user_id"]]["fans_user_num_range"] for r in log]
    assert frame["onehot_feat4"].to_list() == [code(users[r["user_id"]]["onehot_feat4"]) for r in log]
    assert frame["tag"].to_list() == [videos[r["video_id"]]["tag"] or None for r in log]
    assert frame["video_duration"].to_list() == [
        float(videos[r["video_id"]]["video_duration"]) if videos[r["video_id"]]["video_duration"] else None
        for r in log]
    assert any("," in t for t in frame["tag"].drop_nulls())  # multi-valued rows are present
    assert frame["user_id"].to_list() == [int(r["user_id"]) for r in log]  # row order kept


def test_left_join_fills_and_counts_missing_side_rows(shared_data, tmp_path):
    """The Pure ids are another id space: keep the log rows whose video has no side row (nulls), count them."""
    _link(shared_data / RANDOM_HEAD, tmp_path / "log_random_4_22_to_5_08_pure.csv")
    _link(shared_data / "kuairand/user_features_pure.csv", tmp_path / "user_features_pure.csv")
    lines = (shared_data / "kuairand/video_features_basic_pure.csv").read_text().splitlines(keepends=True)
    (tmp_path / "video_features_basic_pure.csv").write_text("".join(lines[:2001]))  # videos 0..1999
    frame, report = _load(dataset="kuairand", variant="pure", root=str(tmp_path),
                          files=["log_random_4_22_to_5_08_pure.csv"])
    kept = {r["video_id"] for r in _csv_rows(tmp_path / "video_features_basic_pure.csv")}
    log = _csv_rows(shared_data / RANDOM_HEAD)
    expected_matched = sum(r["video_id"] in kept for r in log)
    assert 0 < expected_matched < len(log)
    side = report["side_tables"]["video_features_basic_pure.csv"]
    assert side["rows"] == 2000 and side["key"] == "video_id"
    assert (side["matched"], side["missing"]) == (expected_matched, len(log) - expected_matched)
    assert frame.height == len(log)  # a left join: no log row lost or repeated
    unmatched = frame.filter(~pl.col("video_id").is_in([int(v) for v in kept]))
    assert unmatched.height == len(log) - expected_matched
    assert unmatched["author_id"].null_count() == unmatched.height
    assert report["missing_values"]["author_id"] == unmatched.height
    assert report["side_tables"]["user_features_pure.csv"]["missing"] == 0  # users 0..304 all present


# --- KuaiRand in the exact format, written here ---------------------------------------------------
def _log_line(user: int, video: int, date: int, hour: int, click: int, like: int = 0) -> str:
    values = dict.fromkeys(KUAIRAND_LOG_COLUMNS, 0)
    values.update(user_id=user, video_id=video, date=date, hourmin=hour * 100, time_ms=1651000000000 + video,
                  is_click=click, is_like=like, long_view=click, play_time_ms=900 * click, duration_ms=30000,
                  is_rand=0, tab=1 + video % 3)
    return ",".join(str(values[c]) for c in KUAIRAND_LOG_COLUMNS)


def _write_kuairand(folder: Path, suffix: str = "1k") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(KUAIRAND_LOG_COLUMNS)
    (folder / f"log_standard_4_08_to_4_21_{suffix}.csv").write_text(
        "\n".join([header, _log_line(0, 10, 20220408, 9, 1), _log_line(1, 11, 20220409, 23, 0)]) + "\n")
    (folder / f"log_standard_4_22_to_5_08_{suffix}.csv").write_text(
        "\n".join([header, _log_line(1, 12, 20220507, 0, 1, 1), _log_line(2, 10, 20220508, 12, 0),
                   _log_line(0, 99, 20220508, 13, 1)]) + "\n")
    (folder / f"log_random_4_22_to_5_08_{suffix}.csv").write_text(
        "\n".join([header, _log_line(2, 11, 20220430, 8, 0)]) + "\n")
    user_row = ("{u},full_active,0,-124,1,10,\"(0,10]\",150,\"[100,1k)\",3,\"[1,5)\",799,730+,"
                + ",".join(["1"] * 4) + ",4.0," + ",".join(["0"] * 7) + ",1.0," + ",".join([""] * 5))
    (folder / f"user_features_{suffix}.csv").write_text(
        ",".join(KUAIRAND_USER_COLUMNS) + "\n" + "\n".join(user_row.format(u=u) for u in range(3)) + "\n")
    (folder / f"video_features_basic_{suffix}.csv").write_text(
        ",".join(KUAIRAND_VIDEO_COLUMNS) + "\n"
        "10,7349781,NORMAL,2022-04-10,LongImport,0.0,87433.0,720.0,1280.0,9155697141,9.0,39\n"
        "11,2103883,AD,2022-04-10,UNKNOWN,0.0,,720.0,1280.0,0,,\"20,43\"\n"
        "12,5067285,NORMAL,2022-04-09,ShortImport,0.0,9233.0,720.0,1280.0,6618412736,4.0,1\n")
    return folder


def test_kuairand_1k_standard_logs_in_file_order_with_side_tables(tmp_path):
    root = _write_kuairand(tmp_path / "KuaiRand-1K" / "data").parent  # the tarball layout: root/data/
    frame, report = _load(dataset="kuairand", root=str(root))
    assert list(report["files"].values()) == [2, 3]
    assert frame["video_id"].to_list() == [10, 11, 12, 10, 99]  # file order, row order
    assert frame["date"].to_list() == [20220408, 20220409, 20220507, 20220508, 20220508]
    assert frame["hourmin"].to_list() == [900, 2300, 0, 1200, 1300]  # the `hour` feature's column
    assert frame["tag"].to_list() == ["39", "20,43", "1", "39", None]
    assert frame["music_id"].to_list() == [9155697141, 0, 6618412736, 9155697141, None]
    assert frame["follow_user_num_range"].to_list() == ["(0,10]"] * 5
    assert frame["onehot_feat4"].to_list() == [4] * 5 and frame["onehot_feat17"].null_count() == 5
    video = report["side_tables"]["video_features_basic_1k.csv"]
    assert (video["matched"], video["missing"]) == (4, 1)  # video 99 has no side row
    assert frame.schema["is_like"] == pl.Int8 and frame["is_like"].to_list() == [0, 0, 1, 0, 0]


def test_nan_text_in_a_feature_column_is_a_missing_value(tmp_path):
    """pandas writes NaN into integer columns with gaps: the typed parse fails, the text path accepts it."""
    root = _write_kuairand(tmp_path)
    log = root / "log_standard_4_22_to_5_08_1k.csv"
    lines = log.read_text().splitlines()
    fields = lines[2].split(",")
    fields[KUAIRAND_LOG_COLUMNS.index("tab")] = "NaN"
    lines[2] = ",".join(fields)
    log.write_text("\n".join(lines) + "\n")
    frame, _ = _load(dataset="kuairand", root=str(root))
    assert frame["tab"].to_list()[2:] == [1 + 12 % 3, None, 1 + 99 % 3] and frame.schema["tab"] == pl.Int64


def test_random_log_and_statistic_table_by_configuration(tmp_path):
    root = _write_kuairand(tmp_path)
    (root / "video_features_statistic_1k.csv").write_text(
        "video_id,counts,show_cnt,play_cnt,complete_play_cnt,valid_play_cnt,like_cnt,comment_cnt,follow_cnt,"
        "follow_user_num,share_cnt\n10,5,100,80,20,60,7,1,0,0,2\n12,5,50,40,10,30,3,0,1,1,0\n")
    plain, _ = resolve(DataConfig(dataset="kuairand", root=str(root)), [])
    assert [p.name for p in input_files(plain)] == [
        "log_standard_4_08_to_4_21_1k.csv", "log_standard_4_22_to_5_08_1k.csv", "user_features_1k.csv",
        "video_features_basic_1k.csv"]
    frame, report = _load(dataset="kuairand", root=str(root), use_random_log=True, use_statistic_features=True)
    assert list(report["files"])[-1].endswith("log_random_4_22_to_5_08_1k.csv")
    assert frame.height == 6
    assert frame["show_cnt"].to_list() == [100.0, None, 50.0, 100.0, None, None]
    stat = report["side_tables"]["video_features_statistic_1k.csv"]
    assert (stat["key"], stat["matched"], stat["missing"]) == ("video_id", 3, 3)
    # The statistic file's own follow_user_num never shadows the user table's.
    assert "follow_user_num" not in stat["columns"]


def test_variant_switches_suffixes_and_27k_parts(tmp_path):
    for variant, first in (("pure", "log_standard_4_08_to_4_21_pure.csv"),
                           ("27k", "log_standard_4_08_to_4_21_27k_part1.csv")):
        cfg, _ = resolve(DataConfig(dataset="kuairand", variant=variant), [])
        assert cfg.files[0] == first and cfg.side_tables[0].file == f"user_features_{variant}.csv"
    root = _write_kuairand(tmp_path, suffix="27k")
    for days in ("4_08_to_4_21", "4_22_to_5_08"):
        (root / f"log_standard_{days}_27k.csv").rename(root / f"log_standard_{days}_27k_part1.csv")
        (root / f"log_standard_{days}_27k_part2.csv").write_text(
            ",".join(KUAIRAND_LOG_COLUMNS) + "\n" + _log_line(0, 12, 20220420, 5, 0) + "\n")
    for part, video in ((1, 10), (2, 11), (3, 12)):
        (root / f"video_features_statistic_27k_part{part}.csv").write_text(
            f"video_id,show_cnt,play_cnt\n{video},{part},{part}\n")
    frame, report = _load(dataset="kuairand", variant="27K", root=str(root), use_statistic_features=True,
                          dense=[DenseFeatureConfig("show_cnt")])
    assert len(report["files"]) == 4 and frame.height == 7
    stat = report["side_tables"]["video_features_statistic_27k_part[123].csv"]
    assert len(stat["paths"]) == 3 and stat["rows"] == 3
    assert frame["video_id"].to_list() == [10, 11, 12, 12, 10, 99, 12]  # parts in order
    assert frame["show_cnt"].to_list() == [1.0, 2.0, 3.0, 3.0, 1.0, None, 3.0]


# --- TikTok ---------------------------------------------------------------------------------------
def test_tiktok_sample(shared_data, tmp_path):
    _link(shared_data / "tiktok/final_track2_train.sample.txt", tmp_path / "final_track2_train.txt")
    frame, report = _load(dataset="tiktok", root=str(tmp_path))
    assert frame.height == 200 == report["files"][str(tmp_path / "final_track2_train.txt")]
    first = (shared_data / "tiktok/final_track2_train.sample.txt").read_text().splitlines()[0].split("\t")
    assert frame.row(0, named=True)["uid"] == int(first[0])
    assert frame.row(0, named=True)["device_id"] == int(first[9])
    assert frame["video_duration"][0] == float(first[11])
    assert frame.schema["like"] == frame.schema["finish"] == pl.Int8
    assert all(frame.schema[c] == pl.Int64 for c in ("uid", "item_id", "music_id", "device_id"))
    assert (frame["music_id"] == -1).any()  # -1 marks missing ids; the encoder maps them to index 0
    sample = (shared_data / "tiktok/final_track2_train.sample.txt").read_text()
    rows = [line.split("\t") for line in sample.splitlines()]
    assert frame["finish"].to_list() == [int(r[6]) for r in rows]
    assert frame["like"].to_list() == [int(r[7]) for r in rows]


def test_tiktok_aliases_did_and_creat_time(shared_data, tmp_path):
    _link(shared_data / "tiktok/final_track2_train.sample.txt", tmp_path / "final_track2_train.txt")
    columns = ["uid", "user_city", "item_id", "author_id", "item_city", "channel", "finish", "like",
               "music_id", "did", "creat_time", "video_duration"]
    cfg, tasks = resolve(DataConfig(dataset="tiktok", root=str(tmp_path), columns=columns,
                                    sparse=[SparseFeatureConfig("device", column="did")]), [])
    assert cfg.columns[9:11] == ["device_id", "create_time"] and cfg.sparse[0].column == "device_id"
    frame = load(cfg, tasks).frame
    assert "device_id" in frame.columns and "did" not in frame.columns


# --- QK-Video -------------------------------------------------------------------------------------
QK_HEADER = ("user_id,item_id,click,follow,like,share,video_category,watching_times,gender,age,"
             + ",".join(f"hist_{k}" for k in range(1, 11)))


def test_qk_video_ctr_file(tmp_path):
    (tmp_path / "ctr_data_1M.csv").write_text(
        QK_HEADER + "\n"
        "1,100,1,0,0,0,0,1,1,3,0,0,0,0,0,0,0,0,0,0\n"
        "1,101,1,0,1,0,\\N,2,1,3,100,0,0,0,0,0,0,0,0,0\n"
        "2,100,0,0,0,0,1,0,2,5,7,8,9,0,0,0,0,0,0,0\n")
    frame, report = _load(dataset="qk_video", root=str(tmp_path))
    assert frame.height == 3
    assert frame["video_category"].to_list() == [0, None, 1]  # \N = missing
    assert frame["hist_1"].to_list() == [0, 100, 7] and frame.schema["hist_10"] == pl.Int64
    assert frame["like"].to_list() == [0, 1, 0] and frame.schema["click"] == pl.Int8
    assert "watching_times" not in frame.columns


def test_qk_video_raw_file_has_no_history(tmp_path):
    (tmp_path / "QK-video.csv").write_text(
        ",".join(QK_HEADER.split(",")[:10]) + "\n1,100,1,0,0,0,0,1,1,3\n2,101,0,0,1,1,1,0,2,5\n")
    for data in ({"variant": "raw"}, {"files": ["QK-video.csv"]}):
        cfg, tasks = resolve(DataConfig(dataset="qk_video", root=str(tmp_path), **data), [])
        assert [s.name for s in cfg.sparse] == ["user_id", "item_id", "video_category", "gender", "age"]
        assert [t.name for t in tasks] == ["like", "click"] and cfg.variant == "raw"
        assert load(cfg, tasks).frame["like"].to_list() == [0, 1]


# --- a user's own files ---------------------------------------------------------------------------
def test_custom_csv_keeps_string_ids_and_parses_iso_dates(tmp_path):
    (tmp_path / "events.csv").write_text(
        "member,item,day,price,clicked,bought\nu7,12,2024-01-02,3.5,1,0\nu8,13,2024-01-03,,0,0\n")
    (tmp_path / "items.tsv").write_text("item\tshop\n12\ts1\n13\ts2\n")
    frame, report = _load(
        dataset="custom", root=str(tmp_path), files=["events.csv"], user_column="member",
        side_tables=[SideTableConfig("items.tsv", "item", separator="\t")],
        sparse=[SparseFeatureConfig("member"), SparseFeatureConfig("item"), SparseFeatureConfig("shop")],
        dense=[DenseFeatureConfig("price")], split=SplitConfig(kind="date", column="day"),
        tasks=[TaskConfig("buy", "bought"), TaskConfig("click", "clicked")])
    assert frame.schema["member"] == pl.String and frame.schema["item"] == pl.Int64
    assert frame["day"].to_list() == [20240102, 20240103]
    assert frame["price"].to_list() == [3.5, None]
    assert frame["shop"].to_list() == ["s1", "s2"]
    assert report["side_tables"]["items.tsv"]["matched"] == 2


def test_custom_parquet(tmp_path):
    pl.DataFrame({"user": [5, 6, 6], "item": ["a", "b", "c"], "y": [1.0, 0.0, 1.0],
                  "day": [20240101, 20240101, 20240102]}).with_columns(
        pl.col("user").cast(pl.Int32)).write_parquet(tmp_path / "log.parquet")
    frame, report = _load(dataset="custom", root=str(tmp_path), files=["log.parquet"], user_column="user",
                          sparse=[SparseFeatureConfig("item")], split=SplitConfig(kind="random"),
                          tasks=[TaskConfig("y")])
    assert frame.schema["user"] == pl.Int64 and frame.schema["y"] == pl.Int8
    assert frame["y"].to_list() == [1, 0, 1] and frame["item"].to_list() == ["a", "b", "c"]


# --- resolution and fingerprints ------------------------------------------------------------------
def test_resolve_fills_only_what_the_user_left_empty_and_copies():
    mine = [SparseFeatureConfig("user_id"), SparseFeatureConfig("video_id")]
    cfg = DataConfig(dataset="kuairand", sparse=mine, split=SplitConfig(test_days=3))
    out, tasks = resolve(cfg, [TaskConfig("long_view"), TaskConfig("is_click")])
    assert [f.name for f in out.sparse] == ["user_id", "video_id"] and out.sparse is not cfg.sparse
    assert out.dense and not cfg.dense and cfg.files == []  # input untouched
    assert (out.split.kind, out.split.column, out.split.test_days) == ("date", "date", 3)
    assert [t.name for t in tasks] == ["long_view", "is_click"]  # the user's priority order
    tiktok, tiktok_tasks = resolve(DataConfig(dataset="tiktok"), [])
    assert tiktok.split.kind == "random" and tiktok.split.fractions == [0.81, 0.09, 0.10]
    assert tiktok.min_count == 10 and tiktok.user_column == "uid" and tiktok.separator == "\t"
    assert [t.name for t in tiktok_tasks] == ["like", "finish"]


def test_fingerprint_follows_size_and_mtime(tmp_path):
    root = _write_kuairand(tmp_path)
    cfg, _ = resolve(DataConfig(dataset="kuairand", root=str(root)), [])
    before = fingerprint(cfg)
    assert [Path(f["path"]) for f in before] == input_files(cfg)
    assert all(Path(f["path"]).is_absolute() for f in before)
    user = root / "user_features_1k.csv"
    os.utime(user, ns=(user.stat().st_atime_ns, user.stat().st_mtime_ns + 1_000_000))
    after = fingerprint(cfg)
    changed = [a["path"] for a, b in zip(after, before) if a != b]
    assert changed == [str(user)]
    assert [a["sha256"] for a in after] == [b["sha256"] for b in before]  # same content


def test_fixture_writers_and_readers_agree(tmp_path):
    """The generators of demo data and test fixtures write what the presets read."""
    assert tuple(demo.LOG_COLUMNS) == KUAIRAND_LOG_COLUMNS and tuple(demo.USER_COLUMNS) == KUAIRAND_USER_COLUMNS
    assert tuple(demo.VIDEO_COLUMNS) == KUAIRAND_VIDEO_COLUMNS
    assert tuple(synthetic.TIKTOK_COLUMNS) == TIKTOK_COLUMNS
    assert tuple(synthetic.QK_VIDEO_COLUMNS) == QK_VIDEO_COLUMNS
    (tmp_path / "tiktok").mkdir()
    synthetic.write_tiktok(tmp_path / "tiktok" / "final_track2_train.txt", rows=300, seed=1)
    assert _load(dataset="tiktok", root=str(tmp_path / "tiktok"))[0].height == 300
    for variant, stem in (("ctr", "ctr_data_1M"), ("raw", "QK-video")):
        (tmp_path / variant).mkdir()
        synthetic.write_qk_video(tmp_path / variant / f"{stem}.csv", rows=300, seed=1, variant=stem)
        frame, _ = _load(dataset="qk_video", variant=variant, root=str(tmp_path / variant))
        assert frame.height == 300 and ("hist_1" in frame.columns) == (variant == "ctr")
