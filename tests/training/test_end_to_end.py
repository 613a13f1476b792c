"""End to end on demo data (SPEC §5b-§7): train → evaluate → compare through the CLI, every
backbone once and every loss stage once, with the files and exit codes a scheduler relies on."""

from __future__ import annotations

import math

import pytest

from mainjob import read_json, run_cli, run_cli_process, train_args
from recsys_hmtl.priority import available_stages
from stage_modes import cli_settings

SMALL_MODELS = {
    "shared_bottom": "{name: shared_bottom, embedding_dim: 4, bottom_dims: [16], tower_dims: [8]}",
    "omoe": "{name: omoe, embedding_dim: 4, num_experts: 2, expert_dims: [16], gate_dims: [], tower_dims: [8]}",
    "mmoe": "{name: mmoe, embedding_dim: 4, num_experts: 2, expert_dims: [16], gate_dims: [], tower_dims: [8]}",
    "ple": "{name: ple, embedding_dim: 4, num_levels: 2, num_shared_experts: 1, num_task_experts: 1, "
           "expert_dims: [16], gate_dims: [], tower_dims: [8]}",
    "esmm": "{name: esmm, embedding_dim: 4, tower_dims: [8]}",
    "aitm": "{name: aitm, embedding_dim: 4, bottom_dims: [16], tower_dims: [8]}",
    "stem": "{name: stem, embedding_dim: 4, num_levels: 1, num_shared_experts: 1, num_task_experts: 1, "
            "expert_dims: [16], gate_dims: [], tower_dims: [8]}",
}
SUMMARY_KEYS = {"config", "inputs", "steps", "wall_seconds", "samples_per_second", "val", "stage_diagnostics"}
TASK_KEYS = {"auc", "gauc", "users_counted", "users_skipped", "positives"}


def check_report(report: dict, split: str, tasks: list[str]) -> None:
    assert report["split"] == split and report["rows"] > 0
    assert list(report["tasks"]) == tasks
    for task, entry in report["tasks"].items():
        assert TASK_KEYS <= set(entry), task
        assert entry["users_counted"] + entry["users_skipped"] > 0
        assert entry["auc"] is None or 0.0 <= entry["auc"] <= 1.0
    defined = [e["auc"] for e in report["tasks"].values() if e["auc"] is not None]
    assert math.isclose(report["avg_auc"], sum(defined) / len(defined), rel_tol=1e-12)


@pytest.mark.parametrize("model", sorted(SMALL_MODELS))
def test_every_backbone_trains_evaluates_and_writes_its_files(demo_root, tmp_path, model):
    run = tmp_path / model
    assert run_cli(*train_args(demo_root, run, f"model={SMALL_MODELS[model]}")) == 0
    summary = read_json(run / "run_summary.json")
    assert SUMMARY_KEYS <= set(summary)
    assert summary["config"]["model"]["name"] == model
    assert summary["steps"] == 12 and summary["samples_per_second"] > 0
    tasks = [t["name"] for t in summary["config"]["tasks"]]
    assert list(summary["val"]) == tasks
    assert summary["inputs"] and all({"path", "size", "mtime_ns"} <= set(f) for f in summary["inputs"])

    assert run_cli("evaluate", "--run", run, "--split", "test") == 0
    report = read_json(run / "eval_report.json")
    check_report(report, "test", tasks)
    markdown = (run / "eval_report.md").read_text()
    assert all(f"| {task} |" in markdown for task in tasks)
    # The same checkpoint gives the same numbers every time (offline jobs compare them).
    assert run_cli("evaluate", "--run", run, "--split", "test", "--out", tmp_path / "again.json") == 0
    assert read_json(tmp_path / "again.json")["tasks"] == report["tasks"]


@pytest.mark.parametrize("stage", available_stages())
def test_every_loss_stage_trains_through_the_main_job(demo_root, tmp_path, stage):
    run = tmp_path / stage
    assert run_cli(*train_args(demo_root, run, *cli_settings(stage), "trainer.max_steps=6")) == 0
    summary = read_json(run / "run_summary.json")
    assert summary["steps"] == 6 and summary["skipped_nonfinite_steps"] == 0
    assert summary["stage_diagnostics"], f"{stage} reported no diagnostics"
    assert any(v["auc"] is not None for v in summary["val"].values())


def test_compare_prints_the_seed_table_against_the_sum_run(demo_root, tmp_path, capsys):
    runs = []
    for stage in ("sum", "scd_vio"):
        run = tmp_path / stage
        assert run_cli(*train_args(demo_root, run, f"stage.name={stage}")) == 0
        assert run_cli("evaluate", "--run", run) == 0
        runs.append(run)
    capsys.readouterr()
    assert run_cli("compare", *runs) == 0
    table = capsys.readouterr().out
    sum_avg = read_json(runs[0] / "eval_report.json")["avg_auc"]
    scd_avg = read_json(runs[1] / "eval_report.json")["avg_auc"]
    assert "| scd_vio | scd_vio |" in table
    assert f"{(scd_avg - sum_avg) / sum_avg * 100:+.2f}%" in table


def test_bad_configuration_and_bad_requests_exit_2_with_one_paragraph(demo_root, tmp_path):
    bad = run_cli_process(*train_args(demo_root, tmp_path / "a", "stage.name=scd_vi"))
    assert bad.returncode == 2
    assert "stage.name" in bad.stderr and "scd_vio" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli_process(*train_args(demo_root, tmp_path / "b", "model.num_experts=0"))
    assert bad.returncode == 2 and "model.num_experts" in bad.stderr
    assert not (tmp_path / "b").exists(), "a refused run leaves no partial run folder"
    missing = run_cli_process("evaluate", "--run", tmp_path / "nothing_here")
    assert missing.returncode == 2 and "config.yaml" in missing.stderr


def test_an_existing_run_is_not_overwritten_without_resume(demo_root, tmp_path):
    run = tmp_path / "run"
    assert run_cli(*train_args(demo_root, run)) == 0
    before = read_json(run / "checkpoints" / "latest.json")
    again = run_cli_process(*train_args(demo_root, run))
    assert again.returncode == 2 and "--resume" in again.stderr
    assert read_json(run / "checkpoints" / "latest.json") == before


def test_evaluate_refuses_input_files_changed_since_training(tmp_path):
    from recsys_hmtl.data.demo import write_demo_data

    data, run = tmp_path / "data", tmp_path / "run"
    write_demo_data(data, rows=4000, seed=9)
    assert run_cli(*train_args(data, run)) == 0
    log = next((data / "data").glob("log_standard_4_22*.csv"))
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], *lines[2:], lines[1]]) + "\n")  # same rows, another order: new data
    result = run_cli_process("evaluate", "--run", run)
    assert result.returncode == 2 and log.name in result.stderr and "changed" in result.stderr
    assert not (run / "eval_report.json").exists()


def test_a_sharding_plan_forced_in_the_config_is_used(demo_root, tmp_path):
    run = tmp_path / "run"
    plan = "trainer.plan={user_id: column_wise, video_id: data_parallel, author_id: table_wise}"
    assert run_cli(*train_args(demo_root, run, plan)) == 0
    sharding = read_json(run / "run_summary.json")["sharding"]
    assert {t: sharding[t]["type"] for t in ("user_id", "video_id", "author_id")} == {
        "user_id": "column_wise", "video_id": "data_parallel", "author_id": "table_wise"}
    assert all(s["type"] in {"table_wise", "column_wise", "table_column_wise"}
               for t, s in sharding.items() if t not in ("user_id", "video_id", "author_id"))
    import torch

    latest = read_json(run / "checkpoints" / "latest.json")
    model = torch.load(run / "checkpoints" / latest["dir"] / "rank0.pt", weights_only=True)["model"]
    tables = {k.split(".")[-2]: v for k, v in model.items() if k.endswith(".weight") and "embedding_bags" in k}
    assert isinstance(tables["user_id"], dict) and isinstance(tables["author_id"], dict)  # sharded
    assert torch.is_tensor(tables["video_id"])  # data parallel: a plain replicated tensor
    bad = run_cli_process(*train_args(demo_root, tmp_path / "bad", "trainer.plan={user_id: row_wise}"))
    assert bad.returncode == 2 and "user_id" in bad.stderr
