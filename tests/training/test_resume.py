"""Kills lose at most the steps since the last checkpoint, and ``--resume`` ends where an
uninterrupted run ends (SPEC §6, §11): SIGKILL a training process after a checkpoint, resume it,
compare with an uninterrupted run of the same seed; non-finite losses stop the run cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mainjob import ROOT, read_json, run_cli, run_cli_process, train_args

# Long enough that the kill lands mid-run (a step takes a few ms; checkpoints every 5 batches).
SCHEDULE = ["trainer.max_steps=120", "trainer.max_epochs=10", "stage.name=scd_vio"]


def kill_after_first_checkpoint(args: list[str], run_dir) -> int:
    """Start the CLI, SIGKILL it as soon as a checkpoint is on disk; the checkpointed batch."""
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recsys_hmtl.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = run_dir / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 120
    while not pointer.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return read_json(pointer)["step"]


# The blocks reader (data/block_stream.py) with blocks small enough that the demo spans many windows.
READERS = {"memory": [], "blocks": ["data.reader=blocks", "data.block_rows=200", "data.window_blocks=3"]}


@pytest.mark.parametrize("reader", list(READERS))
def test_sigkill_then_resume_ends_with_the_uninterrupted_metrics(demo_root, tmp_path, reader):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    schedule = [*SCHEDULE, *READERS[reader]]
    assert run_cli(*train_args(demo_root, whole, *schedule)) == 0
    step = kill_after_first_checkpoint(train_args(demo_root, killed, *schedule), killed)
    assert 0 < step < 120
    assert not (killed / "run_summary.json").exists()

    assert run_cli(*train_args(demo_root, killed, *schedule), "--resume") == 0
    a, b = read_json(whole / "run_summary.json"), read_json(killed / "run_summary.json")
    assert a["steps"] == b["steps"] == 120
    for task, entry in a["val"].items():
        if entry["auc"] is None:
            assert b["val"][task]["auc"] is None
        else:
            assert abs(entry["auc"] - b["val"][task]["auc"]) <= 1e-6, task
    assert a["stage_diagnostics"] == pytest.approx(b["stage_diagnostics"], abs=1e-6)
    for run in (whole, killed):
        assert run_cli("evaluate", "--run", run) == 0
    test_a, test_b = (read_json(run / "eval_report.json")["tasks"] for run in (whole, killed))
    for task, entry in test_a.items():
        for key in ("auc", "gauc"):
            assert entry[key] == pytest.approx(test_b[task][key], abs=1e-6, nan_ok=True), (task, key)


def test_resume_of_a_finished_run_trains_nothing_more(demo_root, tmp_path):
    run = tmp_path / "run"
    assert run_cli(*train_args(demo_root, run)) == 0
    first = read_json(run / "run_summary.json")
    assert run_cli(*train_args(demo_root, run), "--resume") == 0
    again = read_json(run / "run_summary.json")
    assert again["steps"] == first["steps"] and again["val"] == first["val"]


def test_resume_with_another_model_or_stage_is_refused(demo_root, tmp_path):
    run = tmp_path / "run"
    assert run_cli(*train_args(demo_root, run)) == 0
    other = run_cli_process(*train_args(demo_root, run, "stage.name=uw"), "--resume")
    assert other.returncode == 2 and "stage.name" in other.stderr
    # The schedule may change: a longer run continues from the checkpoint.
    assert run_cli(*train_args(demo_root, run, "trainer.max_steps=20"), "--resume") == 0
    assert read_json(run / "run_summary.json")["steps"] == 20


def test_non_finite_losses_stop_the_run_and_keep_the_last_good_checkpoint(demo_root, tmp_path):
    run = tmp_path / "run"
    # An absurd learning rate blows the dense weights up after the first step: losses turn NaN.
    result = run_cli_process(*train_args(demo_root, run, "trainer.lr=1e30", "trainer.ckpt_every=1",
                                         "trainer.max_nonfinite=3"))
    assert result.returncode == 1
    assert "3 consecutive steps had a non-finite loss" in result.stderr
    assert "Traceback" not in result.stderr
    latest = read_json(run / "checkpoints" / "latest.json")
    assert latest["step"] == 1, "only the good first step is checkpointed"
    payload = torch.load(latest_file(run, latest), weights_only=True)
    assert payload["counters"]["skipped"] == 0
    dense = [v for k, v in payload["model"].items() if torch.is_tensor(v) and v.is_floating_point()]
    assert dense and all(torch.isfinite(v).all() for v in dense)
    assert not (run / "run_summary.json").exists()


def latest_file(run, latest: dict):
    return run / "checkpoints" / latest["dir"] / "rank0.pt"


def test_resume_refuses_input_files_changed_since_the_checkpoint(tmp_path):
    from recsys_hmtl.data.demo import write_demo_data

    data, run = tmp_path / "data", tmp_path / "run"
    write_demo_data(data, rows=4000, seed=9)
    assert run_cli(*train_args(data, run, "trainer.max_steps=5")) == 0
    before = read_json(run / "checkpoints" / "latest.json")
    write_demo_data(data, rows=4000, seed=10)  # the next day's files under the same names
    result = run_cli_process(*train_args(data, run, "trainer.max_steps=10"), "--resume")
    assert result.returncode == 2 and "changed" in result.stderr and "new run folder" in result.stderr
    assert read_json(run / "checkpoints" / "latest.json") == before


def test_a_second_train_on_a_busy_run_folder_is_refused(demo_root, tmp_path):
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "w") as held:  # as a running `recsys-hmtl train` holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli_process(*train_args(demo_root, run), "--resume")
    assert result.returncode == 1 and "another recsys-hmtl train is using this run folder" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == [".lock"]
    assert run_cli(*train_args(demo_root, run), "--resume") == 0  # free again: it trains


def test_sigterm_checkpoints_the_current_step_and_exits_143(demo_root, tmp_path):
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert run_cli(*train_args(demo_root, whole, *SCHEDULE)) == 0
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recsys_hmtl.cli", *train_args(demo_root, stopped, *SCHEDULE)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pointer = stopped / "checkpoints" / "latest.json"
    while not pointer.exists() and proc.poll() is None:
        time.sleep(0.01)
    first = read_json(pointer)["step"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "--resume" in err
    at_stop = read_json(pointer)["step"]
    assert first < at_stop < 120 and f"the last checkpoint is at batch {at_stop}" in err

    assert run_cli(*train_args(demo_root, stopped, *SCHEDULE), "--resume") == 0
    a, b = read_json(whole / "run_summary.json"), read_json(stopped / "run_summary.json")
    for task, entry in a["val"].items():
        assert entry["auc"] == pytest.approx(b["val"][task]["auc"], abs=1e-6, nan_ok=True) if entry["auc"] \
            else b["val"][task]["auc"] is None


def test_resume_keeps_the_logged_history_up_to_the_checkpoint(demo_root, tmp_path):
    """logs/rank0/metrics.csv of a resumed run reads as one run: the rows up to the checkpoint stay,
    rows logged after it (redone by the resumed run) are replaced, none appear twice."""
    import csv

    run = tmp_path / "run"
    common = ["trainer.log_every=2", "trainer.ckpt_every=4", "trainer.max_epochs=10"]
    assert run_cli(*train_args(demo_root, run, *common, "trainer.max_steps=8")) == 0
    path = run / "logs" / "rank0" / "metrics.csv"

    def steps() -> list[int]:
        with open(path, newline="") as file:
            return [int(float(row["train_step"])) for row in csv.DictReader(file) if row.get("train_step")]

    assert steps() == [2, 4, 6, 8]
    with open(path, newline="") as file:  # a row logged after the last checkpoint (as if killed)
        rows = list(csv.DictReader(file))
    with open(path, "a", newline="") as file:
        csv.DictWriter(file, fieldnames=list(rows[0])).writerow({**rows[-1], "train_step": "9"})
    assert run_cli(*train_args(demo_root, run, *common, "trainer.max_steps=12"), "--resume") == 0
    assert steps() == [2, 4, 6, 8, 10, 12]
