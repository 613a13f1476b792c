"""Damaged checkpoints are refused, not loaded (SPEC §6, §11; issue 10 item 2).

Every ``rank<r>.pt`` has its sha256 recorded next to it when it is written and checked on every
load: ``evaluate`` of a changed, truncated, empty or foreign file exits 2 naming it and writes
nothing; ``train --resume`` continues from the newest intact checkpoint instead (same final
numbers as an uninterrupted run); checkpoints written before digests were recorded still load."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from mainjob import read_json, run_cli, train_args
from recsys_hmtl.errors import InputError
from recsys_hmtl.training.checkpoint import CheckpointStore, assemble_full_state, load_rank_file

# A tiny run: 1,500 demo rows, 32-row batches, checkpoints at batches 5, 10 and 12 (10 and 12 kept).
SCHEDULE = ["trainer.batch_size=32", "trainer.max_steps=12", "trainer.ckpt_every=5", "trainer.max_epochs=20"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, a finished run folder): read-only; tests work on copies (:func:`copy_run`)."""
    from recsys_hmtl.data.demo import write_demo_data

    root = tmp_path_factory.mktemp("integrity")
    data, run = root / "data", root / "run"
    write_demo_data(data, rows=1500, seed=5)
    assert run_cli(*train_args(data, run, *SCHEDULE)) == 0
    return data, run


def copy_run(trained, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained[1], run)
    return run


def step_file(run: Path, step: int, rank: int = 0) -> Path:
    return run / "checkpoints" / f"step_{step:09d}" / f"rank{rank}.pt"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def overwrite_tensor_bytes(path: Path) -> None:
    """Flip (up to) 64 bytes in the middle of the largest tensor record (stored uncompressed)."""
    with zipfile.ZipFile(path) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(record.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", handle.read(4))
        count = min(64, record.file_size)
        where = record.header_offset + 30 + name_len + extra_len + (record.file_size - count) // 2
        handle.seek(where)
        original = handle.read(count)
        handle.seek(where)
        handle.write(bytes(b ^ 0xFF for b in original))


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(os.urandom(len(data)))
    else:
        raise ValueError(how)


def strip_digests(run: Path) -> None:
    """Make the run look written before digests: no ``*.sha256``, no per-step ``checkpoint.json``."""
    for path in [*run.glob("checkpoints/step_*/*.sha256"), *run.glob("checkpoints/step_*/checkpoint.json")]:
        path.unlink()


def test_bytes_overwritten_in_tensor_data_fail_evaluate_naming_the_file(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    damaged = step_file(run, 12)
    overwrite_tensor_bytes(damaged)
    torch.load(damaged, weights_only=True)  # torch itself does not notice: the numbers would be wrong
    before = snapshot(run)
    capsys.readouterr()

    assert run_cli("evaluate", "--run", run) == 2
    err = capsys.readouterr().err
    assert str(damaged) in err and "digest mismatch" in err and "Traceback" not in err
    assert not (run / "eval_report.json").exists() and not (run / "eval_report.md").exists()
    assert snapshot(run) == before, "evaluate neither falls back nor touches any file"


@pytest.mark.parametrize("legacy", [False, True], ids=["with_digest", "old_format"])
@pytest.mark.parametrize("how", ["truncated", "empty", "random"])
def test_truncated_empty_or_foreign_file_fails_evaluate_naming_it(trained, tmp_path, capsys, how, legacy):
    run = copy_run(trained, tmp_path)
    if legacy:
        strip_digests(run)
    damaged = step_file(run, 12)
    damage(damaged, how)
    before = snapshot(run)
    capsys.readouterr()

    assert run_cli("evaluate", "--run", run) == 2
    err = capsys.readouterr().err
    assert str(damaged) in err and "Traceback" not in err
    expected = "truncated/not a checkpoint" if legacy else "digest mismatch"
    assert expected in err, err
    assert not (run / "eval_report.json").exists()
    assert snapshot(run) == before


def test_resume_falls_back_to_the_previous_intact_checkpoint(trained, tmp_path, caplog):
    data, whole = trained
    run = copy_run(trained, tmp_path)
    damaged = step_file(run, 12)
    damage(damaged, "truncated")

    with caplog.at_level(logging.WARNING, logger="recsys_hmtl"):
        assert run_cli(*train_args(data, run, *SCHEDULE), "--resume") == 0
    warned = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(damaged) in warned and str(step_file(run, 10).parent) in warned

    a, b = read_json(whole / "run_summary.json"), read_json(run / "run_summary.json")
    assert a["steps"] == b["steps"] == 12
    for task, entry in a["val"].items():
        assert entry["auc"] == pytest.approx(b["val"][task]["auc"], abs=1e-6, nan_ok=True), task
    assert a["stage_diagnostics"] == pytest.approx(b["stage_diagnostics"], abs=1e-6)
    # The retrained last checkpoint is intact again and holds the uninterrupted run's weights.
    assert read_json(run / "checkpoints" / "latest.json")["step"] == 12
    again = load_rank_file(damaged.parent, 0)["model"]
    for name, value in load_rank_file(step_file(whole, 12).parent, 0)["model"].items():
        if torch.is_tensor(value):
            assert torch.allclose(value, again[name], atol=1e-6), name
    assert run_cli("evaluate", "--run", run, "--split", "val") == 0


def test_resume_with_a_damaged_pointer_scans_the_step_folders(trained, tmp_path):
    data, whole = trained
    run = copy_run(trained, tmp_path)
    pointer = run / "checkpoints" / "latest.json"
    pointer.write_text('{"step": 12, "dir": "step_0000')  # cut short
    assert run_cli(*train_args(data, run, *SCHEDULE), "--resume") == 0  # nothing left to train
    assert read_json(pointer) == read_json(whole / "checkpoints" / "latest.json")  # repaired
    assert read_json(run / "run_summary.json")["val"] == read_json(whole / "run_summary.json")["val"]


def test_resume_with_no_intact_checkpoint_exits_2_naming_the_damaged_files(trained, tmp_path, capsys):
    data, _ = trained
    run = copy_run(trained, tmp_path)
    damage(step_file(run, 12), "truncated")
    overwrite_tensor_bytes(step_file(run, 10))
    before = snapshot(run / "checkpoints")
    capsys.readouterr()
    assert run_cli(*train_args(data, run, *SCHEDULE), "--resume") == 2
    err = capsys.readouterr().err
    assert "no intact checkpoint" in err and "Traceback" not in err
    assert str(step_file(run, 12)) in err and str(step_file(run, 10)) in err
    assert snapshot(run / "checkpoints") == before


def test_an_old_format_checkpoint_without_digests_loads_and_resumes_into_the_new_format(trained, tmp_path):
    data, whole = trained
    run = copy_run(trained, tmp_path)
    strip_digests(run)
    assert run_cli("evaluate", "--run", run, "--split", "val") == 0
    assert read_json(run / "eval_report.json")["tasks"] == read_json(whole / "run_summary.json")["val"]

    assert run_cli(*train_args(data, run, *SCHEDULE, "trainer.max_steps=14"), "--resume") == 0
    latest = read_json(run / "checkpoints" / "latest.json")
    assert latest["step"] == 14 and read_json(step_file(run, 14).parent / "checkpoint.json") == latest
    assert (step_file(run, 14).parent / "rank0.pt.sha256").is_file()
    # The old-format step is dropped once a resumable new one exists (nothing resumes from it).
    assert step_names(run) == ["step_000000014"]


# --- CheckpointStore on its own (two ranks written one after the other; no process group) -------

def write_steps(run: Path, steps: list[int], world: int = 2) -> list[CheckpointStore]:
    stores = [CheckpointStore(run, rank, world, keep=2) for rank in range(world)]
    for step in steps:
        for store in reversed(stores):  # rank 0 last: it writes the step's metadata and latest.json
            store.save(step, {"model": {"w": torch.full((3,), float(step + store.rank))}}, meta={"steps": step})
    return stores


def step_names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("step_*"))


def test_every_rank_resumes_from_the_same_intact_step_and_a_superseded_timeline_is_pruned(tmp_path, caplog):
    stores = write_steps(tmp_path, [5, 10, 12])
    assert step_names(tmp_path) == ["step_000000010", "step_000000012"]
    damaged = step_file(tmp_path, 12, rank=1)  # rank 0's file of step 12 is fine: the step is not
    overwrite_tensor_bytes(damaged)

    with caplog.at_level(logging.WARNING):
        points = [store.resume_point() for store in stores]
    assert [p["step"] for p in points] == [10, 10]
    assert str(damaged) in caplog.text
    assert [store.load(p)["model"]["w"][0].item() for store, p in zip(stores, points)] == [10.0, 11.0]
    assert read_json(tmp_path / "checkpoints" / "latest.json")["step"] == 10  # rank 0 re-pointed it

    cut_short = tmp_path / "checkpoints" / "step_000000008"  # a save killed before checkpoint.json
    cut_short.mkdir()
    (cut_short / "rank1.pt").write_bytes(b"partial")
    assert [store.resume_point()["step"] for store in stores] == [10, 10]
    write_steps(tmp_path, [11])  # the resumed run's next checkpoint: the damaged step 12 goes
    assert step_names(tmp_path) == ["step_000000010", "step_000000011"]
    assert read_json(tmp_path / "checkpoints" / "latest.json")["step"] == 11
    write_steps(tmp_path, [12])
    assert step_names(tmp_path) == ["step_000000011", "step_000000012"]
    assert assemble_full_state(step_file(tmp_path, 12).parent, 2)["w"][0].item() == 12.0


def test_loading_checks_the_digest_of_every_rank_file(tmp_path):
    write_steps(tmp_path, [5])
    step_dir = step_file(tmp_path, 5).parent
    overwrite_tensor_bytes(step_dir / "rank1.pt")
    assert load_rank_file(step_dir, 0)["model"]["w"][0].item() == 5.0
    for load in (lambda: load_rank_file(step_dir, 1), lambda: assemble_full_state(step_dir, 2),
                 lambda: CheckpointStore(tmp_path, 1, 2).load(CheckpointStore(tmp_path).latest())):
        with pytest.raises(InputError, match="digest mismatch") as caught:
            load()
        assert str(step_dir / "rank1.pt") in str(caught.value)
    (step_dir / "rank0.pt.sha256").unlink()  # this format records a digest for every file
    with pytest.raises(InputError, match="no digest recorded"):
        load_rank_file(step_dir, 0)
    (step_dir / "rank1.pt.sha256").write_text(json.dumps("not a digest"))
    with pytest.raises(InputError, match="damaged digest file"):
        load_rank_file(step_dir, 1)
