"""The demo-data generator (``recsys-hmtl demo-data``) and the TikTok / QK-Video fixture writers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from recsys_hmtl.cli import main
from recsys_hmtl.data import demo as demo_module
from recsys_hmtl.data.demo import (
    FUNNEL, LOG_COLUMNS, LOG_FILES, USER_COLUMNS, USER_FILE, VIDEO_COLUMNS, VIDEO_FILE, write_demo_data,
)
from recsys_hmtl.data.synthetic import QK_VIDEO_COLUMNS, TIKTOK_COLUMNS, write_qk_video, write_tiktok

ROWS = 60_000
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "kuairand_demo.yaml"
LOGS = list(LOG_FILES)
GENUINE = {  # our file -> genuine sample with the same columns (../shared/data/kuairand)
    LOGS[0]: "log_random_4_22_to_5_08_1k.head.csv",
    USER_FILE: "user_features_pure.csv",
    VIDEO_FILE: "video_features_basic_pure.csv",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    write_demo_data(out, rows=ROWS, seed=3)
    return out / "data"


@pytest.fixture(scope="module")
def log(demo) -> pl.DataFrame:
    return pl.concat([pl.read_csv(demo / name) for name in LOGS])


def _header(path: Path) -> str:
    with open(path) as fh:
        return fh.readline().rstrip("\n")


def test_files_have_the_real_names_and_headers(demo, shared_data):
    assert sorted(p.name for p in demo.iterdir()) == sorted([*LOGS, USER_FILE, VIDEO_FILE])
    for name in LOGS:
        assert _header(demo / name) == ",".join(LOG_COLUMNS)
    assert _header(demo / USER_FILE) == ",".join(USER_COLUMNS)
    assert _header(demo / VIDEO_FILE) == ",".join(VIDEO_COLUMNS)
    for ours, theirs in GENUINE.items():
        assert _header(demo / ours) == _header(shared_data / "kuairand" / theirs)


def test_columns_parse_to_the_dtypes_of_the_genuine_samples(demo, shared_data):
    for ours, theirs in GENUINE.items():
        assert pl.read_csv(demo / ours).schema == pl.read_csv(shared_data / "kuairand" / theirs).schema, ours
    assert pl.read_csv(demo / LOGS[1]).schema == pl.read_csv(demo / LOGS[0]).schema


def test_value_formats_follow_the_real_files(demo):
    users = (demo / USER_FILE).read_text()
    assert '"[10,100)"' in users and ",730+," in users  # quoted range strings only when they hold a comma
    videos = pl.read_csv(demo / VIDEO_FILE)
    raw_videos = (demo / VIDEO_FILE).read_text().splitlines()
    assert any(line.endswith('"') and line.count('"') == 2 for line in raw_videos[1:])  # "12,65"-style tags
    assert all(",0.0," in line for line in raw_videos[1:50])  # visible_status written as a float
    assert videos["tag"].drop_nulls().str.contains(r"^\d+(,\d+)*$").all()
    assert videos["upload_dt"].str.to_date("%Y-%m-%d").max() < date(2022, 4, 8)  # uploaded before the logs
    assert 0 < videos["video_duration"].null_count() < videos.height // 10  # missing durations, as in the real file
    degrees = set(pl.read_csv(demo / USER_FILE)["user_active_degree"])
    assert {"full_active", "high_active", "middle_active"} <= degrees
    assert degrees <= {"full_active", "high_active", "middle_active", "2_14_day_new", "low_active",
                       "single_low_active", "30day_retention", "day_new", "UNKNOWN"}


def test_dates_split_across_the_two_logs_and_time_ms_agrees(demo):
    first, second = (pl.read_csv(demo / name) for name in LOGS)
    assert first["date"].min() == 20220408 and first["date"].max() == 20220421
    assert second["date"].min() == 20220422 and second["date"].max() == 20220508
    for part in (first, second):
        local = pl.from_epoch(part["time_ms"], time_unit="ms").dt.convert_time_zone("Asia/Shanghai")
        assert (local.dt.strftime("%Y%m%d").cast(pl.Int64) == part["date"]).all()
        assert (local.dt.hour().cast(pl.Int64) * 100 == part["hourmin"]).all()  # HH00, as in the real logs
        assert part.select((pl.col("user_id").diff() >= 0).all()).item()  # sorted by user ...
        per_user = part.select((pl.col("time_ms").diff().over("user_id").fill_null(0) >= 0).all()).item()
        assert per_user  # ... then by time
        assert set(part["tab"]) <= set(range(15)) and (part["is_rand"] == 0).all()


def test_ids_join_onto_the_side_tables(demo, log):
    assert np.isin(log["user_id"].to_numpy(), pl.read_csv(demo / USER_FILE)["user_id"].to_numpy()).all()
    videos = pl.read_csv(demo / VIDEO_FILE)
    assert np.isin(log["video_id"].to_numpy(), videos["video_id"].to_numpy()).all()
    joined = log.join(videos, on="video_id", how="left").filter(pl.col("video_duration").is_not_null())
    assert (joined["duration_ms"] == joined["video_duration"].cast(pl.Int64)).all()


def test_positive_rates_are_of_the_real_datas_order(log):
    rate = {b.name: log[b.name].mean() for b in FUNNEL}
    assert 0.2 < rate["is_click"] < 0.5
    assert 0.1 < rate["long_view"] < 0.3
    assert 0.005 < rate["is_like"] < 0.05
    for deep in ("is_follow", "is_comment", "is_forward", "is_hate", "is_profile_enter"):
        assert 0 < rate[deep] < 0.01, deep
    assert rate["is_click"] > rate["long_view"] > rate["is_like"] > rate["is_follow"] > rate["is_forward"]


def test_deeper_behaviours_depend_on_the_shallower_ones(log):
    assert (log["long_view"] <= log["is_click"]).all()  # a long view needs a click
    for b in FUNNEL:
        for shallower, lift in b.lifts.items():
            given = log.group_by(shallower).agg(pl.col(b.name).mean()).sort(shallower)[b.name].to_list()
            if lift > 0:
                assert given[1] > 2 * given[0], (b.name, shallower, given)
            else:
                assert given[1] < given[0], (b.name, shallower, given)
    hates = log.filter(pl.col("is_hate") == 1)
    assert (hates["is_click"] == 0).mean() > 0.8  # hate comes mostly from skipped videos


def test_long_view_agrees_with_play_and_duration(log):
    """DATASETS.md: watched the whole video if it is at most 18 s, else at least 18 s."""
    play, duration = log["play_time_ms"].to_numpy(), log["duration_ms"].to_numpy()
    rule = np.where(duration <= 18_000, play >= duration, play >= 18_000)
    assert np.array_equal(rule, log["long_view"].to_numpy() == 1)
    assert (duration <= 18_000).any() and (log["long_view"] == 1).any()
    assert (log.filter(pl.col("is_comment") == 1)["comment_stay_time"] > 0).all()
    assert (log.filter(pl.col("is_profile_enter") == 0)["profile_stay_time"] == 0).all()


def test_labels_are_learnable_from_ids_and_side_features(demo, log):
    """Click rates per user / video / tag measured on the earlier dates rank the later dates' clicks."""
    videos = pl.read_csv(demo / VIDEO_FILE).select("video_id", "tag", "upload_type")
    data = log.join(videos, on="video_id", how="left").with_columns(pl.col("tag").fill_null(""))
    train, test = data.filter(pl.col("date") < 20220501), data.filter(pl.col("date") >= 20220501)
    prior = train["is_click"].mean()
    for feature in ("user_id", "video_id", "tag", "upload_type", "hourmin"):
        rates = train.group_by(feature).agg(((pl.col("is_click").sum() + 5 * prior) / (pl.len() + 5)).alias("r"))
        score = test.join(rates, on=feature, how="left")["r"].fill_null(prior)
        auc = roc_auc_score(test["is_click"].to_numpy(), score.to_numpy())
        assert auc > (0.55 if feature in ("user_id", "video_id", "tag") else 0.51), (feature, auc)


def test_demo_data_loads_through_the_kuairand_preset(demo, log):
    from recsys_hmtl.config import load_config
    from recsys_hmtl.data.sources import load, resolve

    cfg = load_config(CONFIG, [f"data.root={demo.parent}"])
    data, tasks = resolve(cfg.data, cfg.tasks)
    loaded = load(data, tasks)
    assert loaded.frame.height == ROWS
    for side in loaded.report["side_tables"].values():
        assert side["used"] and side["matched"] == ROWS and side["missing"] == 0
    for task in tasks:
        assert loaded.frame[task.label_column].sum() == log[task.label_column].sum(), task.name


def _read_all(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_demo_data(tmp_path / name, rows=4_000, seed=seed)
    a, b, c = (_read_all(tmp_path / name / "data") for name in "abc")
    assert a == b
    assert all(a[name] != c[name] for name in a)


def test_rerun_replaces_the_files_and_leaves_nothing_half_written(tmp_path):
    write_demo_data(tmp_path / "out", rows=3_000, seed=1)
    (tmp_path / "out" / "data" / "notes.txt").write_text("mine")
    write_demo_data(tmp_path / "out", rows=3_000, seed=2)
    write_demo_data(tmp_path / "fresh", rows=3_000, seed=2)
    rerun, fresh = _read_all(tmp_path / "out" / "data"), _read_all(tmp_path / "fresh" / "data")
    assert rerun.pop("notes.txt") == b"mine"  # the user's other files are left alone
    assert rerun == fresh
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["data"]  # no temporary folder left


def test_an_interrupted_run_leaves_no_partial_data_set(tmp_path, monkeypatch):
    write_logs = demo_module._write_logs

    def interrupted(*args, **kwargs):  # the logs are complete, the side tables not yet written
        write_logs(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "_write_logs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_demo_data(tmp_path, rows=2_000)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_the_data_set_and_reports_rates(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path), "--rows", "5000"]) == 0
    assert sum(pl.read_csv(tmp_path / "data" / name).height for name in LOGS) == 5_000
    assert {p.name for p in (tmp_path / "data").iterdir()} == {*LOGS, USER_FILE, VIDEO_FILE}
    err = capsys.readouterr().err
    assert "5,000 interactions" in err and "is_click" in err and "is_hate" in err


def test_cli_sizes_users_and_videos_so_a_larger_set_keeps_the_vocabularies(tmp_path):
    """`--users` / `--videos` fix the id spaces: 4x the rows, the same users and videos (the memory
    benchmark compares sizes at fixed vocabularies)."""
    tables = []
    for rows in (4_000, 16_000):
        out = tmp_path / str(rows)
        assert main(["demo-data", "--out", str(out), "--rows", str(rows), "--users", "40", "--videos", "300"]) == 0
        users = pl.read_csv(out / "data" / USER_FILE).get_column("user_id").sort().to_list()
        videos = pl.read_csv(out / "data" / VIDEO_FILE).get_column("video_id").sort().to_list()
        tables.append((users, videos))
    assert tables[0] == tables[1] and len(tables[0][0]) == 40 and len(tables[0][1]) == 300


def test_cli_rejects_a_non_positive_row_count(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path), "--rows", "0"]) == 2
    assert "--rows" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# --- TikTok and QK-Video fixture writers -------------------------------------------------------------


def test_tiktok_writer_matches_the_icme_format(tmp_path, shared_data):
    path = write_tiktok(tmp_path / "final_track2_train.txt", rows=20_000, seed=1)
    first = path.read_text().splitlines()[0].split("\t")
    assert len(first) == 12 and all(field.lstrip("-").isdigit() for field in first)  # no header
    options = dict(separator="\t", has_header=False, new_columns=TIKTOK_COLUMNS)
    ours = pl.read_csv(path, **options)
    genuine = pl.read_csv(shared_data / "tiktok" / "final_track2_train.sample.txt", **options)
    assert ours.schema == genuine.schema and ours.height == 20_000
    for column in ("user_city", "item_city", "music_id"):
        assert (ours[column] == -1).any(), column
    assert set(ours["channel"]) <= set(range(5))
    assert 0.3 < ours["finish"].mean() < 0.5 and 0.01 < ours["like"].mean() < 0.06
    like = ours.group_by("finish").agg(pl.col("like").mean()).sort("finish")["like"].to_list()
    assert like[1] > 2 * like[0]


def test_qk_video_writer_matches_tenrec_ctr_data(tmp_path):
    path = write_qk_video(tmp_path / "ctr_data_1M.csv", rows=30_000, seed=2)
    assert _header(path) == ",".join(QK_VIDEO_COLUMNS)
    assert "\\N" in path.read_text()
    qk = pl.read_csv(path, null_values=["\\N"])
    assert qk["video_category"].dtype == pl.Int64 and qk["video_category"].null_count() > 0
    assert set(qk["video_category"].drop_nulls()) == {0, 1}
    assert qk.select((pl.col("user_id").diff() >= 0).all()).item()  # grouped by user
    assert 0.18 < qk["click"].mean() < 0.3 and 0.008 < qk["like"].mean() < 0.03
    for deep in ("like", "follow", "share"):
        assert (qk[deep] <= qk["click"]).all() and 0 < qk[deep].mean() < 0.03
    assert set(qk["gender"]) <= {0, 1, 2} and set(qk["age"]) <= set(range(8))
    # hist_1..hist_10: each user's first clicked items in row order, 0-padded (slow reference per user)
    hist = [f"hist_{k}" for k in range(1, 11)]
    for user in qk["user_id"].unique().sort()[:50]:
        rows = qk.filter(pl.col("user_id") == user)
        clicked = rows.filter(pl.col("click") == 1)["item_id"].to_list()[:10]
        expected = clicked + [0] * (10 - len(clicked))
        assert rows.select(hist).unique().rows() == [tuple(expected)]
    assert (qk.select(hist) == 0).to_numpy().any() and (qk["item_id"] > 0).all()


def test_qk_video_raw_variant_has_the_first_ten_columns(tmp_path):
    path = write_qk_video(tmp_path / "QK-video.csv", rows=2_000, seed=0, variant="QK-video")
    assert _header(path) == ",".join(QK_VIDEO_COLUMNS[:10])
    with pytest.raises(ValueError, match="ctr_data_1M"):
        write_qk_video(tmp_path / "x.csv", rows=10, variant="qk")


def test_writers_are_deterministic(tmp_path):
    for name in ("a", "b"):
        write_tiktok(tmp_path / name / "t.txt", rows=1_000, seed=4)
        write_qk_video(tmp_path / name / "q.csv", rows=1_000, seed=4)
    assert _read_all(tmp_path / "a") == _read_all(tmp_path / "b")
    write_tiktok(tmp_path / "c.txt", rows=1_000, seed=5)
    assert (tmp_path / "c.txt").read_bytes() != (tmp_path / "a" / "t.txt").read_bytes()
