"""``moco`` (MoCo, Fernando et al., ICLR 2023) against LibMTL's ``MoCo``: golden weights, directions
and head gradients, its state (Y sized at the first step, exact ``state_dict`` round trips), parameter
mode only, and refusals.

Golden values: the scratch script /tmp/ref17c/golden.py (kept out of the project), run as
    cd /tmp/ref17c && /work/main/.venv/bin/python golden.py > golden_out.py
with this project's .venv (torch 2.13.0+cpu, numpy 2.3.5), ``torch.set_default_dtype(torch.float64)``:

* median-research-group/LibMTL @ 4336804847eaa5e0b924b743d76beec7ac3fdc97,
  ``LibMTL/weighting/MoCo.py`` (``MoCo.init_param``, ``MoCo.backward``; file last changed in
  8b8f1d030377b14d9c29017e11e2586944a23d9b) and ``LibMTL/weighting/abstract_weighting.py``
  (``_compute_grad`` in mode 'backward', ``_reset_grad``), unmodified.
* A harness subclass of ``MoCo`` with ``task_num = K``, ``device = "cpu"``, ``rep_grad = False``,
  an ``encoder`` holding the shared parameters x1 (2,) and x2 (D-2,) (``get_share_params``,
  ``zero_grad_share_params`` as LibMTL's ``AbsArchitecture``) and one scalar head θ_i per task;
  ``init_param()`` once, then per step every ``.grad = None``, L_i = J_i·[x1, x2] + a_i θ_i + c_i at
  x = 0, θ = 0, ``lw = MoCo.backward(losses_stacked, MoCo_beta=..., ...)``: golden = the returned λ,
  the shared gradient [x1.grad, x2.grad] (= Yᵀλ) and θ.grad (= a: heads get ∂L_i/∂θ_i, weight 1).
* Sequences, 5 steps each (step t: J ~ randn(K, D)·(1 + t), a ~ randn(K), c ~ U(0.5, 2), all from
  ``torch.Generator().manual_seed(s)`` and rounded to 3 decimals): M2 (K=2, D=4, s=201, LibMTL's
  defaults), M3 (K=3, D=5, s=202, β=0.8, σ_β=0.3, γ=0.5, σ_γ=0.4, ρ=0.1). Written out below.

Tolerance: the same float64 operations in the same order: λ, directions and head gradients agree
bit for bit (max relative difference 0), asserted 1e-13 (λ) / 1e-12 of the largest entry.
"""

from __future__ import annotations

import copy

import pytest
import torch

from recsys_hmtl.errors import InputError
from recsys_hmtl.priority import ExpandedView, NonFiniteLossError, TaskViews, build_stage
from recsys_hmtl.training.steps import check_grad_mode

F64 = torch.float64

# case -> (K, D, hyper-parameters, [(J row-major, a, c, λ after the step, direction, head grads), ...])
GOLDEN = {
    'M2': (2, 4, {'beta': 0.5, 'beta_sigma': 0.5, 'gamma': 0.1, 'gamma_sigma': 0.5, 'rho': 0.0}, [
        ([-0.244, 1.448, -0.719, 0.235, 1.622, -0.737, 0.549, -0.628],
         [0.92, 0.529],
         [0.753, 1.724],
         [0.5075155807123346, 0.4924844192876653],
         [0.32180323318908216, 0.008459329946735678, 0.035300807765325695, -0.10833820181199735],
         [0.92, 0.529]),
        ([-1.431, -1.05, 2.441, -1.424, -2.797, 1.618, -0.745, -0.201],
         [0.611, -0.306],
         [1.728, 1.653],
         [0.5019345520491632, 0.4980654479508368],
         [-0.165771813778561, 0.0483947343532714, 0.18330822526796117, -0.21968453755088668],
         [0.611, -0.306]),
        ([0.185, -2.743, 4.284, 1.038, 3.947, 0.437, -2.207, -2.748],
         [-0.915, -0.184],
         [1.766, 1.594],
         [0.4991099563871234, 0.5008900436128766],
         [0.0630104758525285, -0.08084485906418566, 0.24377804262340774, -0.22468827804794858],
         [-0.915, -0.184]),
        ([0.22, -1.355, -2.441, -7.503, 8.775, 2.195, 0.517, 3.367],
         [0.842, 0.229],
         [1.167, 1.304],
         [0.49961216277021697, 0.500387837229783],
         [0.19916562033298982, -0.048380540620413415, 0.147446441689976, -0.2481256528929624],
         [0.842, 0.229]),
        ([5.52, -1.304, -5.114, 7.257, 2.425, 4.612, 11.697, -0.075],
         [0.938, -0.825],
         [1.937, 1.311],
         [0.5011201207345505, 0.4988798792654496],
         [0.29526425057507816, -0.012203906043118842, 0.1433136919067246, -0.04415010666003073],
         [0.938, -0.825]),
    ]),
    'M3': (3, 5, {'beta': 0.8, 'beta_sigma': 0.3, 'gamma': 0.5, 'gamma_sigma': 0.4, 'rho': 0.1}, [
        ([0.801, 1.554, -0.815, -0.933, -0.038, -0.98, 0.544, -0.017, 1.779, -0.857, -0.974,
          -1.476, -0.487, -0.342, 0.142],
         [-1.319, 0.276, 0.623],
         [0.757, 0.608, 1.639],
         [0.3628572928014559, 0.3479214687474871, 0.289221238451057],
         [-0.18829543786942698, -0.09923784483933995, -0.18353186905724134, -0.03239265554236895,
          -0.03898955178873237],
         [-1.319, 0.276, 0.623]),
        ([-0.883, -1.447, 2.468, 0.435, 3.365, 0.437, 3.866, 1.983, -3.816, -0.904, 1.515, -0.199,
          -1.021, -1.436, -2.978],
         [-1.828, -0.181, -0.117],
         [1.291, 1.762, 1.071],
         [0.3538766077883348, 0.3107092271993008, 0.3354141650123643],
         [-0.012905155897685707, 0.07273329892284364, 0.15007416052990086, -0.3107320024796645,
          -0.027432328236899922],
         [-1.828, -0.181, -0.117]),
        ([3.968, -1.048, -2.686, 1.318, 2.147, -2.294, 0.326, 2.946, -0.378, -0.352, -3.077,
          1.473, 3.73, 1.605, -1.454],
         [-0.46, -0.228, -0.474],
         [0.56, 1.405, 1.165],
         [0.3691195462919987, 0.29934266276016774, 0.3315377909478336],
         [-0.1916356688861594, 0.08473685786220515, 0.3460400954913898, -0.05938372598215508,
          -0.04059353382565842],
         [-0.46, -0.228, -0.474]),
        ([-1.13, 6.585, 4.442, 0.577, -4.787, -1.373, -3.108, 0.473, 3.765, -3.8, 0.747, -3.49,
          -5.182, -1.686, 5.026],
         [-1.184, -0.117, -1.379],
         [0.949, 1.279, 1.25],
         [0.34700840409878453, 0.3114091901705056, 0.3415824057307097],
         [-0.1429409148858366, -0.032604538674159765, 0.12561482725268625, 0.05857666099388112,
          -0.10304022821266885],
         [-1.184, -0.117, -1.379]),
        ([-0.15, -4.374, 3.112, 4.779, -1.525, 1.191, 3.006, 10.051, -1.965, 5.141, -1.111, 1.615,
          11.04, -4.351, -7.1],
         [-0.839, 1.063, -2.317],
         [1.499, 1.14, 1.698],
         [0.3390088259031772, 0.323448487319972, 0.33754268677685073],
         [-0.08399288090982285, -0.08864461404120737, 0.5492802355747307, 0.07604265457455948,
          -0.17258790299141974],
         [-0.839, 1.063, -2.317]),
    ]),
}


def tasks_for(k):
    return [f"t{i}" for i in range(k)]


def step(stage, jac, a, c):
    """One backward of L_i = J_i·[x1, x2] + a_i θ_i + c_i at 0; returns the shared direction, the
    head gradients and λ (``weight``)."""
    k, d = jac.shape
    x1 = torch.zeros(2, dtype=F64, requires_grad=True)
    x2 = torch.zeros(d - 2, dtype=F64, requires_grad=True)
    theta = torch.zeros(k, dtype=F64, requires_grad=True)
    x = torch.cat([x1, x2])
    stage.backward({t: jac[i] @ x + a[i] * theta[i] + c[i] for i, t in enumerate(stage.tasks)},
                   shared=[x1, x2])
    diag = stage.diagnostics()
    weights = torch.tensor([diag[f"weight/{t}"] for t in stage.tasks], dtype=F64)
    return torch.cat([x1.grad, x2.grad]), theta.grad, weights


def check_step(stage, k, d, row):
    jac_flat, a, c, lam_ref, d_ref, heads_ref = row
    jac = torch.tensor(jac_flat, dtype=F64).reshape(k, d)
    direction, heads, lam = step(stage, jac, torch.tensor(a, dtype=F64), torch.tensor(c, dtype=F64))
    torch.testing.assert_close(lam, torch.tensor(lam_ref, dtype=F64), rtol=0, atol=1e-13)
    for got, ref in ((direction, d_ref), (heads, heads_ref)):
        expected = torch.tensor(ref, dtype=F64)
        assert float((got - expected).abs().max()) <= 1e-12 * float(expected.abs().max())
    assert float(lam.sum()) == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------------------ golden values
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_sequence(case):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("moco", tasks_for(k), **hp)
    for row in steps:
        check_step(stage, k, d, row)
    assert int(stage.steps) == len(steps)


def test_defaults_are_libmtls():
    stage = build_stage("moco", ["a", "b"])
    assert (stage.beta, stage.beta_sigma, stage.gamma, stage.gamma_sigma, stage.rho) == (0.5, 0.5, 0.1, 0.5, 0.0)
    assert GOLDEN["M2"][2] == {"beta": 0.5, "beta_sigma": 0.5, "gamma": 0.1, "gamma_sigma": 0.5, "rho": 0.0}


def test_the_tracked_matrix_follows_the_normalised_gradients():
    # Y_t = Y_{t-1} − β_t (Y_{t-1} − H_t), h_i = g_i / (‖g_i‖ + 1e-8) · L_i
    k, d, hp, steps = GOLDEN["M3"]
    stage = build_stage("moco", tasks_for(k), **hp)
    y = torch.zeros(k, d, dtype=F64)
    for t, row in enumerate(steps, start=1):
        jac = torch.tensor(row[0], dtype=F64).reshape(k, d)
        c = torch.tensor(row[2], dtype=F64)
        step(stage, jac, torch.tensor(row[1], dtype=F64), c)
        h = jac / (jac.norm(dim=1, keepdim=True) + 1e-8) * c[:, None]
        y = y - hp["beta"] / t ** hp["beta_sigma"] * (y - h)
        torch.testing.assert_close(stage.tracked, y, rtol=1e-14, atol=1e-15)


# -------------------------------------------------------------------------------------- state
@pytest.mark.parametrize("case, cut", [("M2", 1), ("M3", 3)])
def test_state_dict_round_trip_resumes_the_golden_sequence(case, cut):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("moco", tasks_for(k), **hp)
    assert stage.tracked.shape == (0,)  # sized at the first step
    for row in steps[:cut]:
        check_step(stage, k, d, row)
    state = copy.deepcopy(stage.state_dict())
    assert set(state) == {"tracked", "lambd", "steps"}
    assert state["tracked"].shape == (k, d) and int(state["steps"]) == cut
    resumed = build_stage("moco", tasks_for(k), **hp)
    resumed.load_state_dict(state)
    for key, value in state.items():
        assert torch.equal(resumed.state_dict()[key], value)
    for row in steps[cut:]:
        check_step(resumed, k, d, row)


def test_a_change_of_size_is_refused_before_the_state_moves():
    k, d, hp, steps = GOLDEN["M2"]
    stage = build_stage("moco", tasks_for(k), **hp)
    check_step(stage, k, d, steps[0])
    before = copy.deepcopy(stage.state_dict())
    with pytest.raises(ValueError, match="changed size"):
        step(stage, torch.ones(k, d + 1, dtype=F64), torch.ones(k, dtype=F64), torch.ones(k, dtype=F64))
    for key, value in before.items():
        assert torch.equal(stage.state_dict()[key], value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_is_refused_before_the_state_moves(bad):
    k, d, hp, steps = GOLDEN["M3"]
    stage = build_stage("moco", tasks_for(k), **hp)
    check_step(stage, k, d, steps[0])
    before = copy.deepcopy(stage.state_dict())
    x = torch.zeros(d, dtype=F64, requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="'t2'"):
        stage.backward({"t0": x.sum() + 1.0, "t1": x.sum() + 1.0, "t2": x.sum() * bad}, shared=[x])
    for key, value in before.items():
        assert torch.equal(stage.state_dict()[key], value)
    assert x.grad is None
    check_step(stage, k, d, steps[1])


# ---------------------------------------------------------------------------------- modes
def test_parameter_mode_only():
    stage = build_stage("moco", ["a", "b"])
    assert stage.grad_modes == ("params",) and stage.needs_task_grads
    check_grad_mode("params", stage)
    with pytest.raises(InputError, match="params"):
        check_grad_mode(None, stage)  # the job's default (rep) is refused at validate time
    with pytest.raises(InputError, match="params"):
        check_grad_mode("rep", stage)


def test_a_representation_or_task_views_are_refused_before_the_state_moves():
    stage = build_stage("moco", ["a", "b"])
    w = torch.randn(3, 4, dtype=F64, requires_grad=True)
    rep = torch.randn(5, 3, dtype=F64) @ w  # [B, H], not a leaf
    view = rep.unsqueeze(0).expand(2, *rep.shape)
    losses = {"a": view[0].pow(2).mean(), "b": view[1].mean().abs() + 0.1}
    for shared in (rep, TaskViews((ExpandedView(rep, view),))):
        with pytest.raises(ValueError, match="grad_mode: params"):
            stage.backward(losses, shared=shared)
    assert stage.tracked.shape == (0,) and int(stage.steps) == 0 and w.grad is None


@pytest.mark.parametrize("bad, key", [({"beta": 0.0}, "beta"), ({"beta": 1.5}, "beta"),
                                      ({"beta_sigma": -1.0}, "beta_sigma"), ({"gamma": -0.1}, "gamma"),
                                      ({"gamma_sigma": float("nan")}, "gamma_sigma"),
                                      ({"rho": -1.0}, "rho")])
def test_bad_hyper_parameters_are_named(bad, key):
    with pytest.raises(ValueError, match=key):
        build_stage("moco", ["a", "b"], **bad)
