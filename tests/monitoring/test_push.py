"""Pushes to a real Pushgateway: grouping, rerun replacement, failed runs, a gateway that is down."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from feeding import TASKS, report, summary
from promstack import Stack, free_port, http_get
from recsys_hmtl.monitoring import EVALUATE_JOB, TRAIN_JOB, PushError, RunLabels, push_evaluation, push_run


def labels(run_id: str, group: str | None = None) -> RunLabels:
    """A run of its own Pushgateway group (``group`` defaults to the run id: tests stay apart)."""
    return RunLabels(run_id=run_id, stage="scd_vio", model="mmoe", dataset="kuairand", group=group or run_id)


def gateway_series(servers: Stack, name: str, job: str, run_id: str) -> list[tuple[dict, float]]:
    """(labels, value) of one metric in one group, from the Pushgateway's own /metrics."""
    status, body = http_get(servers.pushgateway_url + "/metrics")
    assert status == 200
    out = []
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and s.labels.get("job") == job and s.labels.get("run_id") == run_id:
                out.append((s.labels, s.value))
    return out


def groups(servers: Stack, job: str, group: str) -> list[dict]:
    return [g for g in servers.gateway_groups()
            if g["labels"].get("job") == job and g["labels"].get("group") == group]


def test_push_evaluation_visible_in_gateway_and_prometheus(servers: Stack) -> None:
    push_evaluation(servers.pushgateway_url, labels("eval-1"), report=report(auc=0.61))
    aucs = {lab["task"]: v for lab, v in gateway_series(servers, "recsys_hmtl_auc", EVALUATE_JOB, "eval-1")}
    assert aucs == pytest.approx({t: 0.61 + 0.01 * i for i, t in enumerate(TASKS)})
    lab = gateway_series(servers, "recsys_hmtl_auc", EVALUATE_JOB, "eval-1")[0][0]
    assert (lab["split"], lab["stage"], lab["model"], lab["dataset"], lab["group"]) == (
        "test", "scd_vio", "mmoe", "kuairand", "eval-1")
    assert groups(servers, EVALUATE_JOB, "eval-1")[0]["labels"].keys() >= {"dataset", "model", "stage", "group"}
    assert "run_id" not in groups(servers, EVALUATE_JOB, "eval-1")[0]["labels"]  # a label, not the key
    for name in ("recsys_hmtl_gauc", "recsys_hmtl_eval_positives", "recsys_hmtl_gauc_users_skipped"):
        assert len(gateway_series(servers, name, EVALUATE_JOB, "eval-1")) == len(TASKS), name
    assert gateway_series(servers, "recsys_hmtl_avg_auc", EVALUATE_JOB, "eval-1")[0][1] == pytest.approx(0.62)
    assert gateway_series(servers, "recsys_hmtl_eval_rows", EVALUATE_JOB, "eval-1")[0][1] == 1000
    assert gateway_series(servers, "recsys_hmtl_run_success", EVALUATE_JOB, "eval-1")[0][1] == 1

    result = servers.wait_for(f'recsys_hmtl_auc{{job="{EVALUATE_JOB}",run_id="eval-1"}}',
                              condition=lambda r: len(r) == len(TASKS))
    assert {r["metric"]["task"]: float(r["value"][1]) for r in result} == pytest.approx(aucs)
    assert all("instance" not in r["metric"] or r["metric"]["instance"] == "" for r in result)


def test_push_of_an_ere_report(servers: Stack) -> None:
    """Another adapter's report (ERE: per-task P/R/F1, triple F1 primary) reaches the gateway."""
    prf = {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "correct": 2, "predicted": 4, "gold": 8}
    ere = {"split": "test", "rows": 8, "tasks": {"entity": prf, "relation": {**prf, "f1": 0.4}},
           "triple": prf, "triple_f1": 0.3, "primary_metric": "triple_f1", "task_metric": "f1"}
    push_evaluation(servers.pushgateway_url, labels("ere-1"), report=ere)
    f1 = {lab["task"]: v for lab, v in gateway_series(servers, "recsys_hmtl_eval_task_metric", EVALUATE_JOB, "ere-1")
          if lab["metric"] == "f1"}
    assert f1 == pytest.approx({"entity": 1 / 3, "relation": 0.4})
    (lab, value), = gateway_series(servers, "recsys_hmtl_eval_primary", EVALUATE_JOB, "ere-1")
    assert (lab["metric"], lab["split"], value) == ("triple_f1", "test", pytest.approx(0.3))
    assert gateway_series(servers, "recsys_hmtl_auc", EVALUATE_JOB, "ere-1") == []


def test_rerun_replaces_the_group(servers: Stack) -> None:
    first = report(auc=0.6)
    push_evaluation(servers.pushgateway_url, labels("rerun-1"), report=first)
    second = report(auc=0.8)
    del second["tasks"]["like"]  # the rerun evaluates fewer tasks: the old 'like' series must go
    push_evaluation(servers.pushgateway_url, labels("rerun-1"), report=second)

    assert len(groups(servers, EVALUATE_JOB, "rerun-1")) == 1
    aucs = gateway_series(servers, "recsys_hmtl_auc", EVALUATE_JOB, "rerun-1")
    assert sorted((lab["task"], v) for lab, v in aucs) == [("is_click", 0.8), ("long_view", pytest.approx(0.81))]
    query = f'recsys_hmtl_auc{{job="{EVALUATE_JOB}",run_id="rerun-1",task="is_click"}}'
    result = servers.wait_for(query, condition=lambda r: len(r) == 1 and float(r[0]["value"][1]) == 0.8)
    assert len(result) == 1
    servers.wait_for(f'recsys_hmtl_auc{{run_id="rerun-1",task="like"}}', condition=lambda r: r == [])

    push_run(servers.pushgateway_url, labels("rerun-1"), success=True, summary=summary(), tasks=list(TASKS))
    push_run(servers.pushgateway_url, labels("rerun-1"), success=True, summary=summary(), tasks=["is_click"])
    assert len(groups(servers, TRAIN_JOB, "rerun-1")) == 1
    assert [lab["task"] for lab, _ in gateway_series(servers, "recsys_hmtl_auc", TRAIN_JOB, "rerun-1")] == ["is_click"]
    assert len(groups(servers, EVALUATE_JOB, "rerun-1")) == 1  # a train push leaves the evaluate group alone


def test_failed_run_keeps_the_last_success(servers: Stack) -> None:
    run = labels("fail-1")
    push_run(servers.pushgateway_url, run, success=True, summary=summary(), tasks=list(TASKS))
    (_, success_ts), = gateway_series(servers, "recsys_hmtl_last_success_timestamp_seconds", TRAIN_JOB, "fail-1")
    assert abs(success_ts - time.time()) < 60
    time.sleep(1.1)

    push_run(servers.pushgateway_url, run, success=False, summary=None, tasks=list(TASKS))
    assert len(groups(servers, TRAIN_JOB, "fail-1")) == 1
    assert gateway_series(servers, "recsys_hmtl_last_success_timestamp_seconds", TRAIN_JOB, "fail-1")[0][1] == success_ts
    assert gateway_series(servers, "recsys_hmtl_run_success", TRAIN_JOB, "fail-1")[0][1] == 0
    (_, failure_ts), = gateway_series(servers, "recsys_hmtl_last_failure_timestamp_seconds", TRAIN_JOB, "fail-1")
    assert failure_ts > success_ts
    servers.wait_for(f'recsys_hmtl_run_success{{job="{TRAIN_JOB}",run_id="fail-1"}} == 0')
    result = servers.query(f'recsys_hmtl_last_success_timestamp_seconds{{job="{TRAIN_JOB}",run_id="fail-1"}}')
    assert [float(r["value"][1]) for r in result] == [success_ts]

    # The next success replaces the whole group: the failure timestamp goes away.
    push_run(servers.pushgateway_url, run, success=True, summary=summary(), tasks=list(TASKS))
    assert gateway_series(servers, "recsys_hmtl_last_failure_timestamp_seconds", TRAIN_JOB, "fail-1") == []
    assert gateway_series(servers, "recsys_hmtl_last_success_timestamp_seconds", TRAIN_JOB, "fail-1")[0][1] > success_ts


def test_first_attempt_failing_pushes_no_success(servers: Stack) -> None:
    push_run(servers.pushgateway_url, labels("fail-2"), success=False)
    assert gateway_series(servers, "recsys_hmtl_last_success_timestamp_seconds", TRAIN_JOB, "fail-2") == []
    assert gateway_series(servers, "recsys_hmtl_run_success", TRAIN_JOB, "fail-2")[0][1] == 0


def test_a_scheduled_rerun_replaces_its_group_and_other_groups_stay(servers: Stack) -> None:
    """Daily runs of one configuration (new run id each day) share one group: yesterday's series go;
    another metrics.group (reproduce: one per cell) keeps its own."""
    for day in ("day-1", "day-2"):
        push_run(servers.pushgateway_url, labels(day, group="daily"), success=True, summary=summary(),
                 tasks=list(TASKS))
    push_run(servers.pushgateway_url, labels("cell-7", group="suite/cell-7"), success=True, summary=summary(),
             tasks=list(TASKS))
    assert len(groups(servers, TRAIN_JOB, "daily")) == 1
    assert gateway_series(servers, "recsys_hmtl_run_success", TRAIN_JOB, "day-1") == []
    assert gateway_series(servers, "recsys_hmtl_run_success", TRAIN_JOB, "day-2")[0][1] == 1
    assert gateway_series(servers, "recsys_hmtl_run_success", TRAIN_JOB, "cell-7")[0][1] == 1
    servers.wait_for(f'recsys_hmtl_run_success{{job="{TRAIN_JOB}",group="daily"}}',
                     condition=lambda r: [x["metric"]["run_id"] for x in r] == ["day-2"])

    # A failed day-3 keeps day-2's success timestamp in the same group (the overdue alert's anchor).
    push_run(servers.pushgateway_url, labels("day-3", group="daily"), success=False)
    assert gateway_series(servers, "recsys_hmtl_last_success_timestamp_seconds", TRAIN_JOB, "day-2")
    assert gateway_series(servers, "recsys_hmtl_run_success", TRAIN_JOB, "day-3")[0][1] == 0
    assert len(groups(servers, TRAIN_JOB, "daily")) == 1


def test_gateway_down_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PushError, match=f"Pushgateway at {url}"):
        push_run(url, labels("down-1"), success=True, summary=summary(), timeout=2)
    with pytest.raises(PushError, match=f"job 'recsys_hmtl_evaluate' run 'down-1'.*{url}"):
        push_evaluation(url, labels("down-1"), report=report(), timeout=2)


def test_a_report_without_tasks_is_refused() -> None:
    with pytest.raises(ValueError, match="tasks"):
        push_evaluation("http://127.0.0.1:1", labels("bad"), report={"split": "test"})
