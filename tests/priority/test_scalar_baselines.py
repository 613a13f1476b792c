"""Scalarising baselines: sum, weighted, wc_penalty, uw, dwa, rlw, famo, nmt, dtp (hand values)."""

from __future__ import annotations

import math

import pytest
import torch

from recsys_hmtl.priority import NonFiniteLossError, build_stage

TASKS = ("a", "b")


def step(stage, values, tasks=TASKS, **kwargs):
    losses = {t: torch.tensor(float(v), requires_grad=True) for t, v in zip(tasks, values)}
    objective = stage(losses, **kwargs)
    objective.backward()
    return float(objective.detach()), [float(losses[t].grad) for t in tasks], stage.diagnostics()


def weights(diag, name="weight", tasks=TASKS):
    return [diag[f"{name}/{t}"] for t in tasks]


# ------------------------------------------------------------------------------- sum, weighted
def test_sum_and_weighted():
    obj, grads, _ = step(build_stage("sum", tasks=TASKS), [0.3, 0.5])
    assert [obj, *grads] == pytest.approx([0.8, 1.0, 1.0])
    # 2·0.3 + 0.5·0.5 = 0.85; the mapping form names tasks, the list form is in priority order.
    for w in ({"b": 0.5, "a": 2.0}, [2.0, 0.5]):
        obj, grads, diag = step(build_stage("weighted", tasks=TASKS, weights=w), [0.3, 0.5])
        assert [obj, *grads, *weights(diag)] == pytest.approx([0.85, 2.0, 0.5, 2.0, 0.5])


@pytest.mark.parametrize(
    "bad, message", [([1.0], "1 values for 2 tasks"), ({"a": 1, "c": 1}, "missing"), ([1, -1], ">= 0")]
)
def test_weighted_rejects_bad_weights(bad, message):
    with pytest.raises(ValueError, match=message):
        build_stage("weighted", tasks=TASKS, weights=bad)


# ----------------------------------------------------------------------------------- wc_penalty
def test_wc_penalty_by_hand():
    stage = build_stage("wc_penalty", tasks=TASKS, preference=[0.25, 0.75], mu=0.1, rho=2.0)
    # Step 1, L = [0.8, 0.4]: the ideal point z = L (this step included), gaps 0:
    # μ·logsumexp([0, 0]/μ) = 0.1·ln 2 = 0.069315; dL_i = p_i·softmax_i = [0.125, 0.375].
    obj, grads, diag = step(stage, [0.8, 0.4])
    assert [obj, *grads] == pytest.approx([0.069315, 0.125, 0.375], abs=1e-6)
    # Step 2, L = [1.0, 0.6], z = [0.8, 0.4]: p(L − z) = [0.05, 0.15];
    # 0.1·ln(e^0.5 + e^1.5) = 0.181326; softmax = [0.268941, 0.731059] → dL = [0.067235, 0.548294].
    # Equality constraints h = [0.1, −0.2]: ρΣh² = 2·0.05 = 0.1, dh = 2ρh = [0.4, −0.8].
    h = torch.tensor([0.1, -0.2], requires_grad=True)
    obj, grads, diag = step(stage, [1.0, 0.6], constraints=h)
    assert [obj, *grads] == pytest.approx([0.281326, 0.067235, 0.548294], abs=1e-6)
    assert h.grad.tolist() == pytest.approx([0.4, -0.8])
    assert diag["penalty"] == pytest.approx(0.1)
    assert weights(diag, "ideal") == pytest.approx([0.8, 0.4])
    # Step 3, L = [0.5, 0.7]: z = [0.5, 0.4], p(L − z) = [0, 0.225]:
    # 0.1·ln(1 + e^2.25) = 0.235021; dL = [0.25·0.095350, 0.75·0.904650] = [0.023837, 0.678488].
    obj, grads, _ = step(stage, [0.5, 0.7])
    assert [obj, *grads] == pytest.approx([0.235021, 0.023837, 0.678488], abs=1e-6)


def test_wc_penalty_exact_max_and_named_constraints():
    stage = build_stage("wc_penalty", tasks=TASKS, preference={"a": 0.25, "b": 0.75}, mu=0.0)
    step(stage, [0.8, 0.4])
    # max(0.25·0.2, 0.75·0.2) = 0.15, all of the gradient on task b; named constraints add ρΣh².
    obj, grads, _ = step(stage, [1.0, 0.6], constraints={"balance": torch.tensor([0.5])})
    assert [obj, *grads] == pytest.approx([0.15 + 0.25, 0.0, 0.75])


def test_wc_penalty_non_finite_constraint_leaves_ideal_point():
    stage = build_stage("wc_penalty", tasks=TASKS)
    step(stage, [0.8, 0.4])
    before = stage.ideal.clone()
    with pytest.raises(NonFiniteLossError, match="balance"):
        stage({"a": torch.tensor(0.1), "b": torch.tensor(0.1)},
              constraints={"balance": torch.tensor([float("nan")])})
    assert torch.equal(stage.ideal, before)


@pytest.mark.parametrize("preference", [[0.5, 0.6], [1.5, -0.5], [1.0]])
def test_wc_penalty_preference_must_lie_on_the_simplex(preference):
    with pytest.raises(ValueError, match="preference"):
        build_stage("wc_penalty", tasks=TASKS, preference=preference)


# ------------------------------------------------------------------------------------------ uw
def test_uncertainty_weighting_by_hand():
    stage = build_stage("uw", tasks=TASKS)
    # s = 0: Σ ½e^{−s}L + ½s = ½(0.3 + 0.5) = 0.4; dL = ½; ds_i = ½ − ½L_i = [0.35, 0.25].
    obj, grads, _ = step(stage, [0.3, 0.5])
    assert [obj, *grads] == pytest.approx([0.4, 0.5, 0.5])
    assert stage.log_var.grad.tolist() == pytest.approx([0.35, 0.25])
    # At s_i = ln L_i the log-variances are stationary: 1 + ½ ln 0.15 = 0.051440, ds = 0.
    stage.zero_grad()
    with torch.no_grad():
        stage.log_var.copy_(torch.log(torch.tensor([0.3, 0.5])))
    obj, _, diag = step(stage, [0.3, 0.5])
    assert obj == pytest.approx(0.051440, abs=1e-6)
    assert stage.log_var.grad.abs().max() < 1e-6
    assert weights(diag) == pytest.approx([0.5 / 0.3, 0.5 / 0.5])


# ----------------------------------------------------------------------------------------- dwa
def test_dwa_uses_the_last_two_epoch_means():
    stage = build_stage("dwa", tasks=TASKS)
    for values in ([1.0, 2.0], [3.0, 2.0]):       # epoch 1: means [2, 2]
        assert weights(step(stage, values)[2]) == [1.0, 1.0]
    stage.end_epoch()
    assert weights(step(stage, [1.0, 2.0])[2]) == [1.0, 1.0]   # epoch 2: means [1, 2]
    stage.end_epoch()
    # Epoch 3: r = [1/2, 2/2]; w = 2·softmax(r/2) = 2·[e^.25, e^.5]/(e^.25 + e^.5) = [0.875647, 1.124353].
    obj, grads, diag = step(stage, [0.4, 0.4])
    assert grads == pytest.approx([0.875647, 1.124353], abs=1e-6)
    assert obj == pytest.approx(0.8, abs=1e-6)
    assert weights(diag, "loss_ratio") == pytest.approx([0.5, 1.0])
    stage.end_epoch()
    stage.end_epoch()  # an epoch without steps does not shift the history
    assert weights(step(stage, [0.4, 0.4])[2], "loss_ratio") == pytest.approx([0.4 / 1.0, 0.4 / 2.0])


# ----------------------------------------------------------------------------------------- rlw
def test_rlw_draws_reproducible_softmax_normal_weights_without_touching_global_rng():
    rng = torch.get_rng_state()
    first = build_stage("rlw", tasks=("a", "b", "c"), seed=7)
    twin = build_stage("rlw", tasks=("a", "b", "c"), seed=7)
    other = build_stage("rlw", tasks=("a", "b", "c"), seed=8)
    seen = []
    for _ in range(4):
        w = weights(step(first, [0.1, 0.2, 0.3], tasks=("a", "b", "c"))[2], tasks=("a", "b", "c"))
        assert w == weights(step(twin, [0.1, 0.2, 0.3], tasks=("a", "b", "c"))[2], tasks=("a", "b", "c"))
        assert min(w) > 0 and sum(w) == pytest.approx(1.0)
        seen.append(w)
    assert seen[0] != seen[1]
    assert weights(step(other, [0.1, 0.2, 0.3], tasks=("a", "b", "c"))[2], tasks=("a", "b", "c")) != seen[0]
    g = torch.Generator().manual_seed(7)
    assert seen[0] == pytest.approx(torch.softmax(torch.randn(3, generator=g), 0).tolist())
    assert torch.equal(torch.get_rng_state(), rng)


# ---------------------------------------------------------------------------------------- famo
def test_famo_weighting_by_hand():
    stage = build_stage("famo", tasks=TASKS)
    # z = [0.5, 0.5], D = L = [0.2, 0.8]; c = 0.5/0.2 + 0.5/0.8 = 3.125;
    # objective Σ z log D / c = (0.5 ln 0.2 + 0.5 ln 0.8)/3.125 = −0.293213;
    # dL_i = z_i/(c D_i) = [0.8, 0.2].
    obj, grads, diag = step(stage, [0.2, 0.8])
    assert [obj, *grads] == pytest.approx([-0.293213, 0.8, 0.2], abs=1e-6)
    assert weights(diag) == pytest.approx([0.8, 0.2])
    # Next call, L = [0.1, 0.8]: δ = [ln 2, 0]; J_softmaxᵀδ = z ⊙ (δ − z·δ) = [0.173287, −0.173287];
    # Adam's first step moves each logit by lr·sign = 0.025: w = [−0.025, 0.025] — the task that
    # improved more loses weight.
    _, _, diag = step(stage, [0.1, 0.8])
    assert stage.logits.tolist() == pytest.approx([-0.025, 0.025], abs=1e-6)
    assert diag["softmax/a"] < 0.5 < diag["softmax/b"]


def test_famo_logit_update_matches_the_reference_update_rule():
    """Official FAMO.update: autograd through softmax, torch Adam(lr=w_lr, weight_decay=gamma)."""
    stage = build_stage("famo", tasks=("a", "b", "c"), w_lr=0.05, gamma=0.02)
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05, weight_decay=0.02)
    g = torch.Generator().manual_seed(0)
    sequence = (torch.rand(8, 3, generator=g) + 0.05).tolist()
    for prev, curr in zip(sequence, sequence[1:]):
        if prev is sequence[0]:
            step(stage, prev, tasks=("a", "b", "c"))
        step(stage, curr, tasks=("a", "b", "c"))
        delta = torch.log(torch.tensor(prev) + 1e-8) - torch.log(torch.tensor(curr) + 1e-8)
        opt.zero_grad()
        w.grad = torch.autograd.grad(torch.softmax(w, -1), w, grad_outputs=delta)[0]
        opt.step()
        torch.testing.assert_close(stage.logits, w.detach())


def test_famo_rejects_losses_below_their_bound():
    stage = build_stage("famo", tasks=TASKS, min_losses=[0.1, 0.0])
    with pytest.raises(ValueError, match="'a'"):
        stage({"a": torch.tensor(0.05), "b": torch.tensor(0.3)})
    assert not bool(stage.has_previous)


# ----------------------------------------------------------------------------------------- nmt
def test_nmt_prioritised_lagrangian_by_hand():
    tasks = ("a", "b", "c")
    stage = build_stage("nmt", tasks=tasks, multiplier_lr=0.5, ema_decay=0.0)
    # Step 1: L* = L, λ = 0: Λ = 0.5 + 0.4 + 0.3 = 1.2; no violation.
    assert step(stage, [0.5, 0.4, 0.3], tasks=tasks)[0] == pytest.approx(1.2)
    # Step 2: L = [0.7, 0.3, 0.5], L* = [0.5, 0.3, 0.3], λ = 0: Λ = 1.5;
    # λ ← max(0, λ + 0.5·(L − L*)) on the constrained tasks a, b: [0.1, 0]; c has no multiplier.
    assert step(stage, [0.7, 0.3, 0.5], tasks=tasks)[0] == pytest.approx(1.5)
    assert stage.multipliers.tolist() == pytest.approx([0.1, 0.0, 0.0])
    # Step 3: L = [0.6, 0.5, 0.2], L* = [0.5, 0.3, 0.2]: Λ = 1.3 + 0.1·0.1 = 1.31, scaled by
    # 1/(1 + 0.1): 1.190909; dL = [1.1, 1, 1]/1.1 = [1, 0.909091, 0.909091]; λ ← [0.15, 0.1, 0].
    obj, grads, diag = step(stage, [0.6, 0.5, 0.2], tasks=tasks)
    assert [obj, *grads] == pytest.approx([1.190909, 1.0, 0.909091, 0.909091], abs=1e-6)
    assert weights(diag, "multiplier", tasks) == pytest.approx([0.1, 0.0, 0.0])
    assert stage.multipliers.tolist() == pytest.approx([0.15, 0.1, 0.0])
    # Step 4: L = L* = [0.4, 0.3, 0.2]: Λ = 0.9, scale 1.25 → 0.72; dL = [1.15, 1.1, 1]/1.25.
    obj, grads, _ = step(stage, [0.4, 0.3, 0.2], tasks=tasks)
    assert [obj, *grads] == pytest.approx([0.72, 0.92, 0.88, 0.8], abs=1e-6)


def test_nmt_multipliers_stay_non_negative():
    stage = build_stage("nmt", tasks=TASKS, multiplier_lr=1.0, ema_decay=0.5)
    g = torch.Generator().manual_seed(1)
    for values in (torch.rand(30, 2, generator=g) + 0.1).tolist():
        step(stage, values)
        assert float(stage.multipliers.min()) >= 0.0
    # Below the smoothed optimum the violation is negative and the multiplier shrinks.
    stage = build_stage("nmt", tasks=TASKS, multiplier_lr=1.0, ema_decay=0.5)
    step(stage, [1.0, 1.0])
    step(stage, [2.0, 1.0])   # EMA 1.5, L* = 1.0: violation +1 → λ_a = 1
    step(stage, [0.2, 1.0])   # EMA 0.85 = L*: violation 0.2 − 0.85 = −0.65 → λ_a = 0.35
    assert float(stage.multipliers[0]) == pytest.approx(0.35)


# ----------------------------------------------------------------------------------------- dtp
def test_dtp_focal_weights_by_hand():
    stage = build_stage("dtp", tasks=TASKS, gamma=2.0, ema_decay=0.5)
    # Step 1 (EMA starts at L): κ = e^{−L}; w = (1 − e^{−L})²·L:
    # w_a = (1 − e^{−0.1})²·0.1 = 0.000906, w_b = (1 − e^{−1})² = 0.399576;
    # objective 0.000906·0.1 + 0.399576·1 = 0.399667; harder tasks weigh more.
    obj, grads, diag = step(stage, [0.1, 1.0])
    assert [obj, *grads] == pytest.approx([0.399667, 0.000906, 0.399576], abs=1e-6)
    assert weights(diag, "kpi") == pytest.approx([math.exp(-0.1), math.exp(-1.0)])
    # Step 2, L_a = 0.5: EMA 0.5·0.1 + 0.5·0.5 = 0.3 → w_a = (1 − e^{−0.3})²·0.3 = 0.020153.
    _, grads, _ = step(stage, [0.5, 1.0])
    assert grads[0] == pytest.approx(0.020153, abs=1e-6)


def test_dtp_rejects_negative_losses():
    with pytest.raises(ValueError, match="'b'"):
        build_stage("dtp", tasks=TASKS)({"a": torch.tensor(0.1), "b": torch.tensor(-0.1)})
