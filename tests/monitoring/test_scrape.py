"""Prometheus scrapes a trainer's /metrics and the Pushgateway (real servers, 1 s scrapes)."""

from __future__ import annotations

from feeding import TASKS, FedRun
from promstack import PUSHGATEWAY_JOB, TRAINER_JOB, Stack


def test_trainer_is_scraped_with_per_task_series(servers: Stack, fed: FedRun) -> None:
    up = servers.wait_for(f'up{{job="{TRAINER_JOB}",instance="{fed.address}"}} == 1')
    assert len(up) == 1
    for name in ("recsys_hmtl_loss", "recsys_hmtl_stage_gate", "recsys_hmtl_stage_weight",
                 "recsys_hmtl_stage_threshold", "recsys_hmtl_nonfinite_losses_total"):
        result = servers.wait_for(f'{name}{{instance="{fed.address}",run_id="fed-run"}}',
                                  condition=lambda r: len(r) == len(TASKS))
        assert {r["metric"]["task"] for r in result} == set(TASKS), name
        assert all(r["metric"]["job"] == TRAINER_JOB and r["metric"]["rank"] == "0" for r in result)
    steps = servers.wait_for(f'rate(recsys_hmtl_steps_total{{instance="{fed.address}"}}[10s]) > 0')
    assert steps


def test_pushed_results_reach_prometheus(servers: Stack, fed: FedRun) -> None:
    assert servers.wait_for(f'up{{job="{PUSHGATEWAY_JOB}"}} == 1')
    result = servers.wait_for('recsys_hmtl_auc{job="recsys_hmtl_evaluate",run_id="fed-run",split="test"}',
                              condition=lambda r: len(r) == len(TASKS))
    assert {r["metric"]["task"] for r in result} == set(TASKS)
    val = servers.wait_for('recsys_hmtl_auc{job="recsys_hmtl_train",run_id="fed-run",split="val"}',
                           condition=lambda r: len(r) == len(TASKS))
    assert all(r["metric"]["stage"] == "scd_vio" for r in val)
    assert servers.wait_for('recsys_hmtl_last_success_timestamp_seconds{job="recsys_hmtl_train",run_id="fed-run"}')
