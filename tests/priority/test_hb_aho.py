"""HB-AHO (seed 000): Eq. 6 by hand, the barrier's derivative (Eq. 11-12), Eq. 5 thresholds, Table 5."""

from __future__ import annotations

import math

import pytest
import torch

from recsys_hmtl.priority import build_stage
from recsys_hmtl.priority.barriers import BARRIERS

TASKS = ("entity", "relation", "triplet")


def step(stage, values, tasks=TASKS):
    losses = {t: torch.tensor(float(v), requires_grad=True) for t, v in zip(tasks, values)}
    objective = stage(losses)
    objective.backward()
    return float(objective.detach()), [float(losses[t].grad) for t in tasks], stage.diagnostics()


def thresholds(diag):
    return [diag[f"threshold/{t}"] for t in TASKS]


def test_objective_gradients_and_thresholds_by_hand():
    stage = build_stage("hb_aho", tasks=TASKS)  # ε0 = 0.05, γ = 0.95, s = 3

    # Step 1, L = [0.5, 0.3, 0.2], ε = 0.05: φ1 = tanh(3·0.45 + 1) = tanh(2.35) = 0.981973,
    # φ2 = tanh(3·0.25 + 1) = tanh(1.75) = 0.941376. Eq. 6:
    # 0.981973·0.5 + 0.3/1.981973 + 0.2/1.941376 = 0.490987 + 0.151364 + 0.103020 = 0.745371.
    # φ'(x) = 3·(1 − φ²): φ1' = 0.107190, φ2' = 0.341420.
    #   dL1 = φ1 + L1 φ1' − L2 φ1'/(1+φ1)² = 0.981973 + 0.053595 − 0.008187 = 1.027380
    #   dL2 = 1/(1+φ1) − L3 φ2'/(1+φ2)² = 0.504548 − 0.018119 = 0.486429
    #   dL3 = 1/(1+φ2) = 0.515099
    obj, grads, diag = step(stage, [0.5, 0.3, 0.2])
    assert obj == pytest.approx(0.745371, abs=2e-6)
    assert grads == pytest.approx([1.027380, 0.486429, 0.515099], abs=2e-6)
    assert thresholds(diag) == pytest.approx([0.05] * 3)
    assert float(stage.eps[0]) == pytest.approx(0.05)  # no L_i <= ε_i: nothing decays

    # Step 2, L = [0.04, 0.3, 0.02]: φ1 = tanh(3·(−0.01) + 1) = tanh(0.97) = 0.748704, φ2 as before.
    # 0.748704·0.04 + 0.3/1.748704 + 0.02/1.941376 = 0.029948 + 0.171556 + 0.010302 = 0.211806.
    #   dL1 = 0.748704 + 0.04·3·(1 − 0.748704²) − 0.3·3·(1 − 0.748704²)/1.748704² = 0.672104
    #   dL2 = 1/1.748704 − 0.02·0.341420/1.941376² = 0.570040; dL3 = 0.515099
    # Then L1 = 0.04 <= 0.05 and L3 = 0.02 <= 0.05: ε1, ε3 ← 0.95·0.05 = 0.0475 (Eq. 5).
    obj, grads, diag = step(stage, [0.04, 0.3, 0.02])
    assert obj == pytest.approx(0.211806, abs=2e-6)
    assert grads == pytest.approx([0.672104, 0.570040, 0.515099], abs=2e-6)
    assert thresholds(diag) == pytest.approx([0.05] * 3)  # the ε used in this step's objective
    assert [diag[f"satisfied/{t}"] for t in TASKS] == [1.0, 0.0, 1.0]
    assert stage.eps.tolist() == pytest.approx([0.0475, 0.05, 0.0475])

    # Step 3, L = [0.048, 0.3, 0.02] against ε = [0.0475, 0.05, 0.0475]:
    # φ1 = tanh(3·0.0005 + 1) = tanh(1.0015) = 0.762223;
    # 0.762223·0.048 + 0.3/1.762223 + 0.02/1.941376 = 0.036587 + 0.170239 + 0.010302 = 0.217128.
    #   dL1 = 0.762223 + 0.048·3·(1 − 0.762223²) − 0.3·3·(1 − 0.762223²)/1.762223² = 0.701125
    #   dL2 = 1/1.762223 − 0.02·0.341420/1.941376² = 0.567465 − 0.001812 = 0.565653; dL3 = 0.515099
    # L1 = 0.048 > 0.0475 keeps ε1; L3 = 0.02 <= 0.0475 decays ε3 to 0.045125.
    obj, grads, diag = step(stage, [0.048, 0.3, 0.02])
    assert obj == pytest.approx(0.217128, abs=2e-6)
    assert grads == pytest.approx([0.701125, 0.565653, 0.515099], abs=2e-6)
    assert stage.eps.tolist() == pytest.approx([0.0475, 0.05, 0.045125])


@pytest.mark.parametrize("sharpness", [1.0, 2.0, 3.0, 5.0])
def test_barrier_derivative_is_positive_and_at_most_s(sharpness):
    """Eq. 11-12 / Eq. 24: φ'(x) = s·sech²(s·x + 1) ∈ (0, s]; its maximum s sits at x = −1/s."""
    x = torch.linspace(-3.0, 3.0, 2001, dtype=torch.float64, requires_grad=True)
    BARRIERS["tanh"](x, sharpness).sum().backward()
    slope = x.grad
    assert bool((slope > 0).all())
    assert float(slope.max()) <= sharpness + 1e-12
    assert float(slope.max()) == pytest.approx(sharpness, rel=1e-4)
    assert float(x.detach()[slope.argmax()]) == pytest.approx(-1.0 / sharpness, abs=5e-3)


def test_threshold_decays_only_when_satisfied():
    """Eq. 5: ε_i(t+1) = ε_i(t)·γ^{δ(L_i(t) <= ε_i(t))}, on a random sequence around the thresholds."""
    stage = build_stage("hb_aho", tasks=TASKS, eps0=0.3, decay=0.9)
    g = torch.Generator().manual_seed(0)
    decays = holds = 0
    for _ in range(60):
        before = stage.eps.clone()
        values = (torch.rand(3, generator=g) * 0.4).tolist()
        step(stage, values)
        for i, v in enumerate(values):
            if v <= before[i]:
                assert float(stage.eps[i]) == pytest.approx(0.9 * float(before[i]))
                decays += 1
            else:
                assert float(stage.eps[i]) == float(before[i])
                holds += 1
    assert decays > 5 and holds > 5


def test_epoch_update_uses_the_epoch_mean():
    stage = build_stage("hb_aho", tasks=TASKS, update="epoch")
    # Epoch 1: entity 0.01 and 0.07 (mean 0.04 <= 0.05), relation 0.2 and 0.2, triplet 0.06 and 0.05.
    for values in ([0.01, 0.2, 0.06], [0.07, 0.2, 0.05]):
        step(stage, values)
        assert stage.eps.tolist() == pytest.approx([0.05] * 3)  # nothing moves inside the epoch
    stage.end_epoch()
    assert stage.eps.tolist() == pytest.approx([0.0475, 0.05, 0.05])
    stage.end_epoch()  # an empty epoch changes nothing
    assert stage.eps.tolist() == pytest.approx([0.0475, 0.05, 0.05])


def test_step_mode_ignores_end_epoch():
    stage = build_stage("hb_aho", tasks=TASKS)
    step(stage, [0.5, 0.5, 0.5])
    stage.end_epoch()
    assert stage.eps.tolist() == pytest.approx([0.05] * 3)


# Table 5 of seed 000, written out by hand: φ(x) for x = L1 − ε1.
TABLE_5 = {
    "tanh": lambda x: math.tanh(3 * x + 1),
    "sigmoid": lambda x: 1 / (1 + math.exp(-x)),
    "gaussian": lambda x: 1 - math.exp(-x * x),
    "softplus": lambda x: math.log(1 + math.exp(x)),
    "exp": lambda x: math.exp(x) - 1,
    "quadratic": lambda x: x * x,
    "cubic": lambda x: x ** 3,
}


@pytest.mark.parametrize("barrier", sorted(TABLE_5))
def test_table_5_barriers_in_the_two_task_objective(barrier):
    """Eq. 4 with each barrier: φ(x)·L_ent + L_rel / (1 + φ(x))."""
    stage = build_stage("hb_aho", tasks=("ent", "rel"), barrier=barrier)
    phi = TABLE_5[barrier](0.4 - 0.05)
    obj, _, diag = step(stage, [0.4, 0.7], tasks=("ent", "rel"))
    assert obj == pytest.approx(phi * 0.4 + 0.7 / (1 + phi), rel=1e-5)
    assert diag["barrier/ent"] == pytest.approx(phi, rel=1e-5)


def test_barrier_that_breaks_the_weight_is_reported():
    stage = build_stage("hb_aho", tasks=("ent", "rel"), barrier="cubic", eps0=2.0)
    with pytest.raises(ValueError, match="'ent'.*cubic"):
        stage({"ent": torch.tensor(0.1), "rel": torch.tensor(0.1)})
    assert stage.eps.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    "hparams, message",
    [
        ({"barrier": "tanhh"}, "did you mean 'tanh'"),
        ({"update": "epochs"}, "did you mean 'epoch'"),
        ({"barrier": "sigmoid", "sharpness": 5.0}, "tanh"),
        ({"decay": 1.5}, "decay"),
        ({"eps0": -1}, "eps0"),
    ],
)
def test_bad_hyper_parameters_are_named(hparams, message):
    with pytest.raises(ValueError, match=message):
        build_stage("hb_aho", tasks=TASKS, **hparams)
