"""``excess_mtl`` (ExcessMTL, He et al., ICML 2024) against LibMTL's ``ExcessMTL``, its state
(accumulators sized at the first step, exact ``state_dict`` round trips), its rep-grad coordinates
(representation gradients summed over the batch; task views), and refusals.

Golden values: the scratch script /tmp/ref/issue17b/golden.py (kept out of the project), run as
    cd /tmp/ref/issue17b && /work/main/.venv/bin/python golden.py
with this project's .venv (torch 2.13.0+cpu, numpy 2.3.5), ``torch.set_default_dtype(torch.float64)``:

* median-research-group/LibMTL @ 4336804847eaa5e0b924b743d76beec7ac3fdc97,
  ``LibMTL/weighting/ExcessMTL.py`` (last changed in b65c9140c6b51a0cf8b38e4a00e9ab73c768954c; the
  same code as the authors' yifei-he/ExcessMTL @ b179956021c9ac26f93f986a35d034ffea38f790,
  ``LibMTL/LibMTL/weighting/ExcessMTL.py``) and ``abstract_weighting.py``, unmodified.
* A harness subclass of ``ExcessMTL`` with ``task_num = K``, ``device = "cpu"``,
  ``rep_grad = False``, an ``encoder`` module holding the one shared parameter x = 0 in R^D
  (``get_share_params``); per step ``x.grad = None``, then
  ``lw = ExcessMTL.backward(losses, robust_step_size=η)`` with L_i = J_i·x + 5: golden = the
  returned loss weights and ``x.grad`` (= Σ_i λ_i J_i) after each step, one harness per sequence.
* Sequences: step t's Jacobian is ``torch.randn(K, D) * (1 + t)`` (t = 0, 1, ...) from
  ``torch.Generator().manual_seed(s)``: X2 (K=2, D=3, s=201, η=0.01 the default, 4 steps), X2b
  (K=2, D=3, s=202, η=0.5, 4 steps), X3 (K=3, D=5, s=203, η=0.5, 5 steps). Written out below.

Tolerance: the same float64 arithmetic per coordinate: the weights and directions agree exactly or to
<= 4e-16 of their largest entry (asserted 1e-13 / 1e-12).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from recsys_hmtl.priority import ExpandedView, MixtureView, NonFiniteLossError, TaskViews, build_stage

F64 = torch.float64

# sequence -> (K, D, hyper-parameters, [(J row-major, λ after the step, direction x.grad), ...])
GOLDEN = {
    "X2": (2, 3, {'robust_step_size': 0.01}, [
        ([-0.24443344154491248, 1.4482254777682444, -0.7188957145769908, 0.2354175742258473,
          1.6218539597566295, -0.7367947621113882],
         [1.0, 1.0],
         [-0.009015867319065174, 3.070079437524874, -1.455690476688379]),
        ([1.0983380686101671, -1.2561649749103745, 1.839382557384293, 1.0581582674939485,
          1.7988176914959237, 3.212664623570043],
         [0.9968798621092474, 1.0031201378907526],
         [2.15637096958421, 0.552184683758596, 5.056332010363733]),
        ([-2.146868911689538, -1.5747537306283785, 3.6616648579503073, -2.136295840692241,
          -4.19602996143321, 2.4272452011739296],
         [0.9961260866912296, 1.0038739133087702],
         [-4.283123793221328, -5.780938288938065, 6.084128024387242]),
        ([-1.489980184019413, -0.40105514919384394, 2.4428975939766424, -1.2233078253717022,
          2.8661865809122538, -6.211582437903501],
         [0.9865596605289547, 1.0134403394710454],
         [-2.7097038423633455, 2.5090442697050013, -3.8850039935007112]),
    ]),
    "X2b": (2, 3, {'robust_step_size': 0.5}, [
        ([0.8010728570236753, 1.554393166439199, -0.8154843126968911, -0.9325105777195751,
          -0.03805992882197176, -0.9801804518899214],
         [1.0, 1.0],
         [-0.13143772069589987, 1.5163332376172272, -1.7956647645868125]),
        ([1.08843808300327, -0.03324626386201981, 3.5585075767814227, -1.7130765067887908,
          -1.9474123837406219, -2.9521230035581683],
         [0.57091826769969, 1.42908173230031],
         [-1.8267171570380905, -2.801992362230715, -2.18720807455623]),
        ([-1.4597680381749996, -1.0254193861627603, 0.4269354490212556, -3.955892383039004,
          0.8287444104100925, 1.8689204820019771],
         [0.26224370863755875, 1.7377562913624411],
         [-7.257191860660374, 1.171246030385424, 3.359689461155237]),
        ([0.7366966429745069, 1.3636509701184902, 0.3514085987051116, -5.8873199513319125,
          -0.30335196419590416, 0.8990866901870839],
         [0.09552639595926786, 1.9044736040407322],
         [-11.14187147063535, -0.4474611460232301, 1.7458556661490447]),
    ]),
    "X3": (3, 5, {'robust_step_size': 0.5}, [
        ([-2.4153588370310257, 0.010329029194753415, 0.8685209114443114, -1.3149941253129516,
          1.2831588866399042, 0.3568610701813497, -1.3384502869638923, 0.6228619694742844,
          0.8759987848512572, 1.48603224400243, 1.5488894251639325, 1.047821976751616,
          -0.9000001945277245, -1.2923657139832188, 0.03384006506240766],
         [1.0, 1.0, 1.0],
         [-0.5096083416857435, -0.280299281017523, 0.5913826863908713, -1.7313610544449132,
          2.803031195704742]),
        ([0.7638893819105046, -0.9989883657585736, -0.5867855426011104, -0.2123145525698428,
          0.4737073788976276, 0.027010595755952823, 1.5878524046816713, 1.3722097777940265,
          -1.1189344970253203, -3.1542398347098977, 0.2209393508547057, -1.2685195610215843,
          2.3384255756598367, 1.792476358391815, -0.04964601459547668],
         [0.7368227392867043, 1.2311982423764516, 1.0319790183368445],
         [0.8241112393186142, -0.09020182570062385, 3.6703114657418103, 0.3157296164382912,
          -3.585689817395517]),
        ([1.4637564865117625, -5.613776931774766, 1.946532211047355, 2.0955647836470095,
          1.648962009078044, 6.943092004168296, -2.0739408198406295, 2.7188853283777803,
          -4.066606368874381, -0.20906303026986806, -0.33704096476844164, -1.0528006966590469,
          -2.684204280346267, -2.736753964080685, -7.635288923044047],
         [0.4905604659110122, 1.5368148190375188, 0.9726247150514689],
         [11.060493373631642, -6.965139990503816, 2.5225915889651254, -7.88345423874587,
          -6.938646304700091]),
        ([-5.909976582832121, -3.004214248103495, 5.930700150994435, 6.183032361335699,
          -2.924115265679137, -3.31344552559689, -4.531347769864432, 2.635204993180018,
          3.793491994800286, -4.889695177575832, 0.9335820780908394, 1.1376393509918417,
          3.5552577416924938, -5.379452764122635, 7.680588734253031],
         [0.6301734987169834, 1.4723658864360076, 0.8974606148470088],
         [-7.765061633178094, -7.543991568133771, 10.808059798516528, 4.65394435420533,
          -2.149094434328341]),
        ([2.96569046255242, -3.8290946744277155, -0.7735704299857944, -2.032351866061029,
          2.298265508442921, 1.2757553157394672, -4.171664289419694, 2.9880201472191565,
          -5.256507008643051, 2.2409342043121314, -0.28001201999079095, -8.628241225415769,
          6.767049756267878, -4.111628904548049, -2.778363798502181],
         [0.29620044760334396, 1.1577432039099949, 1.546056348486661],
         [1.9225215279510766, -19.303642659379115, 13.692468347177682, -13.044478768474283,
          -1.0203333713158682]),
    ]),
}


def tasks_for(k):
    return [f"t{i}" for i in range(k)]


def step(stage, jac):
    """One backward of L_i = J_i·x + 5 at x = 0: x.grad is the direction."""
    x = torch.zeros(jac.shape[1], dtype=F64, requires_grad=True)
    stage.backward({t: jac[i] @ x + 5.0 for i, t in enumerate(stage.tasks)}, shared=[x])
    diag = stage.diagnostics()
    return x.grad, torch.tensor([diag[f"weight/{t}"] for t in stage.tasks], dtype=F64)


def check_step(stage, k, d, jac_flat, w_ref, d_ref):
    jac = torch.tensor(jac_flat, dtype=F64).reshape(k, d)
    direction, w = step(stage, jac)
    torch.testing.assert_close(w, torch.tensor(w_ref, dtype=F64), rtol=0, atol=1e-13)
    expected = torch.tensor(d_ref, dtype=F64)
    assert float((direction - expected).abs().max()) <= 1e-12 * float(expected.abs().max())
    assert float(w.sum()) == pytest.approx(k, abs=1e-12)


# ------------------------------------------------------------------------------ golden values
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_sequence(case):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("excess_mtl", tasks_for(k), **hp)
    for jac_flat, w_ref, d_ref in steps:
        check_step(stage, k, d, jac_flat, w_ref, d_ref)
    assert int(stage.steps) == len(steps)


def test_excess_risk_is_the_diagonal_taylor_estimate():
    # e_i = Σ_d g_id² / √(A_id + 1e-7) with A the running sum of g² (He et al., Eqs. 6-7)
    k, d, hp, steps = GOLDEN["X3"]
    stage = build_stage("excess_mtl", tasks_for(k), **hp)
    acc = torch.zeros(k, d, dtype=F64)
    first = None
    for jac_flat, _, _ in steps:
        jac = torch.tensor(jac_flat, dtype=F64).reshape(k, d)
        step(stage, jac)
        acc += jac * jac
        risk = (jac * jac / torch.sqrt(acc + 1e-7)).sum(1)
        first = risk if first is None else first
        diag = stage.diagnostics()
        torch.testing.assert_close(torch.tensor([diag[f"excess_risk/t{i}"] for i in range(k)], dtype=F64), risk,
                                   rtol=1e-14, atol=0)
        torch.testing.assert_close(torch.tensor([diag[f"risk_ratio/t{i}"] for i in range(k)], dtype=F64),
                                   risk / first if stage.steps > 1 else torch.zeros(k, dtype=F64),
                                   rtol=1e-14, atol=0)
    torch.testing.assert_close(stage.grad_sq_sum, acc, rtol=1e-15, atol=0)


# -------------------------------------------------------------------------------------- state
@pytest.mark.parametrize("case, cut", [("X2b", 1), ("X3", 2)])
def test_state_dict_round_trip_resumes_the_golden_sequence(case, cut):
    k, d, hp, steps = GOLDEN[case]
    stage = build_stage("excess_mtl", tasks_for(k), **hp)
    assert stage.grad_sq_sum.shape == (0,)  # sized at the first step
    for jac_flat, w_ref, d_ref in steps[:cut]:
        check_step(stage, k, d, jac_flat, w_ref, d_ref)
    state = copy.deepcopy(stage.state_dict())
    assert set(state) == {"grad_sq_sum", "initial_risk", "loss_weights", "steps"}
    assert state["grad_sq_sum"].shape == (k, d) and int(state["steps"]) == cut
    resumed = build_stage("excess_mtl", tasks_for(k), **hp)
    resumed.load_state_dict(state)
    for key, value in state.items():
        assert torch.equal(resumed.state_dict()[key], value)
    for jac_flat, w_ref, d_ref in steps[cut:]:
        check_step(resumed, k, d, jac_flat, w_ref, d_ref)


def test_a_change_of_size_is_refused_before_the_state_moves():
    k, d, hp, steps = GOLDEN["X3"]
    stage = build_stage("excess_mtl", tasks_for(k), **hp)
    check_step(stage, k, d, *steps[0])
    before = copy.deepcopy(stage.state_dict())
    with pytest.raises(ValueError, match="changed size"):
        step(stage, torch.ones(k, d + 1, dtype=F64))
    for key, value in before.items():
        assert torch.equal(stage.state_dict()[key], value)


def test_a_zero_first_gradient_takes_its_baseline_later():
    # LibMTL would divide by e⁰ = 0 (NaN weights); here task 1's ratio counts as 0 until its first
    # positive estimate, which becomes its baseline
    stage = build_stage("excess_mtl", ["a", "b"], robust_step_size=0.5)
    step(stage, torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=F64))
    step(stage, torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=F64))
    diag = stage.diagnostics()
    assert diag["risk_ratio/b"] == 0.0 and diag["risk_ratio/a"] > 0
    assert stage.initial_risk[1] == 0.0
    step(stage, torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=F64))
    assert stage.diagnostics()["risk_ratio/b"] == 0.0 and float(stage.initial_risk[1]) > 0
    _, w = step(stage, torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=F64))
    assert stage.diagnostics()["risk_ratio/b"] > 0 and bool(torch.isfinite(w).all())


def test_non_finite_loss_is_refused_before_the_state_moves():
    k, d, hp, steps = GOLDEN["X2"]
    stage = build_stage("excess_mtl", tasks_for(k), **hp)
    check_step(stage, k, d, *steps[0])
    before = copy.deepcopy(stage.state_dict())
    x = torch.zeros(d, dtype=F64, requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="'t0'"):
        stage.backward({"t0": x.sum() * float("inf"), "t1": x.sum() + 1.0}, shared=[x])
    for key, value in before.items():
        assert torch.equal(stage.state_dict()[key], value)
    assert x.grad is None


# ------------------------------------------------------------------------ rep-grad, heads
class ExpertModel(nn.Module):
    """Experts [E, B, H] from shared parameters, mixed per task by task-specific gates [K, B, E];
    or one shared representation [B, H] read by every head (``mixture=False``)."""

    def __init__(self, k=3, e=2, b=5, h=4, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(b, 3, generator=gen, dtype=F64)
        self.experts = nn.Parameter(torch.randn(e, 3, h, generator=gen, dtype=F64))
        self.gates = nn.Parameter(torch.randn(k, 3, e, generator=gen, dtype=F64))
        self.heads = nn.Parameter(torch.randn(k, h, generator=gen, dtype=F64))
        self.y = torch.randn(k, b, generator=gen, dtype=F64)
        self.k = k

    def losses_from(self, per_task):  # per_task: [K, B, H]
        pred = (torch.tanh(per_task) * self.heads[:, None, :]).sum(-1)
        losses = ((pred - self.y) ** 2).mean(1)
        return {f"t{i}": losses[i] for i in range(self.k)}

    def expanded(self, views: bool):
        rep = torch.tanh(self.x @ self.experts[0])  # [B, H]
        if not views:
            return rep, self.losses_from(rep.unsqueeze(0).expand(self.k, *rep.shape))
        view = rep.unsqueeze(0).expand(self.k, *rep.shape)
        return TaskViews((ExpandedView(rep, view),)), self.losses_from(view)

    def mixture(self):
        experts = torch.tanh(torch.einsum("bd,edh->ebh", self.x, self.experts))  # [E, B, H]
        gates = torch.softmax(torch.einsum("bd,kde->kbe", self.x, self.gates), dim=-1)
        mixed = torch.einsum("kbe,ebh->kbh", gates, experts)
        return experts, TaskViews((MixtureView(experts, gates, mixed),)), self.losses_from(mixed)


def first_step_risk(coords):
    return (coords * coords / torch.sqrt(coords * coords + 1e-7)).sum(1)


def risks(stage):
    diag = stage.diagnostics()
    return torch.tensor([diag[f"excess_risk/{t}"] for t in stage.tasks], dtype=F64)


def test_rep_grad_coordinates_are_batch_sums_and_views_agree():
    runs = {}
    for views in (False, True):
        model = ExpertModel()
        stage = build_stage("excess_mtl", tasks_for(3), robust_step_size=0.5)
        for _ in range(2):
            model.zero_grad()
            shared, losses = model.expanded(views)
            stage.backward(losses, shared=shared)
        runs[views] = stage.state_dict(), model.experts.grad.clone(), model.heads.grad.clone()
    for key in runs[False][0]:
        torch.testing.assert_close(runs[True][0][key], runs[False][0][key], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(runs[True][1], runs[False][1], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(runs[True][2], runs[False][2], rtol=1e-12, atol=1e-15)
    # the accumulators are [K, H]: each task's representation gradient summed over the batch
    model = ExpertModel()
    rep, losses = model.expanded(False)
    coords = torch.stack([torch.autograd.grad(losses[t], rep, retain_graph=True)[0].sum(0)
                          for t in tasks_for(3)])
    stage = build_stage("excess_mtl", tasks_for(3))
    stage.backward(losses, shared=rep)
    torch.testing.assert_close(stage.grad_sq_sum, coords * coords, rtol=1e-13, atol=0)
    torch.testing.assert_close(risks(stage), first_step_risk(coords), rtol=1e-13, atol=0)


def test_mixture_view_coordinates_sum_the_experts_gradients_over_the_batch():
    model = ExpertModel()
    experts, views, losses = model.mixture()
    coords = torch.stack([torch.autograd.grad(losses[t], experts, retain_graph=True)[0].sum(1).reshape(-1)
                          for t in tasks_for(3)])  # ∂L_i/∂experts [E, B, H] summed over B
    stage = build_stage("excess_mtl", tasks_for(3))
    stage.backward(losses, shared=views)
    assert stage.grad_sq_sum.shape == (3, 2 * 4)
    torch.testing.assert_close(stage.grad_sq_sum, coords * coords, rtol=1e-12, atol=1e-18)
    torch.testing.assert_close(risks(stage), first_step_risk(coords), rtol=1e-12, atol=0)


def test_heads_follow_the_loss_weights():
    # LibMTL back-propagates Σ λ_i L_i: the shared and the task-specific parameters follow λ
    model = ExpertModel()
    stage = build_stage("excess_mtl", tasks_for(3), robust_step_size=0.5)
    for _ in range(3):
        model.zero_grad()
        rep, losses = model.expanded(False)
        stage.backward(losses, shared=[model.experts])
    lam = stage.loss_weights
    assert not all(math.isclose(float(v), 1.0) for v in lam)
    fresh = ExpertModel()
    fresh.load_state_dict(model.state_dict())
    _, losses = fresh.expanded(False)
    combined = sum(float(lam[i]) * losses[f"t{i}"] for i in range(3))
    experts, heads = torch.autograd.grad(combined, [fresh.experts, fresh.heads])
    torch.testing.assert_close(model.experts.grad, experts, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(model.heads.grad, heads, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("bad", [{"robust_step_size": -0.01}, {"robust_step_size": float("nan")},
                                 {"eps": 0.0}])
def test_bad_hyper_parameters_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_stage("excess_mtl", tasks=["a", "b"], **bad)
