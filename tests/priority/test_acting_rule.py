"""The stage_acting rule (priority/acting.py): fixed weightings never act, moving ones do."""

from __future__ import annotations

import pytest
import torch

from recsys_hmtl.priority import build_stage
from recsys_hmtl.priority.acting import ACTING_FRACTION, WeightWindow

TASKS = ("a", "b", "c", "d")


def weights(values) -> dict[str, float]:
    return {f"weight/{t}": float(v) for t, v in zip(TASKS, values)}


def test_a_fixed_weighting_does_not_act_whatever_its_shape():
    window = WeightWindow(TASKS, size=50)
    for _ in range(60):
        window.observe(weights([1.0, 0.5, 0.25, 0.125]))  # SCD-VIO's 0.5^k with alpha = 1
    summary = window.summary()
    assert summary["acting"] is False and summary["max_spread"] == pytest.approx(0.0, abs=1e-12)
    assert summary["tasks"]["a"]["mean"] == pytest.approx(1 / 1.875)
    assert summary["window_steps"] == 50


def test_jitter_below_the_threshold_does_not_act_and_movement_above_does():
    k, gen = len(TASKS), torch.Generator().manual_seed(0)
    quiet, moving = WeightWindow(TASKS, size=100), WeightWindow(TASKS, size=100)
    for _ in range(100):
        noise = torch.randn(k, generator=gen, dtype=torch.float64)
        quiet.observe(weights(1.0 + 0.01 * noise))     # ±1 % around uniform
        moving.observe(weights(1.0 + 0.5 * noise.abs()))  # the weighting follows the losses
    assert quiet.summary()["acting"] is False
    assert moving.summary()["acting"] is True
    assert moving.summary()["max_spread"] > ACTING_FRACTION / k


def test_only_the_last_window_counts_and_the_state_round_trips():
    window = WeightWindow(TASKS, size=10)
    for step in range(30):  # moves during the first 20 steps, fixed during the last 10
        window.observe(weights([1.0, 1.0 + (step % 3 if step < 20 else 0), 1.0, 1.0]))
    assert window.summary()["acting"] is False
    copy = WeightWindow(TASKS, size=10)
    copy.load_state_dict(window.state_dict())
    assert copy.summary() == window.summary() and copy.count == 30


def test_a_stage_without_weights_reads_unknown():
    window = WeightWindow(TASKS)
    assert window.observe({"gate/a": 1.0}) is None
    assert window.summary()["acting"] is None


@pytest.mark.parametrize("name,acting", [("sum", False), ("rlw", True)])
def test_real_stages_through_the_rule(name, acting):
    stage = build_stage(name, tasks=list(TASKS))
    window = WeightWindow(TASKS, size=20)
    for step in range(20):
        losses = {t: torch.tensor(0.3 + 0.01 * i + 0.001 * step, requires_grad=True) for i, t in enumerate(TASKS)}
        stage(losses)
        window.observe(stage.diagnostics())
    assert window.summary()["acting"] is acting
