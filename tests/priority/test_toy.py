"""The two-task toy of seed 003 A.3 (benchmarks/toy_problem.py): what a short run must show."""

from __future__ import annotations

import pytest
import torch

from benchmarks.toy_problem import (
    FRONT_X2,
    PUBLISHED_SIGN,
    PUBLISHED_STARTS,
    SEED_SIGN,
    SEED_STARTS,
    toy_losses,
)
from recsys_hmtl.priority import build_stage

F64 = torch.float64


def test_losses_by_hand():
    # x = (-8.5, 7.5): c1 = tanh(3.75) = 0.998894, c2 = 0, tanh(-7.5) = -0.999999;
    # f1 = log|0.5·1.5 + 0.999999| + 6 = log 1.749999 + 6 = 6.559615, L1 = 0.1·c1·f1 = 0.655236;
    # published f2 = log|0.5·11.5 - 0.999999 + 2| + 6 = log 6.750001 + 6 = 7.909543, L2 = 7.900796;
    # seed's f2 = log|5.75 + 0.999999 + 2| + 6 = log 8.749999 + 6 = 8.169054, L2 = 8.160020.
    x = torch.tensor([-8.5, 7.5], dtype=F64)
    assert toy_losses(x, PUBLISHED_SIGN).tolist() == pytest.approx([0.655236, 7.900796], abs=1e-5)
    assert toy_losses(x, SEED_SIGN).tolist() == pytest.approx([0.655236, 8.160020], abs=1e-5)
    assert SEED_STARTS[0] == PUBLISHED_STARTS[0] and len(SEED_STARTS) == len(PUBLISHED_STARTS) == 5


@pytest.mark.parametrize("start", PUBLISHED_STARTS[1:])
def test_mgda_decreases_both_losses_at_every_step(start):
    # MGDA's min-norm direction is a common descent direction (Désidéri 2012): with small plain
    # gradient steps neither loss may go up.
    stage = build_stage("mgda", tasks=["l1", "l2"])
    x = torch.tensor(start, dtype=F64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=1e-2)
    history = []
    for _ in range(150):
        opt.zero_grad()
        losses = toy_losses(x)
        history.append(losses.detach())
        stage.backward({"l1": losses[0], "l2": losses[1]}, shared=[x])
        opt.step()
    steps = torch.stack(history).diff(dim=0)
    assert float(steps.max()) <= 1e-12
    assert bool((history[-1] < history[0]).all())


def test_mgda_reaches_the_pareto_front():
    stage = build_stage("mgda", tasks=["l1", "l2"])
    x = torch.tensor([9.0, -1.0], dtype=F64, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.1)
    for _ in range(800):
        opt.zero_grad()
        losses = toy_losses(x)
        stage.backward({"l1": losses[0], "l2": losses[1]}, shared=[x])
        opt.step()
    assert float(x[1].detach()) == pytest.approx(FRONT_X2, abs=0.3)
    assert -7.5 < float(x[0].detach()) < 7.5
    assert stage.diagnostics()["direction_norm"] < 0.01  # Pareto-stationary (0.34 at the start)
