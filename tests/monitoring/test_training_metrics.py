"""TrainingMetrics: its own registry, the per-task series, /metrics over HTTP (no servers needed)."""

from __future__ import annotations

import errno
import socket
import urllib.request

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from recsys_hmtl.monitoring import RunLabels, TrainingMetrics

TASKS = ["is_click", "long_view"]
LABELS = RunLabels(run_id="r1", stage="scd_vio", model="mmoe", dataset="kuairand", rank=0)
DIAGNOSTICS = {"gate/is_click": 1.0, "gate/long_view": 0.0, "weight/long_view": 0.3,
               "threshold/long_view": 0.2, "residual/long_view": -0.01, "feasibility_gap": 0.0,
               "grad_norm/is_click": 1.2, "violation/long_view": float("nan"), "penalty": float("inf")}


def samples(text: str) -> dict[str, list]:
    """name -> [(labels, value)] from a text exposition."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def one(series: dict[str, list], name: str, **labels: str) -> float:
    found = [v for lab, v in series.get(name, []) if all(lab.get(k) == v2 for k, v2 in labels.items())]
    assert len(found) == 1, (name, labels, series.get(name))
    return found[0]


@pytest.fixture
def metrics():
    m = TrainingMetrics(LABELS, tasks=TASKS)
    yield m
    m.close()


def test_served_metrics_hold_the_per_task_series(metrics: TrainingMetrics) -> None:
    port = metrics.serve(addr="127.0.0.1", port=0)
    metrics.observe_step(seconds=0.12, samples=4096, losses={"is_click": 0.5, "long_view": 0.9},
                         diagnostics=DIAGNOSTICS)
    metrics.observe_step(seconds=0.08, samples=4096, losses={"is_click": 0.4, "long_view": float("nan")})
    metrics.observe_nonfinite(task="long_view")
    metrics.set_auc(split="val", aucs={"is_click": 0.71, "long_view": 0.65})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        series = samples(response.read().decode())

    run = {"run_id": "r1", "stage": "scd_vio", "model": "mmoe", "dataset": "kuairand", "rank": "0"}
    assert one(series, "recsys_hmtl_run_info", **run) == 1
    assert one(series, "recsys_hmtl_loss", task="is_click") == 0.4
    assert one(series, "recsys_hmtl_loss", task="long_view") == 0.9  # the NaN was skipped
    assert one(series, "recsys_hmtl_stage_gate", task="long_view", **run) == 0.0
    assert one(series, "recsys_hmtl_stage_weight", task="long_view") == 0.3
    assert one(series, "recsys_hmtl_stage_threshold", task="long_view") == 0.2
    assert one(series, "recsys_hmtl_stage_residual", task="long_view") == -0.01
    assert one(series, "recsys_hmtl_stage_feasibility_gap", **run) == 0.0
    assert one(series, "recsys_hmtl_stage_diagnostic", quantity="grad_norm", task="is_click") == 1.2
    quantities = {lab["quantity"] for lab, _ in series["recsys_hmtl_stage_diagnostic"]}
    assert quantities == {"grad_norm"}  # NaN / inf diagnostics are skipped
    assert one(series, "recsys_hmtl_auc", task="is_click", split="val") == 0.71
    assert one(series, "recsys_hmtl_avg_auc", split="val") == pytest.approx(0.68)
    assert one(series, "recsys_hmtl_steps_total") == 2
    assert one(series, "recsys_hmtl_samples_total") == 8192
    assert one(series, "recsys_hmtl_samples_per_second") == pytest.approx(8192 / 0.2)
    assert one(series, "recsys_hmtl_nonfinite_losses_total", task="long_view") == 1
    assert one(series, "recsys_hmtl_nonfinite_losses_total", task="is_click") == 0
    assert one(series, "recsys_hmtl_step_seconds_count") == 2
    assert one(series, "recsys_hmtl_step_seconds_bucket", le="0.1") == 1
    assert one(series, "recsys_hmtl_step_seconds_bucket", le="+Inf") == 2
    assert one(series, "recsys_hmtl_last_step_timestamp_seconds") > 1.6e9
    for name, rows in series.items():
        assert name.startswith("recsys_hmtl_"), name
        for lab, _ in rows:
            assert set(lab) <= {"run_id", "stage", "model", "dataset", "rank", "task", "split", "quantity", "le"}


def test_step_time_buckets_span_1ms_to_60s(metrics: TrainingMetrics) -> None:
    series = samples(generate_latest(metrics.registry).decode())
    bounds = sorted(float(lab["le"]) for lab, _ in series["recsys_hmtl_step_seconds_bucket"])
    assert bounds[0] == 0.001 and bounds[-2] == 60.0 and bounds[-1] == float("inf")


def test_series_exist_before_the_first_step(metrics: TrainingMetrics) -> None:
    series = samples(generate_latest(metrics.registry).decode())
    assert one(series, "recsys_hmtl_steps_total") == 0
    assert {lab["task"] for lab, _ in series["recsys_hmtl_nonfinite_losses_total"]} == set(TASKS)
    assert one(series, "recsys_hmtl_last_step_timestamp_seconds") > 1.6e9


def test_own_registry_never_the_global_one() -> None:
    a, b = TrainingMetrics(LABELS, tasks=TASKS), TrainingMetrics(LABELS, tasks=TASKS)  # no duplicate error
    a.observe_step(seconds=0.1, samples=10)
    assert a.registry is not b.registry and a.registry is not REGISTRY
    assert b"recsys_hmtl_" not in generate_latest(REGISTRY)
    assert one(samples(generate_latest(b.registry).decode()), "recsys_hmtl_steps_total") == 0


def test_serves_on_loopback_by_default_and_close_stops_it() -> None:
    m = TrainingMetrics(LABELS, tasks=TASKS)
    port = m.serve(port=0)
    assert m._server.server_address[0] == "127.0.0.1"
    m.close()
    m.close()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_taken_port_is_a_clear_oserror(metrics: TrainingMetrics) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*already in use.*metrics.port") as info:
            metrics.serve(addr="127.0.0.1", port=port)
        assert info.value.errno == errno.EADDRINUSE


def test_bad_step_values_are_rejected(metrics: TrainingMetrics) -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        metrics.observe_step(seconds=-1.0, samples=10)


@pytest.mark.parametrize("field,value", [("run_id", ""), ("rank", -1), ("stage", None)])
def test_run_labels_are_validated(field: str, value: object) -> None:
    kwargs = dict(run_id="r1", stage="sum", model="mmoe", dataset="kuairand", rank=0)
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        RunLabels(**kwargs)


def test_stage_acting_is_exported_from_the_weight_window():
    from prometheus_client import generate_latest

    from recsys_hmtl.monitoring import RunLabels, TrainingMetrics
    from recsys_hmtl.priority.acting import WeightWindow

    tasks = ("a", "b")
    metrics = TrainingMetrics(RunLabels(run_id="r", stage="uw", model="mmoe", dataset="d", rank=0), tasks=tasks)
    text = generate_latest(metrics.registry).decode()
    assert "recsys_hmtl_stage_acting{" not in text  # nothing before a window summary exists
    window = WeightWindow(tasks, size=8)
    for step in range(8):  # b's share moves between 1/3 and 1/2: acting
        window.observe({"weight/a": 1.0, "weight/b": 1.0 if step % 2 else 0.5})
    metrics.set_acting(window.summary())
    text = generate_latest(metrics.registry).decode()
    assert 'recsys_hmtl_stage_acting{dataset="d",model="mmoe",rank="0",run_id="r",stage="uw"} 1.0' in text
    assert 'recsys_hmtl_stage_weight_share{dataset="d",model="mmoe",rank="0",run_id="r",stage="uw",task="b"}' in text


def test_windowed_calibration_and_ne_by_hand() -> None:
    """Two steps of 100 rows: Σ p = 30 + 10, Σ y = 20 + 20 → calibration 1.0; log loss the rows'
    mean of the step losses (0.5, 0.3) → 0.4; NE = 0.4 / H(0.2)."""
    import math

    metrics = TrainingMetrics(RunLabels(run_id="q", stage="sum", model="mmoe", dataset="d"), tasks=["click"],
                              quality_window=2)
    metrics.observe_quality(100, [(30.0, 20.0)], {"click": 0.5})
    metrics.observe_quality(100, [(10.0, 20.0)], {"click": 0.3})
    value = lambda name: metrics.registry.get_sample_value(name, {**metrics.labels.as_dict(), "task": "click"})
    assert value("recsys_hmtl_train_calibration") == pytest.approx(1.0)
    assert value("recsys_hmtl_train_logloss") == pytest.approx(0.4)
    entropy = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert value("recsys_hmtl_train_ne") == pytest.approx(0.4 / entropy)
    metrics.observe_quality(100, [(50.0, 0.0)], {"click": 0.2})  # the window drops the first step
    assert value("recsys_hmtl_train_calibration") == pytest.approx(60.0 / 20.0)
