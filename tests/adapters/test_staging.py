"""The temporary folder export and predict write into (adapters/recsys/staging.py)."""

from pathlib import Path

import pytest

from recsys_hmtl.adapters.recsys.staging import staging_folder


def test_a_failure_leaves_neither_the_temporary_folder_nor_the_parents_it_made(tmp_path: Path):
    (tmp_path / "kept").mkdir()
    out = tmp_path / "kept" / "new" / "deeper" / "scores.parquet"
    with pytest.raises(RuntimeError, match="half-way"):
        with staging_folder(out) as tmp:
            (tmp / "part-0.parquet").write_bytes(b"partial")
            raise RuntimeError("half-way")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []  # a folder that was there before stays


def test_a_success_leaves_only_what_the_block_renamed_into_place(tmp_path: Path):
    out = tmp_path / "new" / "scores.parquet"
    with staging_folder(out) as tmp:
        assert tmp.parent == out.parent and tmp.is_dir() and not list(tmp.iterdir())
        (tmp / "scores.parquet").write_bytes(b"scores")
        (tmp / "scores.parquet").rename(out)
    assert [p.name for p in out.parent.iterdir()] == ["scores.parquet"]
