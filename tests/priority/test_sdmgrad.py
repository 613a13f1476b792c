"""``sdmgrad`` (SDMGrad, Xiao, Ban & Ji, NeurIPS 2023; deterministic variant from the Gram matrix)
against LibMTL's ``SDMGrad``, the direction-oriented problem it solves, its state, and refusals.

Golden values: the scratch script /tmp/ref/issue17b/golden.py (kept out of the project), run as
    cd /tmp/ref/issue17b && /work/main/.venv/bin/python golden.py
with this project's .venv (torch 2.13.0+cpu, numpy 2.3.5), ``torch.set_default_dtype(torch.float64)``:

* median-research-group/LibMTL @ 4336804847eaa5e0b924b743d76beec7ac3fdc97,
  ``LibMTL/weighting/SDMGrad.py`` (last changed in 8bc760590d09fb3f48ef3b535efb66dcc750f5c9) and
  ``abstract_weighting.py``, unmodified; numpy 2 removed ``np.alltrue``, which
  ``SDMGrad.euclidean_proj_simplex`` calls, so the script sets ``np.alltrue = np.all`` (its alias).
* A harness subclass of ``SDMGrad`` with ``task_num = K``, ``device = "cpu"``, ``rep_grad = False``
  and one shared parameter x = 0 in R^D (``get_share_params``); per step ``x.grad = None``, then
  ``SDMGrad.backward(torch.stack([L, L, L]), SDMGrad_lamda=λ, SDMGrad_niter=n)`` with
  L_i = J_i·x + 5: the three "batches" ζ, ξ, ξ' are the same one (the deterministic variant), and
  ``x.grad`` is the direction. Golden: ``self.w`` and ``x.grad`` after each step, one harness per
  sequence (w carries over between steps).
* Sequences: the Jacobians are ``torch.randn(K, D)`` draws of ``torch.Generator().manual_seed(s)``:
  S2 (K=2, D=3, s=101, λ=0.3, 20 iterations, 3 steps), S3 (K=3, D=4, s=106, λ=0.6, 10, 3 steps),
  S4 (K=4, D=6, s=103, λ=0.3, 20, 2 steps). Written out below.

Tolerance: the same float64 arithmetic in the same order (the stage's Gram matrix is J Jᵀ, LibMTL's
``torch.mm`` of the same rows): the weights agree exactly on every step (asserted 1e-13), the
directions to <= 4.3e-14 of their largest entry (asserted 1e-12).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from recsys_hmtl.priority import NonFiniteLossError, build_stage
from recsys_hmtl.priority.min_norm import min_norm_weights, simplex_qp
from recsys_hmtl.priority.sdmgrad import project_simplex
from stage_fixtures import TinyMultiTask

F64 = torch.float64

# sequence -> (K, D, hyper-parameters, [(J row-major, w after the step, direction x.grad), ...])
GOLDEN = {
    "S2": (2, 3, {'lamda': 0.3, 'niter': 20}, [
        ([-1.3905060906165072, -0.815237990194345, -0.32043769826507285, 0.737738497165635,
          -1.75336296902119, 0.6032932271555106],
         [0.4171944375168204, 0.5828055624831796],
         [-0.19082188119229532, -1.3440558384933656, 0.2002662712625723]),
        ([-0.2519559552833865, -0.43731760299297157, -0.5727743605835637, -3.2022840223010505,
          0.5632690170810638, 0.21530377111808338],
         [1.0, 0.0],
         [-0.5923784245546554, -0.3218653006767367, -0.4818422684641429]),
        ([-2.1961724995772816, -0.21662982614904625, -0.7261616229278813, 1.8464213085626748,
          0.2486646839294594, 0.27786560681367667],
         [1.0, 0.0],
         [-1.7297193678688252, -0.1629419980630648, -0.6103123271884707]),
    ]),
    "S3": (3, 4, {'lamda': 0.6, 'niter': 10}, [
        ([-1.0099225905221136, -0.2640590252188278, -0.4092048829936345, -1.5610386408904735,
          0.41427910670513823, 0.04838161142709007, -0.27165429302482885, -0.31167990866510603,
          0.6289989786599464, -0.5855043150358434, -0.7270894581392855, 0.1519543717087401],
         [0.0, 1.0, 0.0],
         [0.26309387854608274, -0.06990920896151634, -0.34577751241023663, -0.4098954651465462]),
        ([-1.8888352079209707, 2.5968618333695144, 0.15180067854489868, -1.1542428800315918,
          0.5479139578817444, 0.5468022769200525, -2.7751614522366395, 0.18626399999873056,
          -0.02865142811230284, -0.8253935687340849, 0.1420984294965365, -0.4111048004633131],
         [0.0, 0.00023913618466830933, 0.9997608638153317],
         [-0.18901755380999394, -0.22588207421490064, -0.22178228858769247, -0.42923667754172845]),
        ([0.5665416166460443, -1.1723026833806571, -0.2573098941585592, -1.033846373432401,
          1.5527737958857073, 1.1271113482312047, 0.2640207845641689, -0.5973869571326046,
          0.4418834340139217, 0.9411154130548737, -1.6811250875788804, -0.23634580216895315],
         [0.17325823203086888, 0.7750299976021795, 0.05171177036695074],
         [1.147934133844908, 0.5614284843120123, -0.16360863952495105, -0.6424080582513902]),
    ]),
    "S4": (4, 6, {'lamda': 0.3, 'niter': 20}, [
        ([2.559812589911868, -1.6134765330358813, 0.18797339749386063, -0.5238472119992648,
          -0.9375981838013849, 0.7060044330767775, 1.9772299125188173, -0.7126388594704919,
          0.2995247475917097, -2.0921215179275885, 0.8129952500038666, 1.8578305528111567,
          1.3303255292697818, 0.6233743135546006, 0.18200644026470916, 0.5660449202494077,
          -0.10640644707946748, 0.6274712387437885, -0.5958138007371505, 0.5959477647831869,
          -0.704543329396099, -0.7221487477033375, 0.10506248286373768, -0.8203429505634809],
         [0.0, 0.0, 0.0, 1.0],
         [-0.15419017954992448, 0.39456789709272533, -0.5439778732304118, -0.7154262996206894,
          0.07355112731749544, -0.49424669616027905]),
        ([0.7886276929445959, -1.1791803399659364, -0.7247249737521192, 1.3501523336001078,
          0.12292608619827151, -1.3470693132325404, 1.0452433099417617, 0.5587803000227037,
          -0.09668894144290247, 0.09885329452647018, 0.3995587845474305, -0.30324741141486433,
          0.7618931000479767, 0.9935914387368827, 0.8024718958453823, -0.37075529446136535,
          -0.6231120649639219, -1.5110369387811258, 0.674575563996119, 0.2832898926590467,
          0.6187569026030807, 0.32137910575779116, 1.7135551531846065, 1.1345280039793526],
         [0.40612027425888897, 0.0, 0.593879725741111, 0.0],
         [0.7830969502054889, 0.12340066532851698, 0.1747941542777972, 0.3331633779829996,
          -0.15320096114142961, -1.228044835524957]),
    ]),
}


def tasks_for(k):
    return [f"t{i}" for i in range(k)]


def step(stage, jac):
    """One backward of L_i = J_i·x + 5 at x = 0: x.grad is the direction."""
    x = torch.zeros(jac.shape[1], dtype=F64, requires_grad=True)
    stage.backward({t: jac[i] @ x + 5.0 for i, t in enumerate(stage.tasks)}, shared=[x])
    diag = stage.diagnostics()
    k = jac.shape[0]
    w = torch.tensor([diag[f"simplex_weight/t{i}"] for i in range(k)], dtype=F64)
    c = torch.tensor([diag[f"weight/t{i}"] for i in range(k)], dtype=F64)
    return x.grad, w, c


def check_step(stage, k, d, jac_flat, w_ref, d_ref):
    jac = torch.tensor(jac_flat, dtype=F64).reshape(k, d)
    direction, w, c = step(stage, jac)
    torch.testing.assert_close(w, torch.tensor(w_ref, dtype=F64), rtol=0, atol=1e-13)
    expected = torch.tensor(d_ref, dtype=F64)
    assert float((direction - expected).abs().max()) <= 1e-12 * float(expected.abs().max())
    lam = stage.lamda
    torch.testing.assert_close(c, (w + lam / k) / (1 + lam), rtol=0, atol=1e-15)
    torch.testing.assert_close(direction, c @ jac, rtol=0, atol=1e-13)


# ------------------------------------------------------------------------------ golden values
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_sequence(case):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("sdmgrad", tasks_for(k), **hp)
    for jac_flat, w_ref, d_ref in steps:
        check_step(stage, k, d, jac_flat, w_ref, d_ref)


@pytest.mark.parametrize("case", ["S2", "S3"])
def test_state_dict_round_trip_resumes_the_golden_sequence(case):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("sdmgrad", tasks_for(k), **hp)
    check_step(stage, k, d, *steps[0])
    state = copy.deepcopy(stage.state_dict())
    assert set(state) == {"simplex_weights"}
    resumed = build_stage("sdmgrad", tasks_for(k), **hp)
    resumed.load_state_dict(state)
    for jac_flat, w_ref, d_ref in steps[1:]:
        check_step(resumed, k, d, jac_flat, w_ref, d_ref)


def test_first_step_starts_from_the_uniform_weights():
    stage = build_stage("sdmgrad", tasks_for(4))
    assert stage.simplex_weights.tolist() == [0.25] * 4


# ------------------------------------------------------------------------------- properties
def test_projection_onto_the_simplex():
    # KKT of min ‖p − v‖² over the simplex: p ≥ 0, Σ p = 1, v_i − p_i = θ where p_i > 0, v_i ≤ θ else
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        k = int(torch.randint(1, 8, (1,), generator=gen))
        v = torch.randn(k, generator=gen, dtype=F64) * 3
        p = project_simplex(v)
        assert float(p.min()) >= 0 and float(p.sum()) == pytest.approx(1.0, abs=1e-14)
        theta = (v - p)[p > 0]
        torch.testing.assert_close(theta, theta[0].expand_as(theta), rtol=0, atol=1e-14)
        assert bool((v[p == 0] <= theta[0] + 1e-14).all())
    on = torch.tensor([0.25, 0.75, 0.0], dtype=F64)
    assert project_simplex(on) is on


def well_conditioned(count, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(k, k + 3, generator=gen, dtype=F64)
            for k in torch.randint(2, 6, (count,), generator=gen).tolist()]


@pytest.mark.parametrize("lamda", [0.0, 0.3, 2.0])
def test_many_small_steps_reach_the_direction_oriented_optimum(lamda):
    # w* = argmin_{w ∈ simplex} ½‖G w + λ g_0‖² (Sec. 3): the simplex QP ½wᵀMw + λ(M·1/K)ᵀw; λ = 0 is
    # MGDA's min-norm point. Projected gradient with a small step converges to it.
    for jac in well_conditioned(4, seed=1):
        k = jac.shape[0]
        stage = build_stage("sdmgrad", tasks_for(k), lamda=lamda, niter=1500, lr=0.1, momentum=0.0)
        _, w, _ = step(stage, jac)
        m = jac @ jac.T
        expected = simplex_qp(m, lamda * m.mean(dim=1))
        torch.testing.assert_close(w, expected, rtol=0, atol=1e-7)
        if lamda == 0.0:
            torch.testing.assert_close(w, min_norm_weights(m), rtol=0, atol=1e-7)


def test_large_lamda_tends_to_the_mean_gradient():
    jac = torch.randn(3, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    d, _, c = step(build_stage("sdmgrad", tasks_for(3), lamda=1e6), jac)
    torch.testing.assert_close(d, jac.mean(0), rtol=0, atol=1e-5)
    assert float(c.sum()) == pytest.approx(1.0, abs=1e-15)


def test_weights_do_not_depend_on_the_scale_of_the_gradients():
    # the Gram matrix is divided by σ² = (mean_i ‖g_i‖)²: scaling every gradient keeps w
    jac = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=F64)
    _, w, _ = step(build_stage("sdmgrad", tasks_for(3)), jac)
    _, w_scaled, _ = step(build_stage("sdmgrad", tasks_for(3)), 1e3 * jac)
    torch.testing.assert_close(w_scaled, w, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------- rep-grad, heads


def test_rep_grad_equals_parameter_mode_and_heads_get_plain_gradients():
    grads = {}
    for mode in ("rep", "param"):
        model = TinyMultiTask()
        stage = build_stage("sdmgrad", tasks=["t0", "t1", "t2"])
        rep, losses = model()
        stage.backward(losses, shared=rep if mode == "rep" else [model.shared])
        grads[mode] = model.shared.grad, model.heads.grad, stage.diagnostics()
    torch.testing.assert_close(grads["rep"][0], grads["param"][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads["rep"][1], grads["param"][1], rtol=1e-9, atol=1e-12)
    fresh = TinyMultiTask()
    _, losses = fresh()
    coeffs = [grads["rep"][2][f"weight/t{i}"] for i in range(3)]
    combined = sum(c * losses[f"t{i}"] for i, c in enumerate(coeffs))
    shared = torch.autograd.grad(combined, fresh.shared, retain_graph=True)[0]
    torch.testing.assert_close(grads["rep"][0], shared, rtol=1e-9, atol=1e-12)
    heads = torch.autograd.grad(sum(losses.values()), fresh.heads)[0]  # heads: weight 1
    torch.testing.assert_close(grads["rep"][1], heads, rtol=1e-9, atol=1e-12)
    assert not all(math.isclose(c, coeffs[0]) for c in coeffs)


# --------------------------------------------------------------------------------- refusals
def test_non_finite_loss_is_refused_before_the_weights_move():
    k, d, hp, steps = GOLDEN["S3"]
    stage = build_stage("sdmgrad", tasks_for(k), **hp)
    check_step(stage, k, d, *steps[0])
    before = stage.simplex_weights.clone()
    x = torch.zeros(d, dtype=F64, requires_grad=True)
    jac = torch.tensor(steps[1][0], dtype=F64).reshape(k, d)
    losses = {t: jac[i] @ x + 5.0 for i, t in enumerate(tasks_for(k))}
    losses["t1"] = losses["t1"] * float("nan")
    with pytest.raises(NonFiniteLossError, match="'t1'"):
        stage.backward(losses, shared=[x])
    assert torch.equal(stage.simplex_weights, before) and x.grad is None


@pytest.mark.parametrize("bad", [{"lamda": -0.1}, {"niter": 0}, {"niter": 2.5}, {"lr": 0.0},
                                 {"momentum": 1.0}, {"momentum": -0.5}])
def test_bad_hyper_parameters_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_stage("sdmgrad", tasks=["a", "b"], **bad)
