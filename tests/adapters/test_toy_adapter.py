"""The toy adapter (seed 003 App. A.3): the problem's values, its numerical Pareto front against the
published line, a run through the CLI (train, evaluate, compare), convergence of ``sum`` to the front,
and config mistakes that name their key."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from recsys_hmtl.adapters.toy.problem import (
    FRONT_X2,
    PUBLISHED_SIGN,
    SEED_SIGN,
    distance_to_front,
    non_dominated,
    numerical_front,
    pareto_front,
    toy_losses,
)
from recsys_hmtl.cli import main
from recsys_hmtl.config import load_config
from recsys_hmtl.errors import InputError
from recsys_hmtl.training.run_plan import resolve_run
from recsys_hmtl.training.setup import build_loss_stage, dense_optimizer_for

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "toy_seed003.yaml"
os.environ["RECSYS_HMTL_PROGRESS"] = "0"
SHORT = ["trainer.max_steps=40", "data.steps_per_epoch=20", "trainer.ckpt_every=0", "trainer.log_every=10"]


def cli(*args) -> int:
    return main([str(a) for a in args])


def train(run: Path, *sets: str) -> int:
    return cli("train", "--config", CONFIG, "--out", run, *[x for s in sets for x in ("--set", s)])


def plan_of(*sets: str):
    return resolve_run(load_config(CONFIG, list(sets)))


@pytest.mark.parametrize("sign", [PUBLISHED_SIGN, SEED_SIGN])
def test_losses_at_hand_computed_points(sign):
    # g-branch, x = (7, -8): c1 = 0, c2 = tanh(4), g1 = -20, g2 = 14²/10 - 20 = -0.4
    c2 = math.tanh(4.0)
    g = toy_losses(torch.tensor([7.0, -8.0], dtype=torch.float64), sign)
    assert g.tolist() == pytest.approx([0.1 * c2 * -20.0, c2 * -0.4], abs=1e-12)
    # f-branch, x = (-7, 2): c1 = tanh(1), c2 = 0, f1 = log(tanh 2) + 6, f2 = log|5 + sign·tanh(-2) + 2| + 6
    c1, t = math.tanh(1.0), math.tanh(-2.0)
    f = toy_losses(torch.tensor([-7.0, 2.0], dtype=torch.float64), sign)
    f1, f2 = math.log(abs(-t)) + 6, math.log(abs(5 + sign * t + 2)) + 6
    assert f.tolist() == pytest.approx([0.1 * c1 * f1, c1 * f2], abs=1e-12)


def test_non_dominated_keeps_the_pareto_points_sorted():
    pts = torch.tensor([[3.0, 1.0], [1.0, 3.0], [2.0, 2.0], [2.0, 2.5], [3.0, 3.0], [1.0, 3.0], [0.5, 4.0]],
                       dtype=torch.float64)
    assert non_dominated(pts).tolist() == [[0.5, 4.0], [1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]


def test_numerical_front_agrees_with_the_published_line():
    front = numerical_front()
    assert front.dtype == torch.float64 and len(front) > 1000
    assert bool((front[1:, 0] > front[:-1, 0]).all()) and bool((front[1:, 1] < front[:-1, 1]).all())
    line = pareto_front(2001)  # x2 = -8.3552, x1 ∈ [-7, 7]
    assert FRONT_X2 == -8.3552
    # both ways (Hausdorff) in the loss plane; measured 1.4e-3 (line → front) and 1.8e-3 (front → line)
    assert float(distance_to_front(line, front).max()) < 1e-2
    assert float(distance_to_front(front, line).max()) < 1e-2
    # the front lies on the g-branch (x2 < 0), where the sign of f2 plays no part
    assert torch.equal(numerical_front(f2_sign=SEED_SIGN), front)


def test_distance_to_front_is_to_the_polyline():
    segment = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    pts = torch.tensor([[1.0, 1.0], [3.0, 0.0], [-3.0, 4.0]])
    assert distance_to_front(pts, segment).tolist() == pytest.approx([1.0, 1.0, 5.0])


def test_train_evaluate_and_compare_from_the_cli(tmp_path, capsys):
    assert cli("validate", "--config", CONFIG) == 0
    assert "f1, f2" in capsys.readouterr().out
    assert train(tmp_path / "sum", *SHORT) == 0
    assert train(tmp_path / "mgda", *SHORT, "stage.name=mgda") == 0
    for run in ("sum", "mgda"):
        assert cli("evaluate", "--run", tmp_path / run) == 0
    summary = json.loads((tmp_path / "sum" / "run_summary.json").read_text())
    report = json.loads((tmp_path / "sum" / "eval_report.json").read_text())
    assert summary["steps"] == 40 and summary["primary_metric"] == "avg_loss" and summary["inputs"] == []
    assert report["split"] == "test" and report["rows"] == 1 and list(report["tasks"]) == ["f1", "f2"]
    assert (report["task_metric"], report["direction"], report["change"]) == ("loss", "min", "relative")
    l1, l2 = report["tasks"]["f1"]["loss"], report["tasks"]["f2"]["loss"]
    assert report["avg_loss"] == pytest.approx((l1 + l2) / 2) and report["final"]
    x = torch.tensor([report["x1"], report["x2"]], dtype=torch.float32).double()
    assert [l1, l2] == pytest.approx(toy_losses(x).tolist(), abs=1e-9)
    assert report["front_distance"] == pytest.approx(float(distance_to_front(torch.tensor([[l1, l2]]),
                                                                               numerical_front())[0]))
    assert report["front_distance"] > 1.0  # 40 steps from (-8.5, 7.5) are nowhere near the front
    mgda = json.loads((tmp_path / "mgda" / "eval_report.json").read_text())
    assert mgda["front_distance"] is not None and (mgda["x1"], mgda["x2"]) != (report["x1"], report["x2"])
    capsys.readouterr()
    assert cli("compare", tmp_path / "sum", tmp_path / "mgda") == 0
    assert "f1 loss" in capsys.readouterr().out
    # stopped at 20 steps and resumed to 40: the same x as the uninterrupted run (the Adam state resumes)
    assert train(tmp_path / "resumed", *SHORT, "trainer.max_steps=20") == 0
    assert cli("train", "--config", CONFIG, "--out", tmp_path / "resumed", "--resume",
               *[x for s in SHORT for x in ("--set", s)]) == 0
    assert cli("evaluate", "--run", tmp_path / "resumed") == 0
    resumed = json.loads((tmp_path / "resumed" / "eval_report.json").read_text())
    assert (resumed["x1"], resumed["x2"]) == (report["x1"], report["x2"])


def test_shared_is_a_non_leaf_view_of_x():
    plan = plan_of()
    out = plan.adapter.build(plan.resolved, None, per_rank_batch=1, device=torch.device("cpu"),
                             process_group=None, cfg=plan.config).forward(None)
    assert not out.shared.is_leaf and out.shared.requires_grad and out.batch_size == 1
    grads = [torch.autograd.grad(out.losses[t], out.shared, retain_graph=True)[0] for t in ("f1", "f2")]
    x = torch.tensor([-8.5, 7.5], requires_grad=True)
    assert all(torch.allclose(g, torch.autograd.grad(toy_losses(x)[i], x)[0]) for i, g in enumerate(grads))


def _train_in_process(plan, steps: int) -> dict:
    """The core's step without Lightning: the adapter's model, the run's loss stage and optimizer."""
    cfg = plan.config
    trainable = plan.adapter.build(plan.resolved, None, per_rank_batch=1, device=torch.device("cpu"),
                                   process_group=None, cfg=cfg)
    stage = build_loss_stage(cfg, list(plan.task_names))
    optimizer = dense_optimizer_for(trainable, stage, cfg.trainer.lr)
    prepared = plan.adapter.prepare(plan.resolved)
    for _ in range(steps):
        out = trainable.forward(None)
        optimizer.zero_grad(set_to_none=True)
        stage.backward(out.losses, shared=out.shared)
        optimizer.step()
    return plan.adapter.evaluate(plan.resolved, prepared, trainable.module.state_dict(), "test", 1)


def test_sum_reaches_the_front_from_the_default_start():
    # Measured: with the config's lr 1e-3 (the published toy's) `sum` crosses the flat region first and
    # is within 1e-2 of the front only after ~42k steps (4e-4 at 45k); at lr 1e-2 it ends at the same
    # point, x = (-5.727, -8.409), within 1e-3 after 5k steps (x2 still -8.346 at 6k: the front is
    # flat in x2 there). The test takes the fast one.
    report = _train_in_process(plan_of("trainer.lr=0.01"), 6000)
    assert report["front_distance"] < 1e-2
    assert report["x1"] == pytest.approx(-5.727, abs=0.01) and -8.45 < report["x2"] < -8.3


@pytest.mark.parametrize("key, value, message", [
    ("tasks", "[f2, f1]", "tasks are fixed"),
    ("tasks", "[f1, f2, f3]", "tasks are fixed"),
    ("model.start", "[1.0]", "start point"),
    ("model.start", "[1.0, .nan]", "start point"),
    ("model.start", "3", "start point"),
    ("model.width", "4", "unknown key"),
    ("model.name", "lenet", "model is 'toy'"),
    ("data.f2_sign", "minus", "unknown sign"),
    ("data.steps_per_epoch", "0", "at least 1"),
    ("data.dataset", "mnist", "one dataset"),
])
def test_config_mistakes_name_their_key(key, value, message):
    with pytest.raises(InputError) as err:
        plan_of(f"{key}={value}")
    assert err.value.key == key and message in str(err.value)


def test_tasks_may_be_given_in_their_order():
    assert plan_of("tasks=[f1, f2]").task_names == ("f1", "f2") == plan_of().task_names
    assert plan_of("model.start=[0, 0]").resolved.model_hparams["start"] == (0.0, 0.0)
