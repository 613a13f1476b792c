"""Seed 004's bilevel mode and LDC-MTL's double loop through the training job (issue 15):
constraints reach the stage and their residual falls, a stopped run resumes to the uninterrupted
result, configurations the mode cannot train are refused at validate time, the inner loop moves
only the dense parameters and puts them back."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mainjob import read_json, run_cli, train_args
from recsys_hmtl.priority import build_stage
from recsys_hmtl.models.layers import GroupedMLP
from recsys_hmtl.training.adapter import Trainable
from recsys_hmtl.training.bilevel import BilevelStep, PairedBatch
from recsys_hmtl.training.inner_loop import DoubleLoopStep
from recsys_hmtl.training.outputs import TaskHeads, TaskOutputs

BILEVEL = ["stage.name=wc_penalty", "bilevel.holdout=0.2", "model.tower_dims=[]", "trainer.max_epochs=10",
           "trainer.log_every=2"]


def logged(run_dir, column: str) -> list[float]:
    with open(run_dir / "logs" / "rank0" / "metrics.csv") as handle:
        return [float(r[column]) for r in csv.DictReader(handle) if r.get(column)]


def test_bilevel_mode_passes_the_stationarity_constraints_and_their_residual_falls(demo_root, tmp_path):
    run = tmp_path / "bilevel"
    assert run_cli(*train_args(demo_root, run, *BILEVEL, "trainer.max_steps=24")) == 0
    summary = read_json(run / "run_summary.json")
    residuals = logged(run, "stage/bilevel/residual")
    assert len(residuals) == 12 and residuals[-1] < residuals[0]
    assert summary["bilevel"]["residual"] == pytest.approx(
        sum(v for k, v in summary["bilevel"].items() if k.startswith("residual/")))
    assert summary["bilevel"]["kkt"] >= summary["bilevel"]["residual"]
    rho = logged(run, "stage/rho")  # ρ_t = ρ₀ √(1 + t): the penalty weight grows with the steps
    assert rho[0] == pytest.approx(2 ** 0.5) and rho[-1] == pytest.approx(24 ** 0.5)
    assert summary["stage_diagnostics"]["penalty"] > 0


def test_a_stopped_bilevel_run_resumes_to_the_uninterrupted_result(demo_root, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run_cli(*train_args(demo_root, whole, *BILEVEL, "trainer.max_steps=14")) == 0
    assert run_cli(*train_args(demo_root, parts, *BILEVEL, "trainer.max_steps=7")) == 0
    assert run_cli(*train_args(demo_root, parts, *BILEVEL, "trainer.max_steps=14"), "--resume") == 0
    a, b = read_json(whole / "run_summary.json"), read_json(parts / "run_summary.json")
    assert a["steps"] == b["steps"] == 14
    assert a["bilevel"] == pytest.approx(b["bilevel"], rel=1e-6)
    assert a["val_avg_auc"] == pytest.approx(b["val_avg_auc"], abs=1e-6)


@pytest.mark.parametrize("extra, key", [
    (["model.name=esmm"], "model.name"),                      # chained heads
    (["model.tower_dims=[8]"], "model.tower_dims"),           # not linear
    (["stage.name=sum"], "stage.name"),                       # takes no constraints
    (["bilevel.holdout=1.5"], "bilevel.holdout"),
])
def test_bilevel_mode_refuses_what_it_cannot_train_before_any_data_is_read(demo_root, tmp_path, capsys, extra, key):
    settings = [s for s in BILEVEL if not s.startswith(tuple(e.split("=")[0] for e in extra))] + extra
    assert run_cli(*train_args(demo_root, tmp_path / "r", *settings)) == 2
    assert f"key '{key}'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bilevel_mode_and_the_double_loop_are_single_process(demo_root, tmp_path, capsys):
    for settings in (BILEVEL, ["stage.name=ldc_mtl", "stage.loop=double"]):
        assert run_cli(*train_args(demo_root, tmp_path / "r", *settings), "--nproc", "2") == 2
        assert "key '--nproc'" in capsys.readouterr().err


def test_ldc_mtl_double_loop_trains_from_the_cli(demo_root, tmp_path):
    run = tmp_path / "double"
    settings = ["stage.name=ldc_mtl", "stage.loop=double", "stage.inner_steps=2", "stage.inner_lr=0.05"]
    assert run_cli(*train_args(demo_root, run, *settings)) == 0
    start, end = logged(run, "stage/inner/lower_level_start"), logged(run, "stage/inner/lower_level_end")
    assert start and all(e < s for s, e in zip(start, end))  # Eq. 4's steps descend the lower level
    assert read_json(run / "run_summary.json")["steps"] == 12


class _Lookup(Trainable):
    """Rows (an embedding table, as a fused optimizer would own them) feeding a dense head."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        module = nn.ModuleDict({"rows": nn.Embedding(6, 3), "head": nn.Linear(3, 2)})
        super().__init__(module)
        self.row_backward_calls = 0
        module["rows"].weight.register_hook(lambda g: setattr(self, "row_backward_calls",
                                                               self.row_backward_calls + 1))

    def forward(self, batch) -> TaskOutputs:
        out = self.module["head"](self.module["rows"](batch))
        losses = {"a": (out[:, 0] - 1).pow(2).mean(), "b": (out[:, 1] + 1).pow(2).mean()}
        return TaskOutputs(losses, out, None, len(batch))

    def parameter_groups(self, lr: float) -> list[dict]:
        return [{"params": list(self.module["head"].parameters()), "lr": lr}]


def test_the_inner_loop_steps_only_the_dense_parameters_and_puts_them_back():
    trainable = _Lookup()
    stage = build_stage("ldc_mtl", ["a", "b"], loop="double", inner_steps=3, inner_lr=0.1)
    before = {k: v.clone() for k, v in trainable.module.state_dict().items()}
    rule = DoubleLoopStep(trainable, stage)
    out = rule.forward(torch.tensor([0, 1, 2, 3]))
    assert trainable.row_backward_calls == 0               # the inner loop never reached the rows
    for k, v in trainable.module.state_dict().items():
        assert torch.equal(v, before[k]), k                # x^t is back, bit for bit
    assert bool(stage.has_lower)
    d = rule.diagnostics()
    assert d["inner/lower_level_end"] < d["inner/lower_level_start"]
    rule.backward(out, out.losses, None)
    assert trainable.row_backward_calls == 1 and stage.router.logits.grad is not None


@dataclass
class _Rows:
    x: torch.Tensor
    labels: torch.Tensor

    @property
    def batch_size(self) -> int:
        return len(self.x)


class _Tower(Trainable):
    """A trunk and two linear heads (a GroupedMLP, as the towers have them) on plain tensors."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        module = nn.ModuleDict({"trunk": nn.Linear(3, 4), "towers": GroupedMLP(2, 4, [1], shared_input=True)})
        super().__init__(module)

    def forward(self, batch) -> TaskOutputs:
        x, labels = batch.x, batch.labels
        logits = self.module["towers"](torch.tanh(self.module["trunk"](x))).squeeze(-1)  # [T, B]
        losses = {t: nn.functional.binary_cross_entropy_with_logits(logits[i], labels[:, i])
                  for i, t in enumerate(("a", "b"))}
        return TaskOutputs(losses, None, None, len(x))

    def task_heads(self) -> TaskHeads:
        towers = self.module["towers"]
        return TaskHeads([towers.weights[0], towers.biases[0]], towers.group_sq_norms, towers.inputs_detached)


def _bilevel_grads(penalty_grad: str, rho: float) -> dict[str, torch.Tensor]:
    trainable = _Tower()
    stage = build_stage("wc_penalty", ["a", "b"], rho=rho)
    rule = BilevelStep(trainable, stage, kkt_every=1, penalty_grad=penalty_grad)
    g = torch.Generator().manual_seed(1)
    batch = PairedBatch(*[_Rows(torch.randn(16, 3, generator=g), torch.randint(0, 2, (16, 2), generator=g).float())
                          for _ in range(2)])
    out = rule.forward(batch)
    rule.backward(out, out.losses, None, step=1)
    assert rule.diagnostics()["bilevel/kkt"] >= rule.diagnostics()["bilevel/residual"] > 0
    return {n: p.grad.clone() for n, p in trainable.module.named_parameters()}


def test_the_penalty_moves_the_trunk_in_full_mode_and_only_the_heads_in_heads_mode():
    for mode in ("full", "heads"):
        none, strong = _bilevel_grads(mode, 0.0), _bilevel_grads(mode, 5.0)
        assert not torch.allclose(strong["towers.weights.0"], none["towers.weights.0"])
        trunk_same = torch.equal(strong["trunk.weight"], none["trunk.weight"])
        assert trunk_same == (mode == "heads"), mode
