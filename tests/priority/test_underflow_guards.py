"""Stages keep training when a task's loss underflows (is_hate on the genuine KuaiRand rows: a BCE
loss of exactly 0, a gradient near float32's smallest numbers), as measured in the baselines suite."""

from __future__ import annotations

import pytest
import torch

from recsys_hmtl.priority import build_stage


def test_pcgrad_does_not_project_onto_a_gradient_that_is_float_rounding():
    """g_b ≈ 1e-39 conflicts with g_a: projecting would use a coefficient g_a·g_b/‖g_b‖² ≈ 1e39,
    which overflows float32 in the direction (inf, then NaN); g_b counts as zero instead."""
    rep = torch.tensor([[1.0, 2.0]], requires_grad=True)
    tiny = torch.tensor([[-1e-39, 0.0]])  # a float32 subnormal gradient for task b
    losses = {"a": (rep * torch.tensor([[1.0, 0.5]])).sum(), "b": (rep * tiny).sum()}
    stage = build_stage("pcgrad", ["a", "b"])
    stage.backward(losses, shared=rep)
    assert torch.isfinite(rep.grad).all()
    torch.testing.assert_close(rep.grad, torch.tensor([[1.0, 0.5]]) + tiny)
    assert stage.diagnostics()["projections"] == 1.0  # b onto a still; a onto b no longer


def test_pcgrad_still_projects_small_but_real_conflicts():
    rep = torch.tensor([[1.0, 2.0]], requires_grad=True)
    losses = {"a": (rep * torch.tensor([[1.0, 0.0]])).sum(), "b": (rep * torch.tensor([[-1e-3, 1e-3]])).sum()}
    stage = build_stage("pcgrad", ["a", "b"])
    stage.backward(losses, shared=rep)
    assert stage.diagnostics()["projections"] == 2.0


def test_gradnorm_takes_a_loss_that_underflowed_to_zero_after_the_first_step():
    rep = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    stage = build_stage("gradnorm", ["a", "b", "c"])

    def step(scale_c: float) -> None:
        losses = {"a": (rep * 0.3).sum() + 1.0, "b": (rep ** 2).sum() * 0.1, "c": (rep * scale_c).sum() * 0}
        rep.grad = None
        stage.backward(losses, shared=rep)

    with pytest.raises(ValueError, match="positive first task losses"):
        step(1.0)  # L(0) = 0 would divide the training rates
    stage = build_stage("gradnorm", ["a", "b", "c"])
    losses = {"a": (rep * 0.3).sum() + 1.0, "b": (rep ** 2).sum() * 0.1, "c": (rep * 0.2).sum()}
    stage.backward(losses, shared=rep)          # first step: every loss positive
    rep.grad = None
    step(1.0)                                    # then c's loss is exactly 0: trains on
    assert torch.isfinite(rep.grad).all()
    assert all(torch.isfinite(torch.tensor(v)) for v in stage.diagnostics().values())
