"""UPGrad, DualProj (TorchJD; Quinton & Rey 2024) and Aligned-MTL (Senushkin et al. 2023; LibMTL):
golden weights and directions from the reference code, the properties the papers state, the QP
solver's optimality conditions, rep-grad = parameter mode, and the stage contract.

Golden values: /tmp/jd_golden/golden.py, run as
    cd /work/main &&
    PYTHONPATH=/tmp/jd_pkgs:/tmp/libmtl_src .venv/bin/python /tmp/jd_golden/golden.py
with torch 2.13.0+cpu (this project's .venv) and, outside the project,
  * /tmp/jd_pkgs: ``pip install --target /tmp/jd_pkgs --no-deps torchjd==0.18.0 qpsolvers quadprog
    numpy`` (torchjd 0.18.0, qpsolvers 4.13.0, quadprog 0.1.14, numpy 2.4.6). UPGrad / DualProj:
    ``torchjd.aggregation.UPGradWeighting()(J @ J.T)`` / ``UPGrad()(J)`` and ``DualProjWeighting``
    / ``DualProj`` with their defaults (``QuadprogProjector(norm_eps=1e-4, reg_eps=1e-4)``);
    Aligned-MTL's other scale modes: ``AlignedMTLWeighting(scale_mode=...)(J @ J.T)``.
  * /tmp/libmtl_src: ``LibMTL/weighting/{abstract_weighting,Aligned_MTL,UPGrad}.py`` exported
    verbatim from median-research-group/LibMTL at commit 4336804847eaa5e0b924b743d76beec7ac3fdc97
    (Aligned_MTL.py last changed in 0aaada50cd609b39c65553d4c2760c18b02d8e74). Aligned-MTL goldens:
    the body of ``Aligned_MTL.backward`` (lines computing M, eigh, tol, rank, B, alpha = B.sum(0))
    copied into the script with ``torch.symeig(M, eigenvectors=True)`` (removed from torch) replaced
    by ``torch.linalg.eigh(M, UPLO="U")`` and float64 gradients; the default dtype stays float32, so
    its ``torch.finfo().eps`` is float32's as in LibMTL. The script also runs LibMTL's
    ``Aligned_MTL`` and ``UPGrad`` classes verbatim (float32: they allocate the gradient matrix in
    the default dtype), which agree with the float64 goldens to 7e-7 (Aligned-MTL) and 5e-7 (UPGrad,
    against TorchJD).
"""

from __future__ import annotations

import math

import pytest
import torch

from recsys_hmtl.priority import NonFiniteLossError, build_stage
from recsys_hmtl.priority.aligned_mtl import balance_transformation
from recsys_hmtl.priority.upgrad import dual_cone_weights, nonnegative_qp, regularized_gram
from stage_fixtures import TinyMultiTask

F64 = torch.float64
STAGES = ["upgrad", "dualproj", "aligned_mtl"]
TOL = 1e-13  # achieved: ≤ 4e-15 on every golden below (float64 round-off)

# The 2-task Jacobian of tests/priority/test_gradient_stages.py (Gram [[18, -22], [-22, 38]]).
GOLDEN_J = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], dtype=F64)
# torch.randn(4, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64) under torch
# 2.13.0, written out: 4 of the 6 task pairs conflict, the mean conflicts with tasks 0 and 2.
RANDOM_J = torch.tensor([
    [-0.31128955419003207, -0.7130302768401124, -0.729068152895376, -0.29920233004408114,
     -0.25289846946006805, -0.36018000135378847, 0.9393532606557873],
    [1.16142070644801, -0.1705634409839206, 0.014932963521677391, -0.04759475759569801,
     0.548012110089419, 1.7540735804302916, -0.41492167096134713],
    [-0.9922212482992676, -0.29860084468041753, 0.644344364616798, 0.09578445220533666,
     -1.5084106407056563, -0.5842388085089033, -0.5228502891747725],
    [0.9862589864591587, 0.2923433203613846, 1.0146405705694284, 1.5557913692854093,
     2.259669415942446, 2.0955714036030395, 0.21419370885074568],
], dtype=F64)
# 3 tasks in R²: a rank-2 Gram matrix (Aligned-MTL drops the null eigenvalue).
RANKDEF_J = torch.tensor([[2.0, 1.0], [-1.0, 1.5], [0.5, 1.0]], dtype=F64)
# Σ‖g_i‖² = 5.6e-5 < norm_eps = 1e-4: TorchJD's projector zeroes the normalised Gram matrix.
TINY_J = GOLDEN_J * 1e-3

# (stage, problem) -> (weights, direction), printed by /tmp/jd_golden/golden.py (see module doc).
GOLDEN = {
    # TorchJD 0.18.0 UPGradWeighting()(G), UPGrad()(J)
    ("upgrad", "GOLDEN_J"): (
        [1.1109210467854445, 0.7894310312164523],
        [0.29290200015693646, 1.9003520780018968, 1.9003520780018968]),
    ("upgrad", "RANDOM_J"): (
        [0.8250011315955134, 0.3722164237439739, 0.775001305939958, 0.4011174152318529],
        [-0.19788148045998427, -0.7658893468378981, 0.3104339702382545, 0.4337302769120546,
         -0.26728987673676496, 0.7435304316684339, 0.30123401244145515]),
    ("upgrad", "RANKDEF_J"): (
        [0.3666603345364393, 0.38460039885776964, 0.3333333333333333],
        [0.5153869368817756, 1.276894266156427]),
    ("upgrad", "TINY_J"): ([0.5, 0.5], [0.001, 0.001, 0.001]),
    # TorchJD 0.18.0 DualProjWeighting()(G), DualProj()(J)
    ("dualproj", "GOLDEN_J"): (
        [0.6109210467854445, 0.5],
        [0.5563158128582222, 1.1109210467854445, 1.1109210467854445]),
    ("dualproj", "RANDOM_J"): (
        [0.4370707984208363, 0.25000000000000006, 0.4282894845808545, 0.25],
        [-0.02409357778737664, -0.4090873444159557, 0.21470489964789674, 0.28730002530656984,
         -0.054650570302455126, 0.5547637470730039, 0.1364506082427765]),
    ("dualproj", "RANKDEF_J"): (
        [0.3333333333333352, 0.3333333333333333, 0.33333333333333337],
        [0.5000000000000038, 1.1666666666666687]),
    ("dualproj", "TINY_J"): ([0.5, 0.5], [0.001, 0.001, 0.001]),
    # LibMTL Aligned_MTL core (alpha, alpha @ J)
    ("aligned_mtl", "GOLDEN_J"): (
        [1.1181438313131213, 0.8165221361983039],
        [0.42655749193733783, 1.9346659675114253, 1.9346659675114253]),
    ("aligned_mtl", "RANDOM_J"): (
        [1.195940747704042, 0.7008171966950189, 1.0877024716056767, 0.5451210169378935],
        [-0.09995126100607243, -1.1377021436808263, 0.39249982334684197, 0.5610960758698946,
         -0.3273039660413355, 1.305393007881827, 0.38068253919104256]),
    ("aligned_mtl", "RANKDEF_J"): (
        [0.8093689493995535, 1.059813643506745, 0.751529031677334],
        [0.9346887711310291, 3.1506184463370053]),
    ("aligned_mtl", "TINY_J"): (
        [1.1181438313131213, 0.8165221361983039],
        [0.00042655749193733824, 0.0019346659675114255, 0.0019346659675114255]),
}
PROBLEMS = {"GOLDEN_J": GOLDEN_J, "RANDOM_J": RANDOM_J, "RANKDEF_J": RANKDEF_J, "TINY_J": TINY_J}

# TorchJD 0.18.0 AlignedMTLWeighting(scale_mode=...)(G): its preference vector is 1/K, LibMTL's 1,
# so these are this stage's weights divided by K.
TORCHJD_ALIGNED = {
    ("min", "GOLDEN_J"): [0.5590719156565607, 0.4082610680991519],
    ("rmse", "GOLDEN_J"): [1.5108656434747318, 1.1033063977733861],
    ("min", "RANDOM_J"): [0.2989851869260105, 0.17520429917375474, 0.2719256179014191,
                          0.13628025423447337],
    ("median", "RANDOM_J"): [0.4427045590556805, 0.2594233607619204, 0.4026377092681258,
                             0.20178889288518104],
    ("rmse", "RANDOM_J"): [0.7844433507076088, 0.4596811263972422, 0.7134475290998742,
                           0.3575566414045473],
    ("median", "RANKDEF_J"): [0.26978964979985126, 0.35327121450224835, 0.250509677225778],
    ("rmse", "RANKDEF_J"): [0.30853270117349063, 0.40400260772820196, 0.286484034661478],
}


def linear_step(name, jac, **hparams):
    """One backward of L_i = g_i·x + 5 at x = 0: x.grad is the stage's combined direction (as in
    tests/priority/test_gradient_stages.py)."""
    tasks = [f"t{i}" for i in range(jac.shape[0])]
    stage = build_stage(name, tasks=tasks, **hparams)
    x = torch.zeros(jac.shape[1], dtype=F64, requires_grad=True)
    stage.backward({t: jac[i] @ x + 5.0 for i, t in enumerate(tasks)}, shared=[x])
    diag = stage.diagnostics()
    return x.grad, torch.tensor([diag[f"weight/{t}"] for t in tasks], dtype=F64), diag


def conflicting_jacobians(count, seed=7):
    """Random K x D Jacobians, K in 2..6, D in 1..8 (D < K: rank-deficient Gram matrices)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        k = int(torch.randint(2, 7, (1,), generator=gen))
        d = int(torch.randint(1, 9, (1,), generator=gen))
        scale = float(torch.rand(1, generator=gen)) * 10
        out.append(torch.randn(k, d, generator=gen, dtype=F64) * scale)
    return out


# ------------------------------------------------------------------------------ golden values
GOLDEN_IDS = [f"{n}-{p}" for n, p in sorted(GOLDEN)]


@pytest.mark.parametrize("name, problem", sorted(GOLDEN), ids=GOLDEN_IDS)
def test_golden_weights_and_direction(name, problem):
    weights, direction = GOLDEN[(name, problem)]
    d, w, diag = linear_step(name, PROBLEMS[problem])
    torch.testing.assert_close(w, torch.tensor(weights, dtype=F64), rtol=0, atol=TOL)
    torch.testing.assert_close(d, torch.tensor(direction, dtype=F64), rtol=0, atol=TOL)
    if name in ("upgrad", "dualproj"):
        assert diag["guard"] == float(problem == "TINY_J")


@pytest.mark.parametrize("scale, problem", sorted(TORCHJD_ALIGNED))
def test_aligned_mtl_scale_modes_match_torchjd(scale, problem):
    jac = PROBLEMS[problem]
    _, w, _ = linear_step("aligned_mtl", jac, scale=scale)
    expected = torch.tensor(TORCHJD_ALIGNED[(scale, problem)], dtype=F64) * jac.shape[0]
    torch.testing.assert_close(w, expected, rtol=0, atol=TOL)


def test_upgrad_without_the_threshold_is_scale_invariant():
    # norm_eps = 0: TINY_J = GOLDEN_J / 1000 gets GOLDEN_J's weights (the Gram matrix is
    # normalised).
    _, w, diag = linear_step("upgrad", TINY_J, norm_eps=0.0)
    torch.testing.assert_close(w, torch.tensor(GOLDEN[("upgrad", "GOLDEN_J")][0], dtype=F64),
                               rtol=0, atol=TOL)
    assert diag["guard"] == 0.0


# ------------------------------------------------------------------- the papers' properties
def test_upgrad_is_the_mean_of_the_projections_and_non_conflicting():
    # reg_eps = 0: the exact projections π_J(g_i) (JD paper Eq. 3). Each v(e_i) satisfies the KKT
    # conditions of min vᵀGv s.t. v ≥ e_i, so Jᵀv is the projection, and d = (1/K)Σ_i Jᵀv(e_i).
    checked = 0
    for jac in conflicting_jacobians(40):
        k = jac.shape[0]
        gram = jac @ jac.T
        scale = float(gram.diagonal().sum())
        d, w, _ = linear_step("upgrad", jac, reg_eps=0.0)
        assert float((jac @ d).min()) >= -1e-12 * scale  # non-conflicting (Def. 1)
        total = torch.zeros(k, dtype=F64)
        for i in range(k):
            unit = torch.eye(k, dtype=F64)[i]
            v = dual_cone_weights(gram, unit)
            y = jac.T @ v  # π_J(g_i): y·g_j ≥ 0, v ≥ e_i, and (v − e_i)_j (Jy)_j = 0
            assert float((v - unit).min()) >= 0
            assert float((jac @ y).min()) >= -1e-12 * scale
            assert float(((v - unit) * (jac @ y)).abs().max()) <= 1e-10 * scale
            # y is the closest point of the cone to g_i: g_i − y is orthogonal to y
            assert float((jac[i] - y) @ y) == pytest.approx(0.0, abs=1e-10 * scale)
            total += v / k
        torch.testing.assert_close(w, total, rtol=1e-10, atol=1e-12)
        checked += int(bool((gram < 0).any()))
    assert checked >= 20


def test_upgrad_with_the_ridge_stays_within_its_bound():
    # KKT of the ridged QP: (G/t + εI)v = μ ≥ 0, so ⟨g_j, Jᵀv⟩ ≥ −tεv_j; summed over the K problems
    # ⟨g_j, d⟩ ≥ −t ε c_j (t = tr G, ε = reg_eps). TorchJD's default DualProj on GOLDEN_J does
    # conflict slightly: ⟨g_1, d⟩ = −0.0034 (golden direction above).
    for name in ("upgrad", "dualproj"):
        for jac in conflicting_jacobians(20, seed=11):
            d, c, _ = linear_step(name, jac)
            trace = float((jac * jac).sum())
            assert bool(((jac @ d) >= -1e-4 * trace * c - 1e-12 * trace).all())
    d, _, _ = linear_step("dualproj", GOLDEN_J)
    assert float(GOLDEN_J[0] @ d) == pytest.approx(-0.003421157861999813, abs=1e-12)


def test_upgrad_is_linear_under_scaling():
    # Def. 2 (reg_eps = 0): scaling row i by c_i > 0 keeps the cone, and π(c_i g_i) = c_i π(g_i),
    # so d(diag(c)J) = (1/K) Σ_i c_i π_J(g_i) is linear in c.
    gen = torch.Generator().manual_seed(3)
    c1 = torch.rand(4, generator=gen, dtype=F64) + 0.1
    c2 = torch.rand(4, generator=gen, dtype=F64) + 0.1
    d1, _, _ = linear_step("upgrad", c1[:, None] * RANDOM_J, reg_eps=0.0)
    d2, _, _ = linear_step("upgrad", c2[:, None] * RANDOM_J, reg_eps=0.0)
    d12, _, _ = linear_step("upgrad", (c1 + c2)[:, None] * RANDOM_J, reg_eps=0.0)
    torch.testing.assert_close(d12, d1 + d2, rtol=1e-10, atol=1e-12)


def test_without_conflict_upgrad_and_dualproj_are_the_mean():
    gen = torch.Generator().manual_seed(4)
    jac = torch.rand(3, 5, generator=gen, dtype=F64)  # positive entries: every g_i·g_j > 0
    mean = torch.full((3,), 1 / 3, dtype=F64)
    _, w_up, _ = linear_step("upgrad", jac, reg_eps=0.0)
    torch.testing.assert_close(w_up, mean, rtol=0, atol=1e-15)
    _, w_dp, _ = linear_step("dualproj", jac)  # v = u is optimal even with the ridge
    torch.testing.assert_close(w_dp, mean, rtol=0, atol=1e-15)


def test_dualproj_is_the_projection_of_the_mean():
    # Eq. 11 of GEM / Eq. 3 of the JD paper with x = mean gradient: the KKT conditions in v.
    for jac in conflicting_jacobians(40, seed=13):
        k = jac.shape[0]
        scale = float((jac * jac).sum())
        d, v, _ = linear_step("dualproj", jac, reg_eps=0.0)
        u = torch.full((k,), 1.0 / k, dtype=F64)
        assert float((v - u).min()) >= 0
        assert float((jac @ d).min()) >= -1e-12 * scale  # non-conflicting
        assert float(((v - u) * (jac @ d)).abs().max()) <= 1e-10 * scale
        assert float((jac.mean(0) - d) @ d) == pytest.approx(0.0, abs=1e-10 * scale)


@pytest.mark.parametrize("scale", ["min", "median", "rmse"])
def test_aligned_gradients_have_condition_number_one(scale):
    # Algorithm 1: J' = BᵀJ has Gram BMB = s·V_R V_Rᵀ, so its R non-zero singular values are all √s.
    for jac in [GOLDEN_J, RANDOM_J, RANKDEF_J, *conflicting_jacobians(30, seed=17)]:
        gram = jac @ jac.T
        b, rank, cond = balance_transformation(gram, scale)
        assert rank == int(torch.linalg.matrix_rank(jac))
        sv = torch.linalg.svdvals(b.T @ jac)[:rank]
        assert float(sv.max() / sv.min()) == pytest.approx(1.0, abs=1e-10)
        lam = torch.linalg.eigvalsh(gram).flip(0)[:rank]
        s = {"min": lam[-1], "median": torch.median(lam), "rmse": lam.mean()}[scale]
        torch.testing.assert_close(sv, s.sqrt().expand(rank), rtol=1e-10, atol=0)
        assert cond == pytest.approx(float((lam[0] / lam[-1]).sqrt()), rel=1e-10)
        _, w, diag = linear_step("aligned_mtl", jac, scale=scale)
        torch.testing.assert_close(w, b.sum(0), rtol=0, atol=1e-14)
        assert diag["rank"] == float(rank) and diag["condition_number"] == pytest.approx(cond)


def test_aligned_mtl_zero_gradients_fall_back_to_the_identity():
    b, rank, cond = balance_transformation(torch.zeros(3, 3, dtype=F64))
    assert rank == 0 and cond == 1.0 and torch.equal(b, torch.eye(3, dtype=F64))
    d, w, _ = linear_step("aligned_mtl", torch.zeros(3, 4, dtype=F64))
    assert torch.equal(w, torch.ones(3, dtype=F64)) and torch.equal(d, torch.zeros(4, dtype=F64))


@pytest.mark.parametrize("name", STAGES)
def test_one_task_is_plain_gradient_descent(name):
    jac = torch.tensor([[3.0, -1.0, 2.0]], dtype=F64)
    d, w, _ = linear_step(name, jac)
    assert w.tolist() == pytest.approx([1.0], abs=1e-15)
    torch.testing.assert_close(d, jac[0], rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------- the solver
def test_nonnegative_qp_meets_its_kkt_conditions_on_singular_problems():
    # Q = AAᵀ with fewer columns than rows (singular), p = Qu in its range: x ≥ 0, Qx + p ≥ 0 and
    # x_j (Qx + p)_j = 0; and no random feasible point near x is lower.
    gen = torch.Generator().manual_seed(21)
    for _ in range(60):
        k = int(torch.randint(2, 8, (1,), generator=gen))
        cols = int(torch.randint(1, k + 2, (1,), generator=gen))
        a = torch.randn(k, cols, generator=gen, dtype=F64)
        q = a @ a.T
        p = q @ torch.randn(k, generator=gen, dtype=F64)
        x = nonnegative_qp(q, p)
        grad = q @ x + p
        scale = float(q.diagonal().max() + p.abs().max())
        assert float(x.min()) >= 0
        assert float(grad.min()) >= -1e-12 * scale
        assert float((x * grad).abs().max()) <= 1e-11 * scale
        value = 0.5 * x @ q @ x + p @ x
        trial = (x + torch.rand(200, k, generator=gen, dtype=F64) - 0.5).clamp_min(0)
        values = 0.5 * ((trial @ q) * trial).sum(1) + trial @ p
        assert float(values.min()) >= float(value) - 1e-12 * scale


def test_regularized_gram_follows_torchjds_projector():
    gram = GOLDEN_J @ GOLDEN_J.T
    q, small = regularized_gram(gram, 1e-4, 1e-4)
    torch.testing.assert_close(q, gram / 56.0 + 1e-4 * torch.eye(2, dtype=F64), rtol=0, atol=0)
    assert not small
    q, small = regularized_gram(gram * 1e-6, 1e-4, 1e-4)
    assert small and torch.equal(q, 1e-4 * torch.eye(2, dtype=F64))
    q, small = regularized_gram(torch.zeros(2, 2, dtype=F64), 0.0, 0.0)  # no 0/0
    assert small and torch.equal(q, torch.zeros(2, 2, dtype=F64))
    d, w, _ = linear_step("upgrad", torch.zeros(2, 3, dtype=F64), norm_eps=0.0, reg_eps=0.0)
    assert w.tolist() == [0.5, 0.5] and torch.equal(d, torch.zeros(3, dtype=F64))


# ------------------------------------------------------------------------- rep-grad, contract


@pytest.mark.parametrize("name", STAGES)
def test_rep_grad_and_parameter_mode_agree_and_heads_get_plain_gradients(name):
    grads = {}
    for mode in ("rep", "param"):
        model = TinyMultiTask()
        stage = build_stage(name, tasks=["t0", "t1", "t2"])
        rep, losses = model()
        stage.backward(losses, shared=rep if mode == "rep" else [model.shared])
        grads[mode] = model.shared.grad, model.heads.grad, stage.diagnostics()
    torch.testing.assert_close(grads["rep"][0], grads["param"][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads["rep"][1], grads["param"][1], rtol=1e-9, atol=1e-12)
    fresh = TinyMultiTask()
    _, losses = fresh()
    coeffs = [grads["rep"][2][f"weight/t{i}"] for i in range(3)]
    combined = sum(c * losses[f"t{i}"] for i, c in enumerate(coeffs))
    expected = torch.autograd.grad(combined, fresh.shared, retain_graph=True)[0]
    torch.testing.assert_close(grads["rep"][0], expected, rtol=1e-9, atol=1e-12)
    plain_heads = torch.autograd.grad(sum(losses.values()), fresh.heads)[0]  # heads: weight 1
    torch.testing.assert_close(grads["rep"][1], plain_heads, rtol=1e-9, atol=1e-12)
    assert not all(math.isclose(c, coeffs[0]) for c in coeffs)  # a real combination


@pytest.mark.parametrize("name", STAGES)
def test_stateless_and_non_finite_inputs_are_refused(name):
    stage = build_stage(name, tasks=["a", "b"])
    assert stage.state_dict() == {}
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="'b'"):
        stage.backward({"a": GOLDEN_J[0] @ x, "b": GOLDEN_J[1] @ x * float("nan")}, shared=[x])
    assert x.grad is None
    with pytest.raises(FloatingPointError, match="non-finite gradient for task 'a'"):
        stage.backward({"a": x[0].sqrt(), "b": GOLDEN_J[1] @ x}, shared=[x])  # ∂√x/∂x = ∞ at 0


@pytest.mark.parametrize("name, bad", [
    ("upgrad", {"norm_eps": -1.0}), ("upgrad", {"reg_eps": float("nan")}),
    ("dualproj", {"reg_eps": -1e-4}), ("aligned_mtl", {"scale": "mean"}),
])
def test_bad_hyper_parameters_are_named(name, bad):
    key = next(iter(bad))
    with pytest.raises(ValueError, match=key):
        build_stage(name, tasks=["a", "b"], **bad)
