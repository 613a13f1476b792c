"""`recsys-hmtl reproduce`: the smoke suite end to end, resumable after a kill, failures recorded."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys_hmtl.cli import main
from recsys_hmtl.reproduce.suite import load_suite
from recsys_hmtl.reproduce.tables import significant

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}


def reproduce_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "recsys_hmtl.cli", "reproduce", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def done_cells(out: Path) -> list[str]:
    path = out / "grid.json"
    try:
        status = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [k for k, v in status.items() if v["status"] == "done"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The smoke suite, killed (SIGKILL) after two cells, then rerun to the end."""
    out = tmp_path_factory.mktemp("smoke")
    proc = reproduce_process("--suite", "smoke", "--out", str(out))
    deadline = time.time() + 120
    while len(done_cells(out)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = {k: (out / "runs" / k / "run_summary.json").stat().st_mtime_ns for k in done_cells(out)}
    assert before and not (out / "tables.md").exists()
    rerun = reproduce_process("--suite", "smoke", "--out", str(out))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]
    after = {k: (out / "runs" / k / "run_summary.json").stat().st_mtime_ns for k in before}
    assert after == before  # finished cells were skipped, not retrained
    (out / "stdout.md").write_text(stdout)
    return out


def test_every_cell_finishes_and_the_tables_are_written(smoke):
    cells = load_suite("smoke").cells()
    assert sorted(done_cells(smoke)) == sorted(c.key for c in cells) and len(cells) == 8
    tables = (smoke / "tables.md").read_text()
    assert tables.strip() == (smoke / "stdout.md").read_text().strip()  # printed as written
    for row in ("| mmoe | 0.002 |", "| mmoe – scd_vio |", "| mmoe – scd_vio_auto |", "| mmoe – hb_aho |"):
        assert row in tables
    assert "+2.52%" in tables  # seed 001's published Δ Avg. AUC beside ours


def test_results_csv_is_long_form_with_both_splits(smoke):
    with open(smoke / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["suite", "dataset", "backbone", "stage", "variant", "lr", "seed", "split", "task",
                             "metric", "value"]
    assert {r["split"] for r in rows} == {"val", "test", "train"}
    assert {r["variant"] for r in rows} == {"sum", "scd_vio", "scd_vio_auto", "hb_aho"}
    test_auc = [r for r in rows if r["split"] == "test" and r["metric"] == "auc" and r["variant"] == "sum"
                and r["seed"] == "0" and r["task"] == "is_click"]
    report = json.loads((smoke / "runs/demo/mmoe/sum/lr0.002/seed0/eval_report.json").read_text())
    assert float(test_auc[0]["value"]) == pytest.approx(report["tasks"]["is_click"]["auc"])
    acting = {r["variant"]: r["value"] for r in rows if r["metric"] == "stage_acting" and r["seed"] == "0"}
    assert acting["sum"] == "0"


def test_plots_are_written(smoke):
    plots = sorted(p.name for p in (smoke / "plots").glob("*.png"))
    assert any(p.startswith("change_") for p in plots)
    assert {"weights_scd_vio_demo_mmoe.png", "weights_hb_aho_demo_mmoe.png"} <= set(plots)
    assert all((smoke / "plots" / p).stat().st_size > 1000 for p in plots)


def test_dry_run_lists_the_cells_and_their_state(smoke, capsys):
    assert main(["reproduce", "--suite", "smoke", "--out", str(smoke), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 cells, 0 to run" in out and "done  demo/mmoe/hb_aho/lr0.002/seed1" in out


def test_a_failed_cell_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
    suite = tmp_path / "broken.yaml"
    suite.write_text(f"""
config: {ROOT / 'configs' / 'kuairand_demo.yaml'}
set: {{trainer.max_steps: 3, trainer.batch_size: 256, model.embedding_dim: 4}}
seeds: 1
lrs: [0.002]
datasets: {{demo: {{demo_rows: 3000}}}}
backbones: [mmoe]
variants:
  sum: {{stage.name: sum}}
  broken: {{stage.name: scd_vio, stage.alpha: -1}}
  dwa: {{stage.name: dwa}}
tables:
  - {{title: broken, baseline: sum, rows: [broken, dwa]}}
""")
    assert main(["reproduce", "--suite", str(suite), "--out", str(tmp_path / "out")]) == 0
    status = json.loads((tmp_path / "out" / "grid.json").read_text())
    assert status["demo/mmoe/broken/lr0.002/seed0"]["status"] == "failed"
    assert "alpha" in status["demo/mmoe/broken/lr0.002/seed0"]["error"]
    assert status["demo/mmoe/dwa/lr0.002/seed0"]["status"] == "done"
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "## Failed cells" in tables and "| mmoe – dwa |" in tables


def test_suite_errors_name_the_file_and_key(tmp_path, capsys):
    suite = tmp_path / "bad.yaml"
    suite.write_text(f"config: {ROOT / 'configs' / 'kuairand_demo.yaml'}\ndatasets: {{d: {{}}}}\n"
                     "backbones: [mmoe]\nvariants: {sum: {stage.name: sum}}\n"
                     "tables: [{title: t, baseline: sum, rows: [scd]}]\n")
    assert main(["reproduce", "--suite", str(suite), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(suite) in err and "tables[0].rows[0].variant" in err
    assert main(["reproduce", "--suite", "smok", "--out", str(tmp_path / "o")]) == 2
    assert "did you mean 'smoke'" in capsys.readouterr().err


def test_the_paired_test_marks_only_consistent_changes():
    assert significant([1.0, 1.1, 0.9, 1.05])
    assert not significant([1.0, -1.0, 0.5, -0.4])
    assert not significant([3.0])  # one seed is never significant


@pytest.mark.parametrize("name", ["smoke", "seed001", "seed000_kuairand", "seed003", "kuairand_genuine"])
def test_every_cell_of_the_shipped_suites_is_a_valid_run_config(name):
    """Correct at full size: every (dataset, backbone, variant) resolves (stage options included)."""
    from recsys_hmtl.config import load_config
    from recsys_hmtl.training.run_plan import resolve_run

    suite = load_suite(name)
    seen = set()
    for cell in suite.cells():
        if (cell.dataset, cell.backbone, cell.variant) not in seen:
            seen.add((cell.dataset, cell.backbone, cell.variant))
            resolve_run(load_config(*suite.overrides(cell, [])))
