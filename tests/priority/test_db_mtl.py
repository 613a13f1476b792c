"""``db_mtl`` (DB-MTL, Lin et al. 2023) against LibMTL's ``DB_MTL``: golden directions and head
gradients, its state (the moving average sized at the first step, exact ``state_dict`` round trips),
parameter mode only, and refusals.

Golden values: the scratch script /tmp/ref17c/golden.py (kept out of the project), run as
    cd /tmp/ref17c && /work/main/.venv/bin/python golden.py > golden_out.py
with this project's .venv (torch 2.13.0+cpu, numpy 2.3.5), ``torch.set_default_dtype(torch.float64)``:

* median-research-group/LibMTL @ 4336804847eaa5e0b924b743d76beec7ac3fdc97,
  ``LibMTL/weighting/DB_MTL.py`` (``DB_MTL.init_param``, ``DB_MTL.backward``; file last changed in
  7b0f56a7ee61f9fc17738dd221bb017d04999832) and ``LibMTL/weighting/abstract_weighting.py``
  (``_compute_grad`` in mode 'backward', ``_reset_grad``), unmodified.
* A harness subclass of ``DB_MTL`` with ``task_num = K``, ``device = "cpu"``, ``rep_grad = False``,
  an ``encoder`` holding the shared parameters x1 (2,) and x2 (D-2,) (``get_share_params``,
  ``zero_grad_share_params`` as LibMTL's ``AbsArchitecture``) and one scalar head θ_i per task;
  ``init_param()`` once, then per step every ``.grad = None``, L_i = J_i·[x1, x2] + a_i θ_i + c_i at
  x = 0, θ = 0, ``DB_MTL.backward(losses_stacked, DB_beta=β, DB_beta_sigma=σ)``: golden = the shared
  gradient [x1.grad, x2.grad] (= Σ α_i ĝ_i) and θ.grad (= a_i / (c_i + 1e-8): the heads get the
  gradient of log(L_i + 1e-8)).
* Sequences, 5 steps each (step t: J ~ randn(K, D)·(1 + t), a ~ randn(K), c ~ U(lo, hi), all from
  ``torch.Generator().manual_seed(s)`` and rounded to 3 decimals): D2 (K=2, D=4, s=301, LibMTL's
  defaults β=0.9, σ=0, c in [0.5, 2]), D3 (K=3, D=5, s=302, β=0.6, σ=0.5, c in [0.01, 10]).

Tolerance: the same float64 operations in the same order: directions and head gradients agree bit
for bit (max relative difference 0), asserted 1e-12 of the largest entry.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from recsys_hmtl.errors import InputError
from recsys_hmtl.priority import ExpandedView, NonFiniteLossError, TaskViews, build_stage
from recsys_hmtl.training.steps import check_grad_mode

F64 = torch.float64

# case -> (K, D, hyper-parameters, [(J row-major, a, c, direction, head grads), ...])
GOLDEN = {
    'D2': (2, 4, {'beta': 0.9, 'beta_sigma': 0.0}, [
        ([-0.005, -1.442, 0.107, 1.228, 0.013, -0.25, -2.017, 1.294],
         [-0.481, -0.53],
         [1.098, 1.422],
         [0.0004768185053117219, -0.14925644849107678, -0.13488816545092655, 0.20462864676272807],
         [-0.43806921276803995, -0.3727144840174791]),
        ([0.72, 0.421, -0.214, -1.848, -0.707, 0.57, 2.334, -1.014],
         [0.416, 1.728],
         [0.72, 1.038],
         [-0.005282510168379481, 0.0011996964802085605, 0.13053426476162455, -0.18061893196927445],
         [0.5777777697530865, 1.6647398683551073]),
        ([-4.434, 4.608, -5.282, 4.809, 0.738, -0.689, 3.963, -3.122],
         [0.997, 1.797],
         [1.457, 1.553],
         [-0.23222299891618864, 0.2501666298149904, 0.07930101858910515, -0.09972351403604426],
         [0.6842827681243461, 1.1571152533347375]),
        ([1.975, -3.562, 5.006, -4.369, -1.74, -3.503, 2.055, -3.687],
         [-0.452, -0.117],
         [1.503, 1.411],
         [-0.4570715519171793, -0.26033131980916663, 0.4010248835214987, -1.0800946422236928],
         [-0.30073186759326775, -0.08291991436626567]),
        ([-3.286, 0.383, -1.575, 2.065, -2.895, -2.998, -2.893, 4.702],
         [-0.745, 0.823],
         [1.481, 1.467],
         [-0.855375290094401, -0.38651516713247946, -0.011867207469226287, -0.028232450064766497],
         [-0.5030384841118266, 0.5610088577981672]),
    ]),
    'D3': (3, 5, {'beta': 0.6, 'beta_sigma': 0.5}, [
        ([1.21, 0.926, -0.658, -1.614, 0.71, -1.23, -1.195, -0.19, 0.224, -1.359, -0.27, 0.991,
          2.612, -0.242, -1.869],
         [0.216, -0.176, 1.141],
         [3.1, 5.994, 3.883],
         [-0.04781796989785627, 0.046757901269919466, 0.1444655188037049, -0.22171911216935733,
          -0.304794823201476],
         [0.06967741913007283, -0.029362695980375886, 0.2938449644763199]),
        ([-0.785, 2.779, -4.661, -0.875, -1.189, 5.148, -0.497, -2.721, -3.397, 0.596, 1.539,
          1.165, 0.756, -1.708, 0.599],
         [1.577, 1.072, 1.624],
         [1.167, 9.941, 8.911],
         [2.6995818596513192, 2.2671352326850873, -1.7684243109165105, -3.349749202217529,
          -1.0604533712778343],
         [1.351328180365654, 0.1078362336708216, 0.18224666122517488]),
        ([-1.029, 1.459, -3.886, -1.892, 3.235, 2.285, -1.533, -3.649, 4.475, -4.293, 0.236,
          -0.439, -1.872, 2.535, -0.407],
         [-0.352, -0.157, -0.382],
         [5.79, 6.578, 0.621],
         [1.0997256298185816, 0.3152430266343047, -6.435285567433667, 3.329047399510238,
          -1.8368672227129417],
         [-0.060794473124707295, -0.023867436874631442, -0.6151368661008556]),
        ([5.286, 0.23, 5.521, 6.608, -3.054, -0.726, -6.294, -2.316, 6.914, 0.1, -1.024, 1.11,
          2.151, 5.357, 0.981],
         [0.722, -0.686, 1.107],
         [4.519, 1.288, 2.835],
         [2.2502294642072282, -2.174385035213988, 0.4147435915667229, 12.81632353420773,
          -1.4653169337634382],
         [0.15976986023507442, -0.5326086915170134, 0.3904761890988494]),
        ([0.054, -3.944, -1.137, 2.808, 1.687, -5.517, 10.031, 0.8, 6.833, 4.305, -8.299, 4.134,
          4.329, 0.423, -3.259],
         [-0.749, 1.865, -0.813],
         [7.537, 1.853, 3.15],
         [-4.670056723148157, 2.38283244281288, 2.22251209101006, 9.617262836836153,
          0.5719036692883974],
         [-0.09937640958023562, 1.0064759794577658, -0.2580952372758881]),
    ]),
}


def tasks_for(k):
    return [f"t{i}" for i in range(k)]


def step(stage, jac, a, c):
    """One backward of L_i = J_i·[x1, x2] + a_i θ_i + c_i at 0; returns the shared direction and
    the head gradients."""
    k, d = jac.shape
    x1 = torch.zeros(2, dtype=F64, requires_grad=True)
    x2 = torch.zeros(d - 2, dtype=F64, requires_grad=True)
    theta = torch.zeros(k, dtype=F64, requires_grad=True)
    x = torch.cat([x1, x2])
    out = stage.backward({t: jac[i] @ x + a[i] * theta[i] + c[i] for i, t in enumerate(stage.tasks)},
                         shared=[x1, x2])
    assert float(out) == pytest.approx(float(torch.log(c + 1e-8).sum()), rel=1e-14)
    return torch.cat([x1.grad, x2.grad]), theta.grad


def check_step(stage, k, d, row):
    jac_flat, a, c, d_ref, heads_ref = row
    jac = torch.tensor(jac_flat, dtype=F64).reshape(k, d)
    direction, heads = step(stage, jac, torch.tensor(a, dtype=F64), torch.tensor(c, dtype=F64))
    for got, ref in ((direction, d_ref), (heads, heads_ref)):
        expected = torch.tensor(ref, dtype=F64)
        assert float((got - expected).abs().max()) <= 1e-12 * float(expected.abs().max())


# ------------------------------------------------------------------------------ golden values
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_sequence(case):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("db_mtl", tasks_for(k), **hp)
    for row in steps:
        check_step(stage, k, d, row)
    assert int(stage.steps) == len(steps)


def test_defaults_are_libmtls():
    stage = build_stage("db_mtl", ["a", "b"])
    assert (stage.beta, stage.beta_sigma) == (0.9, 0.0) == tuple(GOLDEN["D2"][2].values())


def test_every_task_is_scaled_to_the_largest_moving_average():
    # ĝ_t = ĝ_{t-1} β_t + (1 − β_t) g_t with g = ∇L / (L + 1e-8); α_i ‖ĝ_i‖ = max_j ‖ĝ_j‖
    k, d, hp, steps = GOLDEN["D3"]
    stage = build_stage("db_mtl", tasks_for(k), **hp)
    ema = torch.zeros(k, d, dtype=F64)
    for t, row in enumerate(steps, start=1):
        jac = torch.tensor(row[0], dtype=F64).reshape(k, d)
        c = torch.tensor(row[2], dtype=F64)
        step(stage, jac, torch.tensor(row[1], dtype=F64), c)
        g = jac / (c + 1e-8)[:, None]
        beta = hp["beta"] / t ** hp["beta_sigma"]
        ema = beta * ema + (1 - beta) * g
        torch.testing.assert_close(stage.grad_ema, ema, rtol=1e-13, atol=1e-15)
        diag = stage.diagnostics()
        alpha = torch.tensor([diag[f"weight/{task}"] for task in stage.tasks], dtype=F64)
        scaled = alpha * ema.norm(dim=1)
        torch.testing.assert_close(scaled, torch.full((k,), float(ema.norm(dim=1).max()), dtype=F64),
                                   rtol=1e-7, atol=0)


# -------------------------------------------------------------------------------------- state
@pytest.mark.parametrize("case, cut", [("D2", 2), ("D3", 1)])
def test_state_dict_round_trip_resumes_the_golden_sequence(case, cut):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("db_mtl", tasks_for(k), **hp)
    assert stage.grad_ema.shape == (0,)  # sized at the first step
    for row in steps[:cut]:
        check_step(stage, k, d, row)
    state = copy.deepcopy(stage.state_dict())
    assert set(state) == {"grad_ema", "steps"}
    assert state["grad_ema"].shape == (k, d) and int(state["steps"]) == cut
    resumed = build_stage("db_mtl", tasks_for(k), **hp)
    resumed.load_state_dict(state)
    for key, value in state.items():
        assert torch.equal(resumed.state_dict()[key], value)
    for row in steps[cut:]:
        check_step(resumed, k, d, row)


def test_a_change_of_size_is_refused_before_the_state_moves():
    k, d, hp, steps = GOLDEN["D2"]
    stage = build_stage("db_mtl", tasks_for(k), **hp)
    check_step(stage, k, d, steps[0])
    before = copy.deepcopy(stage.state_dict())
    with pytest.raises(ValueError, match="changed size"):
        step(stage, torch.ones(k, d + 1, dtype=F64), torch.ones(k, dtype=F64), torch.ones(k, dtype=F64))
    for key, value in before.items():
        assert torch.equal(stage.state_dict()[key], value)


@pytest.mark.parametrize("bad, error", [(float("nan"), NonFiniteLossError), (float("inf"), NonFiniteLossError),
                                        (-1e-8, ValueError), (-0.5, ValueError)])
def test_non_finite_or_non_positive_loss_is_refused_before_the_state_moves(bad, error):
    # LibMTL takes log(L + 1e-8): a loss of 0 is accepted (as there), L <= -1e-8 has no logarithm
    k, d, hp, steps = GOLDEN["D3"]
    stage = build_stage("db_mtl", tasks_for(k), **hp)
    check_step(stage, k, d, steps[0])
    before = copy.deepcopy(stage.state_dict())
    x = torch.zeros(d, dtype=F64, requires_grad=True)
    last = x.sum() * bad if math.isnan(bad) or math.isinf(bad) else x.sum() + bad
    with pytest.raises(error, match="'t2'"):
        stage.backward({"t0": x.sum() + 1.0, "t1": x.sum() + 1.0, "t2": last}, shared=[x])
    for key, value in before.items():
        assert torch.equal(stage.state_dict()[key], value)
    assert x.grad is None
    check_step(stage, k, d, steps[1])


# ---------------------------------------------------------------------------------- modes
def test_parameter_mode_only():
    stage = build_stage("db_mtl", ["a", "b"])
    assert stage.grad_modes == ("params",) and stage.needs_task_grads
    check_grad_mode("params", stage)
    with pytest.raises(InputError, match="params"):
        check_grad_mode(None, stage)
    with pytest.raises(InputError, match="params"):
        check_grad_mode("rep", stage)


def test_a_representation_or_task_views_are_refused_before_the_state_moves():
    stage = build_stage("db_mtl", ["a", "b"])
    w = torch.randn(3, 4, dtype=F64, requires_grad=True)
    rep = torch.randn(5, 3, dtype=F64) @ w
    view = rep.unsqueeze(0).expand(2, *rep.shape)
    losses = {"a": view[0].pow(2).mean() + 0.1, "b": view[1].mean().abs() + 0.1}
    for shared in (rep, TaskViews((ExpandedView(rep, view),))):
        with pytest.raises(ValueError, match="grad_mode: params"):
            stage.backward(losses, shared=shared)
    assert stage.grad_ema.shape == (0,) and int(stage.steps) == 0 and w.grad is None


@pytest.mark.parametrize("bad, key", [({"beta": 1.0}, "beta"), ({"beta": -0.1}, "beta"),
                                      ({"beta_sigma": -1.0}, "beta_sigma"),
                                      ({"beta_sigma": float("inf")}, "beta_sigma")])
def test_bad_hyper_parameters_are_named(bad, key):
    with pytest.raises(ValueError, match=key):
        build_stage("db_mtl", ["a", "b"], **bad)
