"""``log_mgda`` (MGDA on the log-loss gradients, the FAMO code's ``LOG_MGDA``) against its
reference code, the properties it inherits from MGDA, rep-grad = parameter mode, and refusals.

Golden values: the scratch script /tmp/ref/issue17b/golden.py (kept out of the project), run as
    cd /tmp/ref/issue17b && /work/main/.venv/bin/python golden.py
with this project's .venv (torch 2.13.0+cpu, numpy 2.3.5), ``torch.set_default_dtype(torch.float64)``:

* Cranial-XIX/FAMO @ 0a6ad06dbdd55fce73ec01e3a175c2498cd1e5e9, ``methods/weight_methods.py`` (class
  ``LOG_MGDA``) and ``methods/min_norm_solvers.py``, exported unmodified (``git archive``); the
  module's top-level ``import cvxpy`` (used by its NashMTL only) is satisfied by an empty stub.
* ``m = LOG_MGDA(n_tasks=K, device="cpu")`` with its defaults (``params="shared"``,
  ``normalization="none"``); ``loss, _ = m.get_weighted_loss(losses, shared_parameters=[x])``;
  ``loss.backward()``, with the leaf x = 0 in R^D and L_i = J_i·x + l_i, so ``x.grad`` = Σ_i c_i J_i
  is the golden direction. The golden weights are the float64 ``sol`` returned by
  ``MinNormSolver.find_min_norm_element`` (recorded by wrapping that function; ``LOG_MGDA`` reports
  the same values cast to float32).
* Problems: P2, P3, P4 are ``torch.randn`` draws (2x3, 3x4, 4x5) of
  ``torch.Generator().manual_seed(17)`` with the losses l written beside them; E3 (K = 3, D = 5) and
  I4 (K = 4, D = 6) are ``torch.randn(K, K + 2)`` and l = ``torch.rand(K) + 0.2`` from
  ``manual_seed(9)`` and ``manual_seed(10)``. All written out below.

Tolerances (relative to the largest entry): the reference's min-norm solver is exact for two tasks
(closed form; P2) and when the optimum lies on an edge of the simplex that its pairwise start finds
(E3): there the stage matches to round-off (observed <= 5e-16; asserted 1e-13). Otherwise its
projected-gradient loop stops once the weights move less than 1e-5 (l1), and its pairwise start is
clamped to [0.001, 0.999], so it cannot reach a vertex: P4 and I4 (interior optima) agree to 8e-5,
P3 (optimum at the vertex e_1) to 1.3e-3; there the stage's min-norm point is checked to be at least
as low as the reference's.
"""

from __future__ import annotations

import math

import pytest
import torch

from recsys_hmtl.priority import NonFiniteLossError, build_stage
from recsys_hmtl.priority.min_norm import min_norm_weights
from stage_fixtures import LOG_PROBLEMS, TinyMultiTask

F64 = torch.float64
EPS = 1e-8  # the reference's (L + 1e-8).log()

PROBLEMS = LOG_PROBLEMS

# problem -> (min-norm weights w of the log gradients, direction x.grad), from LOG_MGDA (module doc)
GOLDEN = {
    "P2": (
        [0.6715501648734918, 0.32844983512650816],
        [-0.30035785777636953, 0.07698603852165992, -0.37400004193452036]),
    "P3": (
        [0.999697286735885, 1.000000000000001e-06, 0.0003017132641149837],
        [-1.181236486035163, -1.4815755844395961, 1.7999797402667697, 0.009347410886416793]),
    "P4": (
        [0.0, 0.5363407987494684, 0.04989138009473278, 0.413767821155799],
        [0.07922476200133924, 0.0891162619233054, -0.01427394108531102, -0.2551836805343158,
         0.3137419055566613]),
    "E3": (
        [0.0, 0.40263672460752686, 0.5973632753924731],
        [-0.27062631217081, 0.003606601285392752, -0.34003102990502654, 0.09087272550674944,
         0.4894480483557578]),
    "I4": (
        [0.2086832919705927, 0.29925402313382415, 0.2161237631872686, 0.2759389217083145],
        [-0.1031491295694396, -0.01850399480118392, 0.220705541779186, 0.03648499346465356,
         0.2655036376111159, -0.18092938654535584]),
}
TOL = {"P2": 1e-13, "E3": 1e-13, "P4": 1e-4, "I4": 1e-4, "P3": 2e-3}


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
    scale = float(expected.abs().max())
    assert float((actual - expected).abs().max()) <= tol * scale, (actual, expected)


# ------------------------------------------------------------------------------ golden values
@pytest.mark.parametrize("problem", sorted(GOLDEN))
def test_golden_direction_and_weights(problem):
    jac, values = PROBLEMS[problem]
    w_ref, d_ref = GOLDEN[problem]
    d, c, diag = linear_step("log_mgda", jac, values)
    assert_relative(d, d_ref, TOL[problem])
    w = log_weights(diag, jac.shape[0])
    assert float((w - torch.tensor(w_ref, dtype=F64)).abs().max()) <= TOL[problem]
    s = torch.tensor(values, dtype=F64) + EPS
    torch.testing.assert_close(c, (w / s) / (w / s).sum(), rtol=0, atol=1e-15)  # c_i = w_i/(s_i C)
    assert float(c.sum()) == pytest.approx(1.0, abs=1e-15)
    torch.testing.assert_close(d, c @ jac, rtol=0, atol=1e-14)


@pytest.mark.parametrize("problem", sorted(GOLDEN))
def test_min_norm_point_is_not_worse_than_the_references(problem):
    jac, values = PROBLEMS[problem]
    s = torch.tensor(values, dtype=F64) + EPS
    g = jac / s[:, None]  # the log-loss gradients
    _, _, diag = linear_step("log_mgda", jac, values)
    w = log_weights(diag, jac.shape[0])
    w_ref = torch.tensor(GOLDEN[problem][0], dtype=F64)
    assert float((w @ g).norm()) <= float((w_ref @ g).norm()) + 1e-14


# ------------------------------------------------------------------------------- properties
def random_problems(count, seed):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        k = int(torch.randint(2, 6, (1,), generator=gen))
        d = int(torch.randint(1, 7, (1,), generator=gen))
        jac = torch.randn(k, d, generator=gen, dtype=F64)
        values = (torch.rand(k, generator=gen, dtype=F64) * 3 + 0.01).tolist()
        out.append((jac, values))
    return out


def test_is_mgda_on_the_log_gradients_rescaled_to_sum_one():
    # the plain mgda stage on the Jacobian of log(L + eps), J_i / s_i, gives w; then c = (w/s)/Σ(w/s)
    for jac, values in random_problems(30, seed=5):
        s = torch.tensor(values, dtype=F64) + EPS
        _, w, _ = linear_step("mgda", jac / s[:, None], values)
        d, c, diag = linear_step("log_mgda", jac, values)
        torch.testing.assert_close(log_weights(diag, jac.shape[0]), w, rtol=0, atol=1e-14)
        torch.testing.assert_close(c, (w / s) / (w / s).sum(), rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(w, min_norm_weights((jac / s[:, None]) @ (jac / s[:, None]).T))


def test_the_log_step_ignores_the_scale_of_each_loss():
    # L_i -> a_i L_i scales g_i and L_i alike: the log gradients g_i / L_i, hence their min-norm
    # point Σ w_i g_i / L_i, do not change (eps = 0; w itself is not unique when D < K)
    gen = torch.Generator().manual_seed(8)
    for jac, values in random_problems(20, seed=6):
        k = jac.shape[0]
        a = torch.rand(k, generator=gen, dtype=F64) * 100 + 0.01
        scaled = (a * torch.tensor(values, dtype=F64)).tolist()
        g = jac / torch.tensor(values, dtype=F64)[:, None]
        _, _, diag = linear_step("log_mgda", jac, values, eps=0.0)
        _, c, diag_scaled = linear_step("log_mgda", a[:, None] * jac, scaled, eps=0.0)
        point, point_scaled = log_weights(diag, k) @ g, log_weights(diag_scaled, k) @ g
        torch.testing.assert_close(point_scaled, point, rtol=0, atol=1e-12 * float(g.abs().max()))
        assert float(c.sum()) == pytest.approx(1.0, abs=1e-14)


def test_normalize_loss_divides_the_log_gradients_by_the_losses():
    jac, values = PROBLEMS["I4"]
    s = torch.tensor(values, dtype=F64) + EPS
    _, _, diag = linear_step("log_mgda", jac, values, normalize="loss")
    g = jac / s[:, None] / torch.tensor(values, dtype=F64)[:, None]
    torch.testing.assert_close(log_weights(diag, 4), min_norm_weights(g @ g.T), rtol=0, atol=1e-14)


def test_one_task_is_plain_gradient_descent():
    jac = torch.tensor([[3.0, -1.0, 2.0]], dtype=F64)
    d, c, _ = linear_step("log_mgda", jac, [0.25])
    assert c.tolist() == [1.0]
    torch.testing.assert_close(d, jac[0], rtol=0, atol=1e-15)


# ------------------------------------------------------------------------- rep-grad, heads


def test_rep_grad_equals_parameter_mode_and_heads_follow_the_coefficients():
    grads = {}
    for mode in ("rep", "param"):
        model = TinyMultiTask()
        stage = build_stage("log_mgda", tasks=["t0", "t1", "t2"])
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
    torch.testing.assert_close(grads["rep"][1], heads, rtol=1e-9, atol=1e-12)  # heads: c_i too
    assert not all(math.isclose(c, coeffs[0]) for c in coeffs)


# --------------------------------------------------------------------------------- refusals
def test_stateless_and_bad_inputs_are_refused():
    jac, _ = PROBLEMS["P2"]
    stage = build_stage("log_mgda", tasks=["a", "b"])
    assert stage.state_dict() == {}
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="'b'"):
        stage.backward({"a": jac[0] @ x + 1.0, "b": (jac[1] @ x + 1.0) * float("nan")}, shared=[x])
    with pytest.raises(ValueError, match="task 'a'.*L \\+ eps > 0"):
        stage.backward({"a": jac[0] @ x - 1.0, "b": jac[1] @ x + 1.0}, shared=[x])
    assert x.grad is None
    stage = build_stage("log_mgda", tasks=["a", "b"], eps=0.0)
    with pytest.raises(ValueError, match="task 'b'"):
        stage.backward({"a": jac[0] @ x + 1.0, "b": jac[1] @ x}, shared=[x])  # log 0


@pytest.mark.parametrize("bad", [{"eps": -1e-8}, {"eps": float("nan")}, {"normalize": "norm"}])
def test_bad_hyper_parameters_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_stage("log_mgda", tasks=["a", "b"], **bad)
