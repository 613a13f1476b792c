"""Gradient stages (MGDA, PCGrad, CAGrad, IMTL-G, GetMTL, GradNorm): golden directions, the
properties their papers state, one backward pass, rep-grad = parameter mode, state round trips."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from recsys_hmtl.priority import NonFiniteLossError, build_stage
from recsys_hmtl.priority.fairgrad import fair_weights
from recsys_hmtl.priority.min_norm import min_norm_weights, solve_simplex

F64 = torch.float64
GRADIENT_STAGES = [
    "mgda", "pcgrad", "cagrad", "imtl_g", "getmtl", "gradnorm", "nash_mtl", "fairgrad",
]
GOLDEN_J = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], dtype=F64)  # Gram [[18,-22],[-22,38]]


def linear_step(name, jac, **hparams):
    """One backward of L_i = g_i·x + 5 at x = 0: x.grad is the stage's combined direction."""
    tasks = [f"t{i}" for i in range(jac.shape[0])]
    stage = build_stage(name, tasks=tasks, **hparams)
    x = torch.zeros(jac.shape[1], dtype=F64, requires_grad=True)
    stage.backward({t: jac[i] @ x + 5.0 for i, t in enumerate(tasks)}, shared=[x])
    diag = stage.diagnostics()
    return x.grad, [diag[f"weight/{t}"] for t in tasks], diag


def test_golden_mgda():
    # γ = (38 + 22)/(18 + 38 + 44) = 0.6 → 0.6·[-4,1,1] + 0.4·[6,1,1] = [0, 1, 1].
    d, w, _ = linear_step("mgda", GOLDEN_J)
    assert w == pytest.approx([0.6, 0.4], abs=1e-12)
    assert d.tolist() == pytest.approx([0.0, 1.0, 1.0], abs=1e-12)


def test_golden_imtl_g():
    # u1 = g1/√18, u2 = g2/√38; D = g1 − g2 = [-10,0,0], U = u1 − u2 = [-1.91609, 0.07351, 0.07351];
    # α2 = g1·U / D·U = 7.81155 / 19.16092 = 0.40768, α1 = 0.59232.
    _, w, diag = linear_step("imtl_g", GOLDEN_J)
    assert w == pytest.approx([0.5923, 0.4077], abs=1e-4)
    assert diag["cosine/t0"] == pytest.approx(diag["cosine/t1"], abs=1e-12)  # equal projections


def test_golden_pcgrad_sum():
    # g1·g2 = −22 < 0: g1' = g1 + (22/38) g2 = [-0.52632, 1.57895, 1.57895],
    # g2' = g2 + (22/18) g1 = [1.11111, 2.22222, 2.22222]; sum = [0.5848, 3.8012, 3.8012].
    d, _, diag = linear_step("pcgrad", GOLDEN_J)
    assert d.tolist() == pytest.approx([0.5848, 3.8012, 3.8012], abs=1e-4)
    assert diag["projections"] == 2.0


def test_golden_cagrad_without_rescale():
    # g0 = [1,1,1], √φ = 0.5·√3 = 0.86603; min over w of g_w·g0 + √φ‖g_w‖ is at w = (1, 0)
    # (g_w = g1: −2 + 0.86603·√18 = 1.674 < g2's 8 + 5.338), d = g0 + √φ/√18 · g1
    # = [1 − 0.81650, 1.20412, 1.20412].
    d, _, _ = linear_step("cagrad", GOLDEN_J, c=0.5, rescale=0)
    assert d.tolist() == pytest.approx([0.1835, 1.2041, 1.2041], abs=1e-4)
    d1, _, _ = linear_step("cagrad", GOLDEN_J, c=0.5)  # rescale=1 divides by 1 + c² = 1.25
    assert d1.tolist() == pytest.approx((d / 1.25).tolist(), abs=1e-12)


def test_pcgrad_removes_only_the_conflicting_component():
    gen = torch.Generator().manual_seed(0)
    checked = 0
    while checked < 10:
        jac = torch.randn(2, 4, generator=gen, dtype=F64)
        g1, g2 = jac
        d, _, _ = linear_step("pcgrad", jac)
        dot = float(g1 @ g2)
        if dot >= 0:  # no conflict: plain sum
            assert d.tolist() == pytest.approx((g1 + g2).tolist(), abs=1e-12)
            continue
        # g1' ⊥ g2 and g2' ⊥ g1, so d·g2 = g2'·g2 = ‖g2‖² − (g1·g2)²/‖g1‖², and symmetrically.
        assert float(d @ g2) == pytest.approx(float(g2 @ g2) - dot**2 / float(g1 @ g1), abs=1e-10)
        assert float(d @ g1) == pytest.approx(float(g1 @ g1) - dot**2 / float(g2 @ g2), abs=1e-10)
        checked += 1


def test_getmtl_direction_solves_problem_one():
    eps = 0.05
    gen = torch.Generator().manual_seed(1)
    seen = {"boundary": 0, "degenerate": 0}
    for _ in range(12):
        jac = torch.randn(3, 4, generator=gen, dtype=F64)
        d, _, diag = linear_step("getmtl", jac, eps=eps)
        g0 = jac.mean(0)
        n0 = float(g0.norm())
        denom = 1 - eps**2 * n0**2
        assert denom > 0 and diag["guard"] == 0.0
        gram = jac @ jac.T
        beta = min_norm_weights(gram)
        g_beta = beta[:, None] * jac
        w = solve_simplex(g_beta @ g_beta.T, g_beta @ g0, eps * n0**2)
        g_w = w @ g_beta
        # Problem 1's constraint as the Lagrangian of Eq. 19-22 differentiates it,
        # ‖d − g0‖ ≤ ε‖g0‖‖d‖, is the ball of centre g0/(1 − ε²‖g0‖²), radius ε‖g0‖²/(1 − ε²‖g0‖²);
        # and g0ᵀd ≥ 0.
        centre, radius = g0 / denom, eps * n0**2 / denom
        assert float(g0 @ d) >= 0
        if float(g_w.norm()) > 1e-9:  # d = centre + radius · g_w/‖g_w‖: on the boundary
            assert float((d - g0).norm()) == pytest.approx(eps * n0 * float(d.norm()), rel=1e-9)
            seen["boundary"] += 1
        else:  # a task with β_i = 0 makes the maximin value 0; d is the centre (Eq. 13, λ* = 0)
            torch.testing.assert_close(d, centre, rtol=1e-12, atol=1e-12)
            seen["degenerate"] += 1
        # Eq. 18: min_i ⟨g_βi, d⟩ = J(w*)/(1 − ε²‖g0‖²).
        j_value = float(g0 @ g_w + eps * n0**2 * g_w.norm()) / denom
        worst = float((g_beta @ d).min())
        assert worst == pytest.approx(j_value, rel=1e-8, abs=1e-12)
        # d maximises min_i ⟨g_βi, ·⟩ over the ball: random points of the ball do no better.
        dirs = torch.randn(2000, 4, generator=gen, dtype=F64)
        radii = radius * torch.rand(2000, 1, generator=gen, dtype=F64) ** 0.25
        points = centre + radii * dirs / dirs.norm(dim=1, keepdim=True)
        assert float((points @ g_beta.T).min(dim=1).values.max()) <= worst + 1e-12
    assert seen["boundary"] >= 3  # the interesting case was exercised


def test_getmtl_guard_when_the_ball_is_unbounded():
    # ε‖g0‖ ≥ 1: 1 − ε²‖g0‖² ≤ 0 and Eq. 13 would flip or blow up; d = g0 + ε‖g0‖² g_w/‖g_w‖.
    d, _, diag = linear_step("getmtl", GOLDEN_J, eps=1.0)  # ‖g0‖² = 3
    assert diag["guard"] == 1.0 and bool(torch.isfinite(d).all())
    g0 = GOLDEN_J.mean(0)
    assert float((d - g0).norm()) == pytest.approx(3.0, abs=1e-12)  # ε‖g0‖² = 3


def test_gradnorm_weights_follow_training_rates():
    # Two tasks with equal gradient norms n = [1, 1]; L(0) = [1, 1], now L = [0.5, 1]:
    # L̃ = [0.5, 1], r = [2/3, 4/3]; G_W = [1, 1], target = [(2/3)^1.5, (4/3)^1.5] = [0.544, 1.540];
    # ∂L_grad/∂w = sign(G_W − target)·n = [+1, −1]; SGD (lr 0.1) gives w = [0.9, 1.1] (Σ = 2).
    stage = build_stage("gradnorm", tasks=["a", "b"], alpha=1.5)
    opt = torch.optim.SGD(stage.parameters(), lr=0.1)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    for values in ([1.0, 1.0], [0.5, 1.0]):
        opt.zero_grad()
        losses = {"a": x[0] + values[0], "b": x[1] + values[1]}
        stage.backward(losses, shared=[x])
        opt.step()
    assert stage.diagnostics()["target_norm/a"] == pytest.approx((2 / 3) ** 1.5, abs=1e-6)
    x.grad = None
    stage.backward({"a": x[0] + 0.5, "b": x[1] + 1.0}, shared=[x])  # renormalises, then weighs
    assert [stage.diagnostics()["weight/a"], stage.diagnostics()["weight/b"]] == pytest.approx(
        [0.9, 1.1], abs=1e-6)
    assert x.grad.tolist() == pytest.approx([0.9, 1.1], abs=1e-6)


def test_nash_mtl_golden_orthogonal_gradients():
    # Orthogonal g_i with norms n = [2, 3, 1]: M = diag(n²), so Mα = 1/α gives α_i = 1/n_i and
    # d = Σ g_i/‖g_i‖, and each task gets the utility g_iᵀd = n_i = 1/α_i (Navon et al. 2022,
    # Sec. 3.2).
    jac = torch.diag(torch.tensor([2.0, 3.0, 1.0], dtype=F64))
    d, w, _ = linear_step("nash_mtl", jac)
    assert w == pytest.approx([0.5, 1 / 3, 1.0], rel=1e-6)
    assert d.tolist() == pytest.approx([1.0, 1.0, 1.0], rel=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
def test_fairgrad_weights_solve_the_alpha_fair_system(alpha):
    # (G Gᵀ w)_i = w_i^{-1/α}, w > 0 (Ban & Ji 2024), up to the 1e-8 ridge; α = 1 is Nash-MTL.
    gen = torch.Generator().manual_seed(int(alpha * 10))
    jac = torch.randn(4, 12, generator=gen, dtype=F64)
    gram = jac @ jac.T
    w = fair_weights(gram, alpha)
    assert bool((w > 0).all())
    ridge = 1e-8 * float(gram.diagonal().mean())
    torch.testing.assert_close(gram @ w + ridge * w, w ** (-1 / alpha), rtol=1e-10, atol=0)
    d_fair, _, _ = linear_step("fairgrad", jac, alpha=alpha)
    torch.testing.assert_close(d_fair, w @ jac, rtol=1e-10, atol=1e-12)
    if alpha == 1.0:
        d_nash, _, _ = linear_step("nash_mtl", jac)
        torch.testing.assert_close(d_nash, d_fair, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ one backward, rep = param
class CountingIdentity(torch.autograd.Function):
    """Stands for TorchRec's embedding lookup, whose backward applies the fused optimizer."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        CountingIdentity.calls += 1
        return grad


class TinyMultiTask(nn.Module):
    """rows → (counted lookup) → shared W → representation → K non-linear heads."""

    def __init__(self, num_tasks: int, seed: int = 0, batch: int = 4, dim: int = 6) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, batch, generator=gen, dtype=F64))
        self.rows = nn.Parameter(q.T.contiguous())  # orthonormal rows: x xᵀ = I
        self.shared = nn.Parameter(torch.randn(5, dim, generator=gen, dtype=F64))
        self.heads = nn.Parameter(torch.randn(num_tasks, 5, generator=gen, dtype=F64))
        self.targets = torch.randn(num_tasks, batch, generator=gen, dtype=F64)

    def forward(self):
        rep = CountingIdentity.apply(self.rows) @ self.shared.T
        preds = torch.tanh(rep) @ self.heads.T  # [B, K]
        losses = ((preds - self.targets.T) ** 2).mean(0)
        return rep, {f"t{i}": losses[i] for i in range(losses.numel())}


def run_stage(name, mode, seed=0, **hparams):
    model = TinyMultiTask(3, seed)
    stage = build_stage(name, tasks=["t0", "t1", "t2"], **hparams)
    hits = []
    model.rows.register_post_accumulate_grad_hook(lambda p: hits.append(1))
    CountingIdentity.calls = 0
    rep, losses = model()
    stage.backward(losses, shared=rep if mode == "rep" else [model.shared])
    return model, stage, CountingIdentity.calls, len(hits)


@pytest.mark.parametrize("name", GRADIENT_STAGES)
@pytest.mark.parametrize("mode", ["rep", "param"])
def test_exactly_one_backward_reaches_the_lookup(name, mode):
    model, _, lookups, accumulations = run_stage(name, mode)
    assert lookups == 1 and accumulations == 1
    assert model.rows.grad is not None and model.heads.grad is not None


@pytest.mark.parametrize("name", GRADIENT_STAGES)
def test_rep_grad_and_parameter_mode_agree(name):
    # rep = x Wᵀ with orthonormal rows x: ∂L_i/∂W = Σ_b g_ib x_bᵀ, so the parameter-mode Gram
    # Σ_{b,b'} (g_ib·g_jb')(x_b·x_b') equals the rep-grad Gram: same weights, same W.grad.
    rep_model, rep_stage, _, _ = run_stage(name, "rep")
    par_model, par_stage, _, _ = run_stage(name, "param")
    for key in ("weight/t0", "weight/t1", "weight/t2"):
        expected = par_stage.diagnostics()[key]
        assert rep_stage.diagnostics()[key] == pytest.approx(expected, abs=1e-10)
    torch.testing.assert_close(rep_model.shared.grad, par_model.shared.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(rep_model.heads.grad, par_model.heads.grad, rtol=1e-9, atol=1e-12)
    # ... and the combination, not the plain sum, reached W: Σ c_i ∂L_i/∂W from a fresh graph.
    fresh = TinyMultiTask(3, 0)
    _, losses = fresh()
    coeffs = [rep_stage.diagnostics()[f"weight/t{i}"] for i in range(3)]
    combined = sum(c * losses[f"t{i}"] for i, c in enumerate(coeffs))
    expected = torch.autograd.grad(combined, fresh.shared)[0]
    torch.testing.assert_close(rep_model.shared.grad, expected, rtol=1e-9, atol=1e-12)
    if name != "gradnorm":  # GradNorm's first weights are 1: its first step is the plain sum
        other = TinyMultiTask(3, 0)
        plain = torch.autograd.grad(sum(other()[1].values()), other.shared)[0]
        assert not torch.allclose(rep_model.shared.grad, plain)


# ---------------------------------------------------------------------------- state and API
def conflicting_steps(num_steps, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=gen, dtype=F64) for _ in range(num_steps)]


def pcgrad_directions(stage, jacs):
    out = []
    for jac in jacs:
        x = torch.zeros(3, dtype=F64, requires_grad=True)
        stage.backward({f"t{i}": jac[i] @ x for i in range(4)}, shared=[x])
        out.append(x.grad.clone())
    return out


def test_pcgrad_state_dict_round_trip_continues_the_random_orders():
    tasks = ["t0", "t1", "t2", "t3"]
    jacs = conflicting_steps(12)
    first = build_stage("pcgrad", tasks=tasks, seed=3)
    pcgrad_directions(first, jacs[:4])
    resumed = build_stage("pcgrad", tasks=tasks, seed=99)
    resumed.load_state_dict(first.state_dict())
    later_first = pcgrad_directions(first, jacs[4:])
    later_resumed = pcgrad_directions(resumed, jacs[4:])
    assert all(torch.equal(a, b) for a, b in zip(later_first, later_resumed))
    fresh = pcgrad_directions(build_stage("pcgrad", tasks=tasks, seed=3), jacs[4:])
    assert not all(torch.equal(a, b) for a, b in zip(later_first, fresh))  # the state mattered


def test_gradnorm_state_dict_round_trip():
    def steps(stage, opt, values):
        out = []
        for v in values:
            x = torch.zeros(2, dtype=F64, requires_grad=True)
            opt.zero_grad()
            stage.backward({"a": 2 * x[0] + v[0], "b": x[1] + v[1]}, shared=[x])
            opt.step()
            out.append(x.grad.clone())
        return out

    values = [(1.0, 1.0), (0.8, 0.9), (0.5, 0.85), (0.4, 0.8), (0.3, 0.7), (0.2, 0.6)]
    a = build_stage("gradnorm", tasks=["a", "b"])
    opt_a = torch.optim.SGD(a.parameters(), lr=0.05)
    steps(a, opt_a, values[:3])
    b = build_stage("gradnorm", tasks=["a", "b"])
    b.load_state_dict(a.state_dict())
    opt_b = torch.optim.SGD(b.parameters(), lr=0.05)
    later_a, later_b = steps(a, opt_a, values[3:]), steps(b, opt_b, values[3:])
    assert all(torch.equal(x, y) for x, y in zip(later_a, later_b))


def test_non_finite_loss_raises_before_any_state_changes():
    stage = build_stage("pcgrad", tasks=["a", "b"])
    before = stage.rng_state.clone()
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="'b'"):
        stage.backward({"a": x.sum(), "b": x.sum() * math.nan}, shared=[x])
    assert torch.equal(stage.rng_state, before) and x.grad is None


def test_api_errors_are_clear():
    stage = build_stage("mgda", tasks=["a", "b"])
    x = torch.zeros(2, requires_grad=True)
    losses = {"a": x.sum(), "b": (2 * x).sum()}
    with pytest.raises(TypeError, match="stage.backward"):
        stage(losses)
    with pytest.raises(ValueError, match="shared="):
        stage.backward(losses)
    with pytest.raises(ValueError, match="mixes parameters"):
        stage.backward(losses, shared=[x, x * 2])
    with pytest.raises(ValueError, match="normalize"):
        build_stage("mgda", tasks=["a", "b"], normalize="l3")
    with pytest.raises(ValueError, match="rescale"):
        build_stage("cagrad", tasks=["a", "b"], rescale=3)


# ------------------------------------------------------------------------------- distributed
def _split_batch_losses(params, rows, targets):
    shared, heads = params
    rep = rows @ shared.T
    losses = ((torch.tanh(rep) @ heads.T - targets.T) ** 2).mean(0)
    return rep, {f"t{i}": losses[i] for i in range(losses.numel())}


DDP_HPARAMS = {"eps": 0.5}


def _ddp_worker(rank, world, port, name, mode, queue):
    import torch.distributed as dist

    address = f"tcp://127.0.0.1:{port}"
    dist.init_process_group("gloo", init_method=address, rank=rank, world_size=world)
    try:
        model = TinyMultiTask(3, seed=2, batch=8, dim=10)
        half = slice(4 * rank, 4 * rank + 4)
        stage = build_stage(name, tasks=["t0", "t1", "t2"], **DDP_HPARAMS)
        rep, losses = _split_batch_losses(
            (model.shared, model.heads), model.rows.detach()[half], model.targets[:, half])
        stage.backward(losses, shared=rep if mode == "rep" else [model.shared])
        for p in (model.shared, model.heads):  # what DistributedDataParallel does after backward
            dist.all_reduce(p.grad)
            p.grad /= world
        queue.put((rank, model.shared.grad.tolist(), model.heads.grad.tolist()))  # plain data
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["rep", "param"])
def test_two_ranks_take_the_full_batch_step(mode):
    # Each rank sees half the batch; the combined step must equal the single-process step on the
    # full batch (the local mean losses average to the full-batch mean), identical on both ranks.
    import socket

    import torch.multiprocessing as mp

    name = "getmtl"  # not scale-invariant (ε‖g_0‖² enters), so a wrong 1/R or 1/R² would show
    model = TinyMultiTask(3, seed=2, batch=8, dim=10)
    stage = build_stage(name, tasks=["t0", "t1", "t2"], **DDP_HPARAMS)
    params = (model.shared, model.heads)
    rep, losses = _split_batch_losses(params, model.rows.detach(), model.targets)
    stage.backward(losses, shared=rep if mode == "rep" else [model.shared])
    diag = stage.diagnostics()
    assert diag["guard"] == 0.0 and diag["constraint_denominator"] < 0.99  # ε‖g0‖² matters

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_ddp_worker, args=(2, port, name, mode, queue), nprocs=2, join=True,
                       start_method="spawn")
    results = sorted(queue.get(timeout=60) for _ in range(2))
    for _, shared_grad, heads_grad in results:
        torch.testing.assert_close(torch.tensor(shared_grad, dtype=F64), model.shared.grad,
                                   rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(torch.tensor(heads_grad, dtype=F64), model.heads.grad,
                                   rtol=1e-9, atol=1e-12)
