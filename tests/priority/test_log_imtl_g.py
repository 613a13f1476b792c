"""``log_imtl_g`` (IMTL-G on the log-loss gradients, the FAMO code's ``LOG_IMTLG``) against its
reference code, IMTL-G's equal-projection property, rep-grad = parameter mode, and refusals.

Golden values: the scratch script /tmp/ref/issue17b/golden.py (kept out of the project), run as
    cd /tmp/ref/issue17b && /work/main/.venv/bin/python golden.py
with this project's .venv (torch 2.13.0+cpu, numpy 2.3.5), ``torch.set_default_dtype(torch.float64)``:

* Cranial-XIX/FAMO @ 0a6ad06dbdd55fce73ec01e3a175c2498cd1e5e9, ``methods/weight_methods.py`` (class
  ``LOG_IMTLG``), exported unmodified (``git archive``); its top-level ``import cvxpy`` (used by its
  NashMTL only) is satisfied by an empty stub.
* ``m = LOG_IMTLG(n_tasks=K, device="cpu")``;
  ``loss, extra = m.get_weighted_loss(losses, shared_parameters=[x])``; ``loss.backward()``, with the
  leaf x = 0 in R^D and L_i = J_i·x + l_i: golden weights = ``extra["weights"]`` (α, float64),
  golden direction = ``x.grad`` (= Σ_i α_i J_i / (l_i + 1e-8)).
* Problems: P2, P3, P4 are ``torch.randn`` draws (2x3, 3x4, 4x5) of
  ``torch.Generator().manual_seed(17)`` with the losses l written beside them; E3 (K = 3, D = 5) and
  I4 (K = 4, D = 6) are ``torch.randn(K, K + 2)`` and l = ``torch.rand(K) + 0.2`` from
  ``manual_seed(9)`` and ``manual_seed(10)``. All written out below.

Tolerance: both sides evaluate the same closed form in float64 (the reference through the
gradient vectors, the stage through the Gram matrix): observed <= 4e-15 of the largest entry,
asserted 1e-13.
"""

from __future__ import annotations

import math

import pytest
import torch

from recsys_hmtl.priority import NonFiniteLossError, build_stage
from stage_fixtures import LOG_PROBLEMS, TinyMultiTask

F64 = torch.float64
EPS = 1e-8  # the reference's EPS in (L + EPS).log()
TOL = 1e-13

PROBLEMS = LOG_PROBLEMS

# problem -> (α, direction x.grad), from LOG_IMTLG (module doc)
GOLDEN = {
    "P2": (
        [0.6327395344992789, 0.3672604655007211],
        [-0.6351399212902128, 0.1845160550526537, -1.0937186188610342]),
    "P3": (
        [-0.2470942904929494, 0.1003199573225029, 1.1467743331704465],
        [1.738225007537846, -6.925987352362373, 2.8021615073407506, -1.5976889729688748]),
    "P4": (
        [-0.08641029590969751, 0.532481420894077, 0.048720391162398805, 0.5052084838532218],
        [0.04867131571513848, 0.05655351141823381, 0.11374847231993497, -0.06668923882133318,
         0.16690023335852572]),
    "E3": (
        [-0.005512709576419139, 0.4372981991871816, 0.5682145103892375],
        [-0.21482468679701253, -0.009280744661095991, -0.27395759348556875, 0.11278808225242153,
         0.4588212145783055]),
    "I4": (
        [0.21294383548859253, 0.28901604836205674, 0.21895475123000374, 0.279085364919347],
        [-0.12708263247274237, -0.0031693926364145253, 0.24169054753998892, 0.033300431105548645,
         0.32626102062086954, -0.2302787953371047]),
}


def linear_step(name, jac, values, **hparams):
    """One backward of L_i = J_i·x + l_i at x = 0: x.grad is the stage's direction."""
    tasks = [f"t{i}" for i in range(jac.shape[0])]
    stage = build_stage(name, tasks=tasks, **hparams)
    x = torch.zeros(jac.shape[1], dtype=F64, requires_grad=True)
    stage.backward({t: jac[i] @ x + values[i] for i, t in enumerate(tasks)}, shared=[x])
    diag = stage.diagnostics()
    weights = torch.tensor([diag[f"weight/{t}"] for t in tasks], dtype=F64)
    return x.grad, weights, diag


def log_weights(diag, k):
    return torch.tensor([diag[f"log_weight/t{i}"] for i in range(k)], dtype=F64)


def assert_relative(actual, expected, tol):
    expected = torch.as_tensor(expected, dtype=F64)
    assert float((actual - expected).abs().max()) <= tol * float(expected.abs().max()), (actual, expected)


# ------------------------------------------------------------------------------ golden values
@pytest.mark.parametrize("problem", sorted(GOLDEN))
def test_golden_direction_and_weights(problem):
    jac, values = PROBLEMS[problem]
    alpha_ref, d_ref = GOLDEN[problem]
    d, c, diag = linear_step("log_imtl_g", jac, values)
    assert_relative(d, d_ref, TOL)
    assert_relative(log_weights(diag, jac.shape[0]), alpha_ref, TOL)
    s = torch.tensor(values, dtype=F64) + EPS
    torch.testing.assert_close(c, torch.tensor(alpha_ref, dtype=F64) / s, rtol=1e-13, atol=0)


# ------------------------------------------------------------------------------- properties
def random_problems(count, seed):
    """K in 2..5 tasks, D >= K (independent gradients), positive losses."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        k = int(torch.randint(2, 6, (1,), generator=gen))
        d = k + int(torch.randint(0, 4, (1,), generator=gen))
        jac = torch.randn(k, d, generator=gen, dtype=F64)
        values = (torch.rand(k, generator=gen, dtype=F64) * 3 + 0.01).tolist()
        out.append((jac, values))
    return out


def test_equal_projections_and_the_imtl_g_direction_up_to_a_factor():
    # IMTL-G (Sec. 3.2): d has the same projection on every unit gradient u_i; the unit gradients do
    # not change under g_i -> g_i / s_i, so d is imtl_g's direction times Σ_i c_i (its coefficients
    # sum to 1) when the gradients are independent.
    for jac, values in random_problems(30, seed=3):
        d, c, diag = linear_step("log_imtl_g", jac, values)
        units = jac / jac.norm(dim=1, keepdim=True)
        proj = units @ d
        torch.testing.assert_close(proj, proj[0].expand_as(proj), rtol=1e-9, atol=1e-12)
        assert float(log_weights(diag, jac.shape[0]).sum()) == pytest.approx(1.0, abs=1e-12)
        _, c_plain, _ = linear_step("imtl_g", jac, values)
        torch.testing.assert_close(c / c.sum(), c_plain, rtol=1e-9, atol=1e-12)


def test_is_imtl_g_on_the_log_gradients():
    for jac, values in random_problems(20, seed=4):
        s = torch.tensor(values, dtype=F64) + EPS
        _, alpha, _ = linear_step("imtl_g", jac / s[:, None], values)
        _, c, diag = linear_step("log_imtl_g", jac, values)
        torch.testing.assert_close(log_weights(diag, jac.shape[0]), alpha, rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(c, alpha / s, rtol=1e-13, atol=1e-15)


def test_one_task_steps_along_the_log_gradient():
    jac = torch.tensor([[3.0, -1.0, 2.0]], dtype=F64)
    d, c, _ = linear_step("log_imtl_g", jac, [0.25])
    torch.testing.assert_close(d, jac[0] / (0.25 + EPS), rtol=1e-15, atol=0)


# ------------------------------------------------------------------------- rep-grad, heads


def test_rep_grad_equals_parameter_mode_and_heads_follow_the_coefficients():
    # the reference back-propagates Σ α_i log(L_i + eps): every parameter gets Σ (α_i / s_i) ∇L_i
    grads = {}
    for mode in ("rep", "param"):
        model = TinyMultiTask()
        stage = build_stage("log_imtl_g", tasks=["t0", "t1", "t2"])
        rep, losses = model()
        stage.backward(losses, shared=rep if mode == "rep" else [model.shared])
        grads[mode] = model.shared.grad, model.heads.grad, stage.diagnostics()
    torch.testing.assert_close(grads["rep"][0], grads["param"][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads["rep"][1], grads["param"][1], rtol=1e-9, atol=1e-12)
    fresh = TinyMultiTask()
    _, losses = fresh()
    coeffs = [grads["rep"][2][f"weight/t{i}"] for i in range(3)]
    combined = sum(c * losses[f"t{i}"] for i, c in enumerate(coeffs))
    shared, heads = torch.autograd.grad(combined, [fresh.shared, fresh.heads])
    torch.testing.assert_close(grads["rep"][0], shared, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads["rep"][1], heads, rtol=1e-9, atol=1e-12)
    assert not all(math.isclose(c, coeffs[0]) for c in coeffs)


# --------------------------------------------------------------------------------- refusals
def test_stateless_and_bad_inputs_are_refused():
    jac, _ = PROBLEMS["P2"]
    stage = build_stage("log_imtl_g", tasks=["a", "b"])
    assert stage.state_dict() == {}
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="'a'"):
        stage.backward({"a": (jac[0] @ x + 1.0) * float("inf"), "b": jac[1] @ x + 1.0}, shared=[x])
    with pytest.raises(ValueError, match="task 'b'.*L \\+ eps > 0"):
        stage.backward({"a": jac[0] @ x + 1.0, "b": jac[1] @ x - 0.5}, shared=[x])
    assert x.grad is None


@pytest.mark.parametrize("bad", [{"eps": -1.0}, {"eps": float("inf")}])
def test_bad_hyper_parameters_are_named(bad):
    with pytest.raises(ValueError, match="eps"):
        build_stage("log_imtl_g", tasks=["a", "b"], **bad)
