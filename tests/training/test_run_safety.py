"""Issue 10: every bad configuration caught before training, no user folder overwritten, `compare`
refusing what should not be compared, tasks without an AUC warned about, Ctrl-C like SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
from mainjob import CONFIG, ROOT, read_json, run_cli, settings, train_args

from recsys_hmtl.training.files import MARKER_FILE


# --- configuration errors: exit 2 in validate and at the start of train, the key named ----------------
BAD_SETTINGS = [
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.lr=-1", "trainer.lr"),
    ("trainer.lr=.nan", "trainer.lr"),
    ("trainer.eval_batch_size=0", "trainer.eval_batch_size"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("trainer.max_epochs=-1", "trainer.max_epochs"),
    ("trainer.max_steps=0", "trainer.max_steps"),
    ("model.name=mmeo", "model.name"),
    ("stage.name=scdvio", "stage.name"),
    ("metrics.pushgateway='http://127.0.0.1:99999'", "metrics.pushgateway"),
    ("metrics.pushgateway='ftp://gateway'", "metrics.pushgateway"),
    ("metrics.pushgateway='http://gate way:9091'", "metrics.pushgateway"),
    ("metrics.port=70000", "metrics.port"),
]


@pytest.mark.parametrize("setting,key", BAD_SETTINGS, ids=[s for s, _ in BAD_SETTINGS])
def test_bad_configuration_fails_validate_and_train_before_any_work(demo_root, tmp_path, capsys, setting, key):
    assert run_cli("validate", "--config", CONFIG, *settings(demo_root, setting)) == 2
    assert f"key '{key}'" in capsys.readouterr().err
    run = tmp_path / "run"
    assert run_cli(*train_args(demo_root, run, setting)) == 2
    assert f"key '{key}'" in capsys.readouterr().err
    assert not run.exists()  # nothing written: the run folder was never created


def test_a_stage_setting_that_would_do_nothing_fails_validate_and_train(demo_root, tmp_path, capsys):
    """Inner-loop settings of LDC-MTL with its single loop would be silently ignored: refused up
    front, not at the first training step."""
    single = ("stage.name=ldc_mtl", "stage.inner_steps=5")
    assert run_cli("validate", "--config", CONFIG, *settings(demo_root, *single)) == 2
    err = capsys.readouterr().err
    assert "key 'stage (ldc_mtl)'" in err and "inner_steps=5 has no effect with loop='single'" in err
    assert run_cli(*train_args(demo_root, tmp_path / "run", *single)) == 2
    assert not (tmp_path / "run").exists()


def test_config_that_is_a_folder_or_binary_names_the_file(tmp_path, capsys):
    assert run_cli("validate", "--config", tmp_path) == 2
    assert "is a folder, not a config file" in capsys.readouterr().err
    binary = tmp_path / "model.pt"
    binary.write_bytes(bytes(range(256)) * 4)
    assert run_cli("validate", "--config", binary) == 2
    err = capsys.readouterr().err
    assert str(binary) in err and "not a text (UTF-8) file" in err


# --- run folders -----------------------------------------------------------------------------------
def test_train_refuses_a_users_non_empty_folder_and_changes_nothing(demo_root, tmp_path, capsys):
    folder = tmp_path / "my_project"
    folder.mkdir()
    (folder / "config.yaml").write_text("my own settings\n")
    (folder / "run_summary.json").write_text('{"mine": true}\n')
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert run_cli(*train_args(demo_root, folder)) == 2
    assert "did not create" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no .lock, no marker either


def test_a_run_folder_gets_a_marker_and_an_empty_folder_is_accepted(demo_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(*train_args(demo_root, empty, "trainer.max_steps=3")) == 0
    assert (empty / MARKER_FILE).is_file()
    (empty / MARKER_FILE).unlink()  # a run folder written before the marker existed still resumes
    assert run_cli(*train_args(demo_root, empty, "trainer.max_steps=3"), "--resume") == 0
    assert (empty / MARKER_FILE).is_file()


# --- compare ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, demo_root):
    """A finished `sum` run and a finished `scd_vio` run, both evaluated on test."""
    root = tmp_path_factory.mktemp("compare")
    runs = {}
    for stage in ("sum", "scd_vio"):
        runs[stage] = root / stage
        assert run_cli(*train_args(demo_root, runs[stage], f"stage.name={stage}", "trainer.max_steps=6")) == 0
        assert run_cli("evaluate", "--run", runs[stage]) == 0
    return runs


def test_evaluate_out_never_overwrites_a_users_file(two_runs, tmp_path, capsys):
    """`evaluate --out` writes FILE.json and FILE.md: neither may replace something of the user's."""
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "own data"}\n')
    assert run_cli("evaluate", "--run", two_runs["sum"], "--out", notes) == 2
    assert "not an evaluation report" in capsys.readouterr().err
    assert notes.read_text() == '{"my": "own data"}\n'
    summary = tmp_path / "summary.md"
    summary.write_text("# my summary\n")
    assert run_cli("evaluate", "--run", two_runs["sum"], "--out", tmp_path / "summary.json") == 2
    assert summary.read_text() == "# my summary\n" and not (tmp_path / "summary.json").exists()
    assert run_cli("evaluate", "--run", two_runs["sum"], "--out", tmp_path / "report.txt") == 2
    assert "must end in .json" in capsys.readouterr().err
    # a new name, then the same name again (an earlier report is replaced)
    for _ in range(2):
        assert run_cli("evaluate", "--run", two_runs["sum"], "--out", tmp_path / "again.json") == 0
    assert (tmp_path / "again.md").read_text().startswith("## Evaluation")


def test_compare_refuses_mixed_splits(two_runs, capsys):
    report = read_json(two_runs["scd_vio"] / "eval_report.json")
    try:
        assert run_cli("evaluate", "--run", two_runs["scd_vio"], "--split", "val") == 0
        capsys.readouterr()
        for extra in ([], ["--allow-partial"]):
            assert run_cli("compare", two_runs["sum"], two_runs["scd_vio"], *extra) == 2
            err = capsys.readouterr().err
            assert "different splits" in err and str(two_runs["sum"]) in err and str(two_runs["scd_vio"]) in err
    finally:
        (two_runs["scd_vio"] / "eval_report.json").write_text(json.dumps(report))


def test_compare_refuses_a_report_made_before_training_went_further(two_runs, demo_root, capsys):
    run = two_runs["scd_vio"]
    report_before = read_json(run / "eval_report.json")
    assert report_before["final"] is True
    assert run_cli("compare", two_runs["sum"], run) == 0
    capsys.readouterr()
    # resume with a longer schedule: the report scored a checkpoint the run is no longer at
    assert run_cli(*train_args(demo_root, run, "stage.name=scd_vio", "trainer.max_steps=9"), "--resume") == 0
    assert run_cli("compare", two_runs["sum"], run) == 2
    err = capsys.readouterr().err
    assert str(run) in err and "stale" in err
    assert run_cli("compare", two_runs["sum"], run, "--allow-partial") == 0
    out = capsys.readouterr()
    assert "scd_vio (partial)" in out.out and "stale" in out.err
    assert run_cli("evaluate", "--run", run) == 0
    assert run_cli("compare", two_runs["sum"], run) == 0


def test_compare_refuses_a_report_of_an_unfinished_run(two_runs, tmp_path, capsys):
    run = tmp_path / "unfinished"
    run.mkdir()
    for name in ("config.yaml", "eval_report.json", MARKER_FILE):
        (run / name).write_bytes((two_runs["scd_vio"] / name).read_bytes())
    assert run_cli("compare", two_runs["sum"], run) == 2
    assert "had not finished training" in capsys.readouterr().err


def test_tasks_without_positives_are_warned_about(two_runs, capsys):
    run = two_runs["scd_vio"]
    saved = (run / "eval_report.json").read_text()
    report = json.loads(saved)
    report["tasks"]["is_hate"].update(auc=None, positives=0)
    try:
        (run / "eval_report.json").write_text(json.dumps(report))
        assert run_cli("compare", two_runs["sum"], run) == 0
        assert "task 'is_hate' has no positives in the test split" in capsys.readouterr().err
    finally:
        (run / "eval_report.json").write_text(saved)


def test_evaluate_and_train_warn_about_a_task_without_positives(tmp_path, capsys):
    from recsys_hmtl.data.demo import write_demo_data

    root = tmp_path / "demo"
    write_demo_data(root, rows=3000, seed=5)
    for path in (root / "data").glob("log_standard_*.csv"):  # nobody ever hates a video
        lines = path.read_text().splitlines()
        col = lines[0].split(",").index("is_hate")
        rows = [line.split(",") for line in lines[1:]]
        for row in rows:
            row[col] = "0"
        path.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    run = tmp_path / "run"
    assert run_cli(*train_args(root, run, "trainer.max_steps=3")) == 0
    assert "task 'is_hate' has no positives in the val split" in capsys.readouterr().err
    assert run_cli("evaluate", "--run", run) == 0
    out = capsys.readouterr()
    assert "task 'is_hate' has no positives in the test split" in out.err
    assert "Warning:" in out.out  # in the Markdown report as well


# --- Ctrl-C ----------------------------------------------------------------------------------------
def test_ctrl_c_checkpoints_then_exits_130_and_resumes(demo_root, tmp_path):
    import subprocess

    run = tmp_path / "run"
    args = train_args(demo_root, run, "trainer.max_steps=100000", "trainer.max_epochs=50", "trainer.ckpt_every=0")
    env = {"RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "recsys_hmtl.cli", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = run / "logs" / "rank0" / "metrics.csv"
    while time.time() < deadline and not (metrics.is_file() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped by SIGINT" in err and "--resume" in err
    latest = read_json(run / "checkpoints" / "latest.json")
    assert latest["step"] > 0  # ckpt_every=0: this checkpoint exists only because of the stop
    assert not (run / "run_summary.json").exists()


def test_a_busy_metrics_port_message_says_0_turns_it_off(demo_root, tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run_cli(*train_args(demo_root, tmp_path / "run", f"metrics.port={port}")) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "0 turns the endpoint off" in err and "picks" not in err
