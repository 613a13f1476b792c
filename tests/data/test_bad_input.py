"""Every kind of bad input is an InputError naming the file, the column and the first bad row.

Row numbers: 1-based data rows, the header excluded; CSV messages also give the line of the file.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from recsys_hmtl.data.config import DataConfig, DenseFeatureConfig, SparseFeatureConfig, SplitConfig, TaskConfig
from recsys_hmtl.data.schema import KUAIRAND_LOG_COLUMNS, KUAIRAND_USER_COLUMNS, KUAIRAND_VIDEO_COLUMNS
from recsys_hmtl.data.sources import fingerprint, load, resolve
from recsys_hmtl.errors import InputError

LOGS = ("log_standard_4_08_to_4_21_1k.csv", "log_standard_4_22_to_5_08_1k.csv")
USERS, VIDEOS = "user_features_1k.csv", "video_features_basic_1k.csv"


def _log_rows(n: int, first_user: int = 0) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        row = dict.fromkeys(KUAIRAND_LOG_COLUMNS, "0")
        row.update(user_id=str(first_user + i % 3), video_id=str(i % 2), date="20220420", hourmin="1800")
        rows.append(row)
    return rows


def _write(path: Path, rows: list[dict[str, str]], columns=KUAIRAND_LOG_COLUMNS, header: bool = True) -> Path:
    lines = [",".join(columns)] if header else []
    lines += [",".join(r[c] for c in KUAIRAND_LOG_COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _kuairand(root: Path) -> Path:
    """A valid KuaiRand-1K folder; tests then break one thing."""
    _write(root / LOGS[0], _log_rows(20))
    _write(root / LOGS[1], _log_rows(20))
    user = "{u},full_active,0,1,1,10,500+,3,\"[1,5)\",3,\"[1,5)\",9,730+," + ",".join(["1.0"] * 18)
    (root / USERS).write_text(",".join(KUAIRAND_USER_COLUMNS) + "\n"
                              + "\n".join(user.format(u=u) for u in range(3)) + "\n")
    (root / VIDEOS).write_text(",".join(KUAIRAND_VIDEO_COLUMNS) + "\n"
                               + "0,1,NORMAL,2022-04-10,Web,0,100.0,720,1280,5,9,\"1,2\"\n"
                               + "1,2,AD,2022-04-10,Web,0,200.0,720,1280,6,9,3\n")
    return root


def _error(root: Path, **data) -> InputError:
    tasks = data.pop("tasks", [])
    with pytest.raises(InputError) as info:
        cfg, tasks = resolve(DataConfig(root=str(root), **data), tasks)
        load(cfg, tasks)
    return info.value


def _break(path: Path, row: int, column: str, value: str) -> None:
    """Set ``column`` of data row ``row`` (1-based, header excluded) of a headed CSV to ``value``."""
    lines = path.read_text().splitlines()
    names = lines[0].split(",")
    fields = lines[row].split(",")
    fields[names.index(column)] = value
    lines[row] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def test_the_valid_folder_loads(tmp_path):
    cfg, tasks = resolve(DataConfig(dataset="kuairand", root=str(_kuairand(tmp_path))), [])
    assert load(cfg, tasks).frame.height == 40  # the fixtures below break exactly one thing


# --- files ----------------------------------------------------------------------------------------
def test_missing_file_names_the_expected_path_and_preset(tmp_path):
    _kuairand(tmp_path)
    (tmp_path / LOGS[1]).unlink()
    err = _error(tmp_path, dataset="kuairand")
    assert err.file == str(tmp_path / LOGS[1])
    assert str(tmp_path / LOGS[1]) in str(err) and "dataset kuairand, variant 1k" in str(err)
    assert str(tmp_path / "data") in str(err)  # the other folder searched
    cfg, _ = resolve(DataConfig(dataset="kuairand", root=str(tmp_path)), [])
    with pytest.raises(InputError, match="log file not found"):
        fingerprint(cfg)


def test_missing_file_suggests_the_variant_present(tmp_path):
    (tmp_path / "log_standard_4_08_to_4_21_pure.csv").write_text("x\n")
    err = _error(tmp_path, dataset="kuairand")
    assert "did you mean 'log_standard_4_08_to_4_21_pure.csv'" in str(err) and "data.variant" in str(err)


def test_missing_root(tmp_path):
    err = _error(tmp_path / "nowhere", dataset="qk_video")
    assert "does not exist" in str(err) and "ctr_data_1M.csv" in str(err)


def test_empty_file(tmp_path):
    _kuairand(tmp_path)
    (tmp_path / LOGS[0]).write_text("")
    err = _error(tmp_path, dataset="kuairand")
    assert err.file == str(tmp_path / LOGS[0]) and "empty" in str(err)


def test_header_without_rows(tmp_path):
    _kuairand(tmp_path)
    (tmp_path / USERS).write_text(",".join(KUAIRAND_USER_COLUMNS) + "\n")
    err = _error(tmp_path, dataset="kuairand")
    assert err.file == str(tmp_path / USERS) and "no data rows after the header" in str(err)


# --- columns --------------------------------------------------------------------------------------
def test_misspelled_column_in_the_file(tmp_path):
    _kuairand(tmp_path)
    misspelt = [c if c != "video_id" else "vedio_id" for c in KUAIRAND_LOG_COLUMNS]
    _write(tmp_path / LOGS[1], _log_rows(5), columns=misspelt)
    err = _error(tmp_path, dataset="kuairand")
    assert (err.file, err.column) == (str(tmp_path / LOGS[1]), "video_id")
    assert "did you mean 'vedio_id'?" in str(err)


def test_misspelled_column_in_the_config(tmp_path):
    _kuairand(tmp_path)
    err = _error(tmp_path, dataset="kuairand",
                 sparse=[SparseFeatureConfig("degree", column="user_activ_degree")])
    assert err.column == "user_activ_degree" and "sparse feature 'degree'" in str(err)
    assert "did you mean 'user_active_degree'?" in str(err) and str(tmp_path / USERS) in str(err)


def test_wrong_separator_is_named(tmp_path):
    _kuairand(tmp_path)
    (tmp_path / LOGS[0]).write_text((tmp_path / LOGS[0]).read_text().replace(",", "\t"))
    err = _error(tmp_path, dataset="kuairand")
    assert err.file == str(tmp_path / LOGS[0]) and "separated by a tab" in str(err)


def test_side_table_without_its_key(tmp_path):
    _kuairand(tmp_path)
    (tmp_path / VIDEOS).write_text((tmp_path / VIDEOS).read_text().replace("video_id", "videoid", 1))
    err = _error(tmp_path, dataset="kuairand")
    assert (err.file, err.column) == (str(tmp_path / VIDEOS), "video_id")
    assert "did you mean 'videoid'" in str(err)


# --- values ---------------------------------------------------------------------------------------
def test_text_in_an_integer_id(tmp_path):
    _kuairand(tmp_path)
    _break(tmp_path / LOGS[1], 17, "user_id", "abc")
    err = _error(tmp_path, dataset="kuairand")
    assert (err.file, err.column, err.row) == (str(tmp_path / LOGS[1]), "user_id", 17)
    assert "row 17 (line 18 of the file)" in str(err) and "'abc' is not an integer" in str(err)


def test_text_in_a_label(tmp_path):
    _kuairand(tmp_path)
    _break(tmp_path / LOGS[0], 4, "is_like", "yes")
    err = _error(tmp_path, dataset="kuairand")
    assert (err.column, err.row) == ("is_like", 4) and "'yes' is not a label 0 or 1" in str(err)


@pytest.mark.parametrize("value", ["2", "-1", "300"])  # 300 does not even fit the Int8 the label is read as
def test_label_outside_0_1(tmp_path, value):
    _kuairand(tmp_path)
    _break(tmp_path / LOGS[0], 9, "long_view", value)
    _break(tmp_path / LOGS[0], 12, "is_click", "5")
    err = _error(tmp_path, dataset="kuairand")
    assert (err.file, err.column, err.row) == (str(tmp_path / LOGS[0]), "long_view", 9)
    assert f"label {value} is outside {{0, 1}}" in str(err) and "row 9 (line 10 of the file)" in str(err)


def test_missing_label(tmp_path):
    _kuairand(tmp_path)
    _break(tmp_path / LOGS[0], 3, "is_hate", "")
    err = _error(tmp_path, dataset="kuairand")
    assert (err.column, err.row) == ("is_hate", 3) and "label is missing" in str(err)


@pytest.mark.parametrize("value", ["", "NaN"])
def test_missing_id(tmp_path, value):
    _kuairand(tmp_path)
    _break(tmp_path / LOGS[0], 6, "video_id", value)
    err = _error(tmp_path, dataset="kuairand")
    assert (err.column, err.row) == ("video_id", 6) and "missing id" in str(err)


def test_the_earliest_bad_row_is_reported(tmp_path):
    _kuairand(tmp_path)
    _break(tmp_path / LOGS[0], 11, "user_id", "u1")
    _break(tmp_path / LOGS[0], 7, "tab", "x")
    err = _error(tmp_path, dataset="kuairand")
    assert (err.column, err.row) == ("tab", 7)


def test_non_integral_code_in_a_side_table(tmp_path):
    _kuairand(tmp_path)
    lines = (tmp_path / USERS).read_text().splitlines()
    lines[2] = lines[2][: -len("1.0")] + "1.5"  # onehot_feat17 of data row 2
    (tmp_path / USERS).write_text("\n".join(lines) + "\n")
    err = _error(tmp_path, dataset="kuairand")
    assert (err.file, err.column, err.row) == (str(tmp_path / USERS), "onehot_feat17", 2)
    assert "'1.5' is not an integer code" in str(err) or "1.5 is not an integer code" in str(err)


def test_duplicate_side_key(tmp_path):
    _kuairand(tmp_path)
    lines = (tmp_path / USERS).read_text().splitlines()
    (tmp_path / USERS).write_text("\n".join([*lines, lines[2]]) + "\n")  # user 1 again as data row 4
    err = _error(tmp_path, dataset="kuairand")
    assert (err.file, err.column, err.row) == (str(tmp_path / USERS), "user_id", 2)
    assert "key 1 appears again in row 4" in str(err)


def test_parquet_rows_are_1_based(tmp_path):
    pl.DataFrame({"user": [1, 2, 3], "price": ["1.5", "2", "x"], "y": [0, 1, 1]}).write_parquet(
        tmp_path / "log.parquet")
    err = _error(tmp_path, dataset="custom", files=["log.parquet"], user_column="user",
                 dense=[DenseFeatureConfig("price")], split=SplitConfig(kind="random"), tasks=[TaskConfig("y")])
    assert (err.column, err.row) == ("price", 3)
    assert "row 3 (1-based)" in str(err) and "'x' is not a number" in str(err)


# --- headers --------------------------------------------------------------------------------------
TIKTOK_LINE = "37448\t115\t567569\t44888\t42\t0\t0\t0\t1699\t43981\t53085738314\t9"
TIKTOK_NAMES = "\t".join(["uid", "user_city", "item_id", "author_id", "item_city", "channel", "finish", "like",
                          "music_id", "did", "creat_time", "video_duration"])


def test_tiktok_header_where_none_is_expected(tmp_path):
    (tmp_path / "final_track2_train.txt").write_text(f"{TIKTOK_NAMES}\n{TIKTOK_LINE}\n")
    err = _error(tmp_path, dataset="tiktok")
    assert err.file == str(tmp_path / "final_track2_train.txt")
    assert "line 1 looks like a header" in str(err) and "has_header" in str(err)


def test_tiktok_rows_equal_lines(tmp_path):
    bad = TIKTOK_LINE.replace("\t42\t", "\tx\t")
    (tmp_path / "final_track2_train.txt").write_text(f"{TIKTOK_LINE}\n{TIKTOK_LINE}\n{bad}\n")
    err = _error(tmp_path, dataset="tiktok")
    assert (err.column, err.row) == ("item_city", 3) and "row 3 (line 3 of the file)" in str(err)


def test_tiktok_wrong_field_count(tmp_path):
    (tmp_path / "final_track2_train.txt").write_text(TIKTOK_LINE.replace("\t", ",") + "\n")
    err = _error(tmp_path, dataset="tiktok")
    assert "line 1 has 1 tab-separated fields, expected 12" in str(err)


def test_kuairand_without_header(tmp_path):
    _kuairand(tmp_path)
    _write(tmp_path / LOGS[0], _log_rows(3), header=False)
    err = _error(tmp_path, dataset="kuairand")
    assert err.file == str(tmp_path / LOGS[0]) and "line 1 is data" in str(err)


def test_qk_video_without_header(tmp_path):
    (tmp_path / "ctr_data_1M.csv").write_text("1,100,1,0,0,0,0,1,1,3,0,0,0,0,0,0,0,0,0,0\n")
    err = _error(tmp_path, dataset="qk_video")
    assert err.file == str(tmp_path / "ctr_data_1M.csv") and "line 1 is data" in str(err)


# --- configuration --------------------------------------------------------------------------------
def test_unknown_dataset_and_variant():
    with pytest.raises(InputError, match="did you mean 'kuairand'") as info:
        resolve(DataConfig(dataset="kuairnd"), [])
    assert info.value.key == "data.dataset"
    with pytest.raises(InputError, match="unknown KuaiRand variant '2k'") as info:
        resolve(DataConfig(dataset="kuairand", variant="2k"), [])
    assert info.value.key == "data.variant"


@pytest.mark.parametrize("column", ["play_time_ms", "is_like"])
def test_features_that_leak_the_labels_are_refused(column):
    with pytest.raises(InputError, match=f"reads column '{column}'"):
        resolve(DataConfig(dataset="kuairand", dense=[DenseFeatureConfig("x", column=column)]),
                [TaskConfig("is_click")])


def test_custom_needs_files_and_tasks():
    with pytest.raises(InputError, match="needs data.files"):
        resolve(DataConfig(dataset="custom", sparse=[SparseFeatureConfig("a")]), [TaskConfig("y")])
    with pytest.raises(InputError, match="needs a tasks list"):
        resolve(DataConfig(dataset="custom", files=["x.csv"], sparse=[SparseFeatureConfig("a")]), [])
