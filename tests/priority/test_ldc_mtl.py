"""LDC-MTL (seed 003): Eq. 1-2 by hand, router on the simplex, f = 0 for τ = 1 and equal losses,
normalisations of A.1, the MLP router over the detached representation, Algorithm 2's protocol."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from recsys_hmtl.priority import build_stage

TASKS = ("click", "like", "follow")


def leaf_losses(values):
    return {t: torch.tensor(float(v), requires_grad=True) for t, v in zip(TASKS, values)}


def step(stage, values, **kwargs):
    losses = leaf_losses(values)
    objective = stage(losses, **kwargs)
    objective.backward()
    return float(objective.detach()), [float(losses[t].grad) for t in TASKS], stage.diagnostics()


def test_objective_and_gradients_by_hand_vector_router():
    stage = build_stage("ldc_mtl", tasks=TASKS)  # λ = 0.1, τ = σ, no normalisation, W = 0

    # σ = softmax(0) = [1/3]*3, L = [0.9, 0.6, 0.3]: gaps τ_i l_i − τ_{i+1} l_{i+1} = [0.1, 0.1].
    # f = 0.1 + 0.1 = 0.2; g = (0.9 + 0.6 + 0.3)/3 = 0.6; objective f + λ g = 0.2 + 0.06 = 0.26.
    # dL1 = σ1 + λσ1 = 1/3 + 1/30 = 0.366667; dL2 = −σ2 + σ2 + λσ2 = 0.033333;
    # dL3 = −σ3 + λσ3 = −0.3.
    # Through the router: dObj/dσ = [L1 + λL1, −L2 + L2 + λL2, −L3 + λL3] = [0.99, 0.06, −0.27];
    # dObj/dW = σ ⊙ (u − σ·u) = (u − 0.26)/3 = [0.243333, −0.066667, −0.176667].
    obj, grads, diag = step(stage, [0.9, 0.6, 0.3])
    assert obj == pytest.approx(0.26, abs=1e-6)
    assert grads == pytest.approx([0.366667, 0.033333, -0.3], abs=1e-6)
    assert stage.router.logits.grad.tolist() == pytest.approx([0.243333, -0.066667, -0.176667], abs=1e-6)
    assert diag["discrepancy"] == pytest.approx(0.2, abs=1e-6)
    assert diag["lower_level"] == pytest.approx(0.6, abs=1e-6)

    # Router moved to W = [ln 2, 0, 0]: σ = [2, 1, 1]/4 = [0.5, 0.25, 0.25]; L = [0.2, 0.8, 0.4]:
    # gaps [0.1 − 0.2, 0.2 − 0.1] = [−0.1, 0.1], f = 0.2; g = 0.1 + 0.2 + 0.1 = 0.4; objective 0.24.
    # dL1 = −σ1 + λσ1 = −0.45; dL2 = σ2 + σ2 + λσ2 = 0.525; dL3 = −σ3 + λσ3 = −0.225.
    with torch.no_grad():
        stage.router.logits.copy_(torch.tensor([math.log(2.0), 0.0, 0.0]))
    obj, grads, diag = step(stage, [0.2, 0.8, 0.4])
    assert obj == pytest.approx(0.24, abs=1e-6)
    assert grads == pytest.approx([-0.45, 0.525, -0.225], abs=1e-6)
    assert [diag[f"weight/{t}"] for t in TASKS] == pytest.approx([0.5, 0.25, 0.25])


def test_objective_and_gradients_by_hand_rescaled_smooth_tau_one():
    stage = build_stage("ldc_mtl", tasks=TASKS, tau="one", normalize="rescale", smooth_abs=0.01)

    # Step 1, L = l_0 = [0.8, 0.4, 0.2]: l̃ = [1, 1, 1], gaps 0, f = 2·sqrt(0 + 0.01) = 0.2;
    # g = Σ σ_i l̃_i = 1; objective 0.2 + 0.1 = 0.3. d sqrt(x²+γ)/dx = 0 at x = 0, so
    # dL_i = λ σ_i / l_0,i = (0.1/3)/[0.8, 0.4, 0.2] = [0.041667, 0.083333, 0.166667].
    obj, grads, _ = step(stage, [0.8, 0.4, 0.2])
    assert obj == pytest.approx(0.3, abs=1e-6)
    assert grads == pytest.approx([0.041667, 0.083333, 0.166667], abs=1e-6)

    # Step 2, L = [0.4, 0.3, 0.05]: l̃ = [0.5, 0.75, 0.25], gaps [−0.25, 0.5];
    # f = sqrt(0.0625 + 0.01) + sqrt(0.25 + 0.01) = 0.269258 + 0.509902 = 0.779160; g = 1.5/3 = 0.5;
    # objective 0.779160 + 0.05 = 0.829160.
    # df/dl̃ = [−0.25/0.269258, 0.25/0.269258 + 0.5/0.509902, −0.5/0.509902]
    #       = [−0.928477, 1.909058, −0.980581]; add λσ = 0.033333 and divide by l_0:
    # dL = [−0.895144/0.8, 1.942391/0.4, −0.947248/0.2] = [−1.118930, 4.855978, −4.736240].
    obj, grads, diag = step(stage, [0.4, 0.3, 0.05])
    assert obj == pytest.approx(0.829160, abs=2e-6)
    assert grads == pytest.approx([-1.118930, 4.855978, -4.736240], abs=5e-6)
    assert [diag[f"normalized_loss/{t}"] for t in TASKS] == pytest.approx([0.5, 0.75, 0.25])
    assert [diag[f"tau/{t}"] for t in TASKS] == [1.0, 1.0, 1.0]


def test_log_normalisation_and_epoch_reset():
    stage = build_stage("ldc_mtl", tasks=TASKS, normalize="log", reset_every_epoch=True)
    step(stage, [0.5, 0.2, 0.1])
    _, _, diag = step(stage, [0.25, 0.4, 0.1])
    expected = [math.log(0.25 / 0.5), math.log(0.4 / 0.2), 0.0]
    assert [diag[f"normalized_loss/{t}"] for t in TASKS] == pytest.approx(expected, abs=1e-6)
    stage.end_epoch()  # the next loss becomes l_0 (A.1, QM9: "initial loss value at each epoch")
    _, _, diag = step(stage, [0.3, 0.3, 0.3])
    assert [diag[f"normalized_loss/{t}"] for t in TASKS] == pytest.approx([0.0] * 3, abs=1e-7)
    _, _, diag = step(stage, [0.6, 0.3, 0.3])
    assert diag["normalized_loss/click"] == pytest.approx(math.log(2.0), abs=1e-6)


def test_normalisation_needs_positive_losses():
    stage = build_stage("ldc_mtl", tasks=TASKS, normalize="rescale")
    with pytest.raises(ValueError, match="'like'"):
        stage(leaf_losses([0.5, 0.0, 0.1]))
    assert not bool(stage.has_initial)


def test_router_weights_lie_on_the_simplex():
    g = torch.Generator().manual_seed(0)
    vector = build_stage("ldc_mtl", tasks=TASKS)
    mlp = build_stage("ldc_mtl", tasks=TASKS, router="mlp", input_dim=5)
    for _ in range(5):
        with torch.no_grad():
            vector.router.logits.copy_(torch.randn(3, generator=g) * 4)
        rep = torch.randn(16, 5, generator=g) * 3
        for stage, kwargs in ((vector, {}), (mlp, {"representation": rep})):
            _, _, diag = step(stage, [0.3, 0.2, 0.1], **kwargs)
            weights = [diag[f"weight/{t}"] for t in TASKS]
            assert min(weights) >= 0.0
            assert sum(weights) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("router", ["vector", "mlp"])
def test_tau_one_and_equal_losses_have_no_discrepancy(router):
    """τ = 1 and l_1 = ... = l_K: f = 0, so the objective is λ·g = λ·l (σ sums to 1)."""
    options = {"input_dim": 4} if router == "mlp" else {}
    stage = build_stage("ldc_mtl", tasks=TASKS, tau="one", router=router, **options)
    kwargs = {"representation": torch.randn(8, 4)} if router == "mlp" else {}
    obj, grads, diag = step(stage, [0.42, 0.42, 0.42], **kwargs)
    assert diag["discrepancy"] == 0.0
    assert obj == pytest.approx(0.1 * 0.42, abs=1e-7)


def test_mlp_router_reads_the_detached_representation():
    stage = build_stage("ldc_mtl", tasks=TASKS, router="mlp", input_dim=4, router_hidden=8)
    assert stage.needs_representation
    trunk = torch.nn.Linear(3, 4)
    x = torch.randn(10, 3)

    def task_losses():
        rep = trunk(x)
        return rep, {t: (rep[:, i] ** 2).mean() + 0.1 for i, t in enumerate(TASKS)}

    rep, losses = task_losses()
    with pytest.raises(ValueError, match="representation"):
        stage(losses)
    with pytest.raises(ValueError, match="input_dim=4"):
        stage(losses, representation=torch.randn(10, 7))
    stage.backward(losses, shared=rep)  # the representation given as `shared`
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stage.parameters())
    trunk_grad = trunk.weight.grad.clone()

    # Same objective with σ frozen at the router's output: the trunk must get the same gradient,
    # i.e. nothing flows back through the router's input.
    sigma = torch.tensor([stage.diagnostics()[f"weight/{t}"] for t in TASKS])
    trunk.zero_grad()
    _, losses = task_losses()
    stacked = torch.stack([losses[t] for t in TASKS])
    weighted = sigma * stacked
    ((weighted[:-1] - weighted[1:]).abs().sum() + 0.1 * weighted.sum()).backward()
    torch.testing.assert_close(trunk.weight.grad, trunk_grad)


def test_mlp_router_needs_input_dim():
    with pytest.raises(ValueError, match="input_dim"):
        build_stage("ldc_mtl", tasks=TASKS, router="mlp")


def test_double_loop_protocol_of_algorithm_2():
    single = build_stage("ldc_mtl", tasks=TASKS)
    double = build_stage("ldc_mtl", tasks=TASKS, loop="double")
    with torch.no_grad():
        for s in (single, double):
            s.router.logits.copy_(torch.tensor([0.3, -0.2, 0.1]))
    with pytest.raises(RuntimeError, match="set_lower_level_losses"):
        double(leaf_losses([0.5, 0.4, 0.3]))

    # Inner loop (Eq. 4): λ Σ σ_i l_i with σ detached; its gradient reaches the losses only.
    inner = leaf_losses([0.5, 0.4, 0.3])
    double.lower_level_objective(inner).backward()
    sigma = torch.softmax(torch.tensor([0.3, -0.2, 0.1]), 0)
    assert [float(inner[t].grad) for t in TASKS] == pytest.approx((0.1 * sigma).tolist(), abs=1e-7)
    assert double.router.logits.grad is None

    at_optimum = [0.45, 0.35, 0.2]
    double.set_lower_level_losses({t: torch.tensor(v) for t, v in zip(TASKS, at_optimum)})
    obj_d, grads_d, _ = step(double, [0.5, 0.4, 0.3])
    obj_s, grads_s, _ = step(single, [0.5, 0.4, 0.3])
    # Objective minus λ g(W, z_N); same gradient into the model (Algorithm 2, x-update) ...
    assert obj_d == pytest.approx(obj_s - 0.1 * float((sigma * torch.tensor(at_optimum)).sum()), abs=1e-6)
    assert grads_d == pytest.approx(grads_s, abs=1e-7)
    # ... and the router gets −λ ∇_W g(W, z_N) on top (Eq. 3): ∇_W Σσ_i c_i = σ ⊙ (c − σ·c).
    c = torch.tensor(at_optimum)
    extra = -0.1 * sigma * (c - (sigma * c).sum())
    torch.testing.assert_close(double.router.logits.grad, single.router.logits.grad + extra)
    with pytest.raises(RuntimeError, match="set_lower_level_losses"):  # used once
        double(leaf_losses([0.5, 0.4, 0.3]))


def test_state_dict_round_trip_with_mlp_router():
    stage = build_stage("ldc_mtl", tasks=TASKS, router="mlp", input_dim=4, normalize="rescale")
    g = torch.Generator().manual_seed(3)
    reps = [torch.randn(6, 4, generator=g) for _ in range(6)]
    values = [(torch.rand(3, generator=g) + 0.1).tolist() for _ in range(6)]
    for i in range(3):
        step(stage, values[i], representation=reps[i])
    resumed = build_stage("ldc_mtl", tasks=TASKS, router="mlp", input_dim=4, normalize="rescale")
    resumed.load_state_dict(copy.deepcopy(stage.state_dict()))
    for i in range(3, 6):
        a = step(stage, values[i], representation=reps[i])
        b = step(resumed, values[i], representation=reps[i])
        assert a == b


@pytest.mark.parametrize(
    "hparams, message",
    [
        ({"tau": "sigmoid"}, "did you mean 'sigma'"),
        ({"normalize": "rescaled"}, "did you mean 'rescale'"),
        ({"loop": "triple"}, "loop"),
        ({"router": "vector", "input_dim": 8}, "no effect"),
        ({"penalty": 0}, "penalty"),
        ({"smooth_abs": -1}, "smooth_abs"),
    ],
)
def test_bad_hyper_parameters_are_named(hparams, message):
    with pytest.raises(ValueError, match=message):
        build_stage("ldc_mtl", tasks=TASKS, **hparams)
