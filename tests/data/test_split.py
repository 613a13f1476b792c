"""Splits: date cuts (configured or derived from the data) and the seeded random split."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys_hmtl.data import synthetic
from recsys_hmtl.data.config import DataConfig, SparseFeatureConfig, SplitConfig, TaskConfig
from recsys_hmtl.data.pipeline import prepare
from recsys_hmtl.data.split import SPLITS, assign_splits, uniform_hash
from recsys_hmtl.errors import InputError

DATES = [20220401, 20220402, 20220403, 20220404, 20220405, 20220406]


def _frame(dates=DATES, per_date: int = 3) -> pl.DataFrame:
    values = [d for d in dates for _ in range(per_date)]
    return pl.DataFrame({"date": values, "user_id": list(range(len(values)))})


def _split_of_dates(codes: pl.Series, frame: pl.DataFrame) -> dict[str, list[int]]:
    out = {}
    for code, name in enumerate(SPLITS):
        out[name] = sorted(set(frame.get_column("date").filter(codes == code).to_list()))
    return out


def test_default_date_cut_is_last_two_days_test_and_the_day_before_validation():
    frame = _frame()
    codes, info = assign_splits(frame, SplitConfig(kind="date", column="date"))
    assert _split_of_dates(codes, frame) == {
        "train": DATES[:3], "val": [20220404], "test": [20220405, 20220406]}
    assert (info["val_start"], info["test_start"]) == (20220404, 20220405)
    assert info["rows"] == {"train": 9, "val": 3, "test": 6}


@pytest.mark.parametrize("val_start,test_start", [("20220403", "20220405"), ("2022-04-03", "2022-04-05")])
def test_configured_cut_dates(val_start, test_start):
    frame = _frame()
    codes, _ = assign_splits(frame, SplitConfig(column="date", val_start=val_start, test_start=test_start))
    assert _split_of_dates(codes, frame) == {
        "train": [20220401, 20220402], "val": [20220403, 20220404], "test": [20220405, 20220406]}


def test_only_the_test_start_configured_derives_val_days_before_it():
    frame = _frame()
    codes, _ = assign_splits(frame, SplitConfig(column="date", test_start="20220404", val_days=2))
    assert _split_of_dates(codes, frame) == {
        "train": [20220401], "val": [20220402, 20220403], "test": [20220404, 20220405, 20220406]}


def test_the_cut_counts_distinct_dates_not_rows():
    # Unsorted rows, gaps between dates: the last 2 *distinct* dates present are test.
    frame = pl.DataFrame({"date": [20220510, 20220401, 20220420, 20220510, 20220401, 20220415]})
    codes, _ = assign_splits(frame, SplitConfig(column="date", test_days=2, val_days=1))
    assert codes.to_list() == [2, 0, 2, 2, 0, 1]


def test_empty_split_after_the_date_cut_names_split_dates_and_column():
    frame = _frame()
    with pytest.raises(InputError) as err:
        assign_splits(frame, SplitConfig(column="date", val_start="20220405", test_start="20220501"),
                      source="logs.csv")
    message = str(err.value)
    assert "empty split 'test'" in message and "after the date cut" in message
    assert "20220501" in message and "20220401..20220406" in message
    assert "column 'date'" in message and "logs.csv" in message
    assert err.value.column == "date"


def test_too_few_dates_for_the_default_cut():
    with pytest.raises(InputError, match="at least 4 distinct dates .* has 3"):
        assign_splits(_frame(DATES[:3]), SplitConfig(column="date"))


def test_val_start_after_test_start_is_rejected():
    with pytest.raises(InputError, match="val_start 20220405 must come before test_start 20220403"):
        assign_splits(_frame(), SplitConfig(column="date", val_start="20220405", test_start="20220403"))


def test_missing_date_names_the_row():
    frame = pl.DataFrame({"date": [20220401, 20220402, None, 20220404, 20220405]})
    with pytest.raises(InputError, match="row 3 of the concatenated logs has no date") as err:
        assign_splits(frame, SplitConfig(column="date"))
    assert err.value.row == 3


def test_uniform_hash_is_splitmix64():
    # SplitMix64 seeded with 0 first outputs 0xE220A8397B1DCDAF (the published reference value);
    # our row 1 with seed 0 is that state (1 * golden gamma), and u keeps its top 53 bits.
    u = uniform_hash(2, seed=0)
    assert u[0] == 0.0  # the mix of state 0 is 0
    assert u[1] == (0xE220A8397B1DCDAF >> 11) / 2**53


def test_random_split_fractions_seed_and_order_of_rows():
    frame = pl.DataFrame({"x": np.arange(40_000)})
    cfg = SplitConfig(kind="random", fractions=[0.81, 0.09, 0.10], seed=7)
    codes, info = assign_splits(frame, cfg)
    shares = np.bincount(codes.to_numpy(), minlength=3) / frame.height
    assert np.allclose(shares, [0.81, 0.09, 0.10], atol=0.01)  # binomial sd ~0.002 at 40k rows
    again, _ = assign_splits(frame.with_columns(y=pl.col("x") * 2), cfg)  # more features: same split
    assert again.equals(codes)
    other, _ = assign_splits(frame, SplitConfig(kind="random", fractions=[0.81, 0.09, 0.10], seed=8))
    assert (other != codes).sum() > 1000
    assert info["rows"] == {name: int((codes == i).sum()) for i, name in enumerate(SPLITS)}


@pytest.mark.parametrize("fractions", [[0.8, 0.1], [0.8, 0.3, -0.1], [0.5, 0.2, 0.2]])
def test_bad_fractions(fractions):
    with pytest.raises(InputError, match="three non-negative fractions") as err:
        assign_splits(_frame(), SplitConfig(kind="random", fractions=fractions))
    assert err.value.key == "data.split.fractions"


def test_random_split_with_an_empty_part():
    with pytest.raises(InputError, match="empty split 'val' after the random split of 18 rows"):
        assign_splits(_frame(), SplitConfig(kind="random", fractions=[0.9, 0.0, 0.1]))


def test_unknown_kind_suggests_the_closest():
    with pytest.raises(InputError, match="did you mean 'random'"):
        assign_splits(_frame(), SplitConfig(kind="randon"))


def test_tiktok_preset_splits_81_9_10_reproducibly(tmp_path):
    synthetic.write_tiktok(tmp_path / "final_track2_train.txt", rows=6000, seed=1)
    cfg = DataConfig(dataset="tiktok", root=str(tmp_path))
    first = prepare(cfg, [], use_cache=False)
    rows = first.report["rows"]
    assert sum(rows.values()) == 6000
    assert abs(rows["train"] / 6000 - 0.81) < 0.03 and abs(rows["test"] / 6000 - 0.10) < 0.03
    second = prepare(cfg, [], use_cache=False)
    assert all(first.splits[s].equals(second.splits[s]) for s in SPLITS)
    assert first.tasks == ["like", "finish"]  # preset priority order


def test_empty_date_split_through_prepare_names_the_log_files(tmp_path):
    log = tmp_path / "log.csv"
    pl.DataFrame({"user": [1, 2, 3, 4], "date": [20220401, 20220401, 20220402, 20220403],
                  "click": [0, 1, 0, 1]}).write_csv(log)
    cfg = DataConfig(dataset="custom", root=str(tmp_path), files=["log.csv"], user_column="user",
                     sparse=[SparseFeatureConfig("user")], split=SplitConfig(column="date", test_start="20220410"))
    with pytest.raises(InputError, match="empty split 'test'") as err:
        prepare(cfg, [TaskConfig("click")])
    assert str(log) in str(err.value)
    assert not (tmp_path / ".recsys_hmtl_cache").exists()


def test_genuine_tiktok_sample_random_split(shared_data, tmp_path):
    (tmp_path / "final_track2_train.txt").symlink_to(shared_data / "tiktok" / "final_track2_train.sample.txt")
    prepared = prepare(DataConfig(dataset="tiktok", root=str(tmp_path)), [], use_cache=False)
    rows = prepared.report["rows"]
    assert sum(rows.values()) == 200 and min(rows.values()) > 0
    # ids seen < 10 times fold into index 1; -1 (missing music_id) is index 0, not an id
    assert -1 not in prepared.encoder().vocabularies["music_id"].values.to_list()
    assert prepared.splits["train"]["music_id"].to_list().count(0) > 0
