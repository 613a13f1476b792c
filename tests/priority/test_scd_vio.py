"""SCD-VIO (seed 001): Algorithm 1 by hand, Lemma 3, Propositions 1-2, the Table 5 switches."""

from __future__ import annotations

import math

import pytest
import torch

from recsys_hmtl.priority import build_stage

TASKS = ("like", "finish", "comment")


def leaf_losses(values):
    return {t: torch.tensor(float(v), requires_grad=True) for t, v in zip(TASKS, values)}


def step(stage, values):
    """One call; returns (objective, [dObjective/dL_i], diagnostics)."""
    losses = leaf_losses(values)
    objective = stage(losses)
    objective.backward()
    return float(objective.detach()), [float(losses[t].grad) for t in TASKS], stage.diagnostics()


def test_objective_and_gradients_follow_algorithm_1_by_hand():
    stage = build_stage("scd_vio", tasks=TASKS, alpha=1.0)

    # Step 1, L = [0.8, 0.5, 0.3]. Welford means (this step included) ε = L, so r = 0.
    # g = [1, σ(0), σ(0)²] = [1, 0.5, 0.25]; A = 1 + softplus(0) = 1 + ln 2 = 1.693147.
    # Objective Σ g A L = 1.693147 · (0.8 + 0.5·0.5 + 0.25·0.3) = 1.693147 · 1.125 = 1.904791.
    # dObj/dL_k = g_k A_k + g_k L_k σ(r_k) − σ(r_k) Σ_{i>k} g_i A_i L_i   (∂r_k/∂L_k = 1, α = 1):
    #   L1: 1.693147 + 0.8·0.5 − 0.5·1.693147·(0.5·0.5 + 0.25·0.3) = 2.093147 − 0.275136 = 1.818011
    #   L2: 0.5·1.693147 + 0.5·0.5·0.5 − 0.5·0.25·1.693147·0.3 = 0.846574 + 0.125 − 0.063493 = 0.908081
    #   L3: 0.25·1.693147 + 0.25·0.3·0.5 = 0.423287 + 0.0375 = 0.460787
    obj, grads, diag = step(stage, [0.8, 0.5, 0.3])
    assert obj == pytest.approx(1.904791, abs=2e-6)
    assert grads == pytest.approx([1.818011, 0.908081, 0.460787], abs=2e-6)
    assert [diag[f"gate/{t}"] for t in TASKS] == pytest.approx([1.0, 0.5, 0.25])

    # Step 2, L = [0.6, 0.7, 0.1]: ε = [(0.8+0.6)/2, (0.5+0.7)/2, (0.3+0.1)/2] = [0.7, 0.6, 0.2],
    # r = [−0.1, 0.1, −0.1]; g = [1, σ(0.1), σ(0.1)·σ(−0.1)] = [1, 0.524979, 0.249376];
    # A = 1 + softplus(r) = [1.644397, 1.744397, 1.644397].
    # Objective = 1.644397·0.6 + 0.524979·1.744397·0.7 + 0.249376·1.644397·0.1
    #           = 0.986638 + 0.641041 + 0.041007 = 1.668686.
    #   L1: 1.644397 + 0.6·σ(−0.1) − σ(−0.1)·(0.641041 + 0.041007) = 1.605422
    #   L2: 0.524979·1.744397 + 0.524979·0.7·σ(0.1) − σ(0.1)·0.041007 = 1.087166
    #   L3: 0.249376·1.644397 + 0.249376·0.1·σ(−0.1) = 0.421919
    # Feasibility gap (B.3) = mean over i > 1 of max(0, r_i) = (0.1 + 0) / 2 = 0.05.
    obj, grads, diag = step(stage, [0.6, 0.7, 0.1])
    assert obj == pytest.approx(1.668686, abs=2e-6)
    assert grads == pytest.approx([1.605422, 1.087166, 0.421919], abs=2e-6)
    assert [diag[f"threshold/{t}"] for t in TASKS] == pytest.approx([0.7, 0.6, 0.2])
    assert [diag[f"residual/{t}"] for t in TASKS] == pytest.approx([-0.1, 0.1, -0.1], abs=1e-6)
    assert [diag[f"violation/{t}"] for t in TASKS] == pytest.approx(
        [1 / (1 + math.exp(0.1)), 1 / (1 + math.exp(-0.1)), 1 / (1 + math.exp(0.1))]
    )
    assert diag["feasibility_gap"] == pytest.approx(0.05, abs=1e-6)

    # Step 3, L = [0.9, 0.2, 0.4]: ε = [2.3/3, 1.4/3, 0.8/3] = [0.766667, 0.466667, 0.266667],
    # r = [0.133333, −0.266667, 0.133333]; g = [1, σ(−0.133333), σ(−0.133333)·σ(0.266667)]
    # = [1, 0.466716, 0.264289]; the same formulas give objective 1.918531 and
    # gradients [2.064566, 0.691820, 0.522063].
    obj, grads, _ = step(stage, [0.9, 0.2, 0.4])
    assert obj == pytest.approx(1.918531, abs=2e-6)
    assert grads == pytest.approx([2.064566, 0.691820, 0.522063], abs=2e-6)


def random_sequence(steps, seed, scale=(1.0, 1.0, 1.0)):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(steps, len(TASKS), generator=g) + 0.05
    return base * torch.tensor(scale)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 5.0])
def test_lemma_3_exponential_suppression(alpha):
    """Eq. 18: an infeasible upstream task k (r_k > 0) caps every later gate at exp(−r_k/α)."""
    stage = build_stage("scd_vio", tasks=TASKS, alpha=alpha)
    checked = 0
    for row in random_sequence(40, seed=1):
        _, _, diag = step(stage, row.tolist())
        r = [diag[f"residual/{t}"] for t in TASKS]
        gates = [diag[f"gate/{t}"] for t in TASKS]
        for k in range(len(TASKS)):
            if r[k] > 0:
                for i in range(k + 1, len(TASKS)):
                    assert gates[i] <= math.exp(-r[k] / alpha) + 1e-7
                    checked += 1
    assert checked > 10


@pytest.mark.parametrize(
    "threshold, options", [("mean", {}), ("ema", {"ema_decay": 0.8}), ("median", {"window": 5})]
)
def test_proposition_1_scale_invariance_of_feasibility(threshold, options):
    """Eq. 20: scaling L_i by c_i > 0 scales ε_i and r_i by c_i, so the sign of r_i is unchanged."""
    c = (3.0, 0.01, 250.0)
    plain = build_stage("scd_vio", tasks=TASKS, threshold=threshold, **options)
    scaled = build_stage("scd_vio", tasks=TASKS, threshold=threshold, **options)
    for row in random_sequence(12, seed=2):
        _, _, d = step(plain, row.tolist())
        _, _, ds = step(scaled, (row * torch.tensor(c)).tolist())
        for t, ci in zip(TASKS, c):
            assert ds[f"residual/{t}"] == pytest.approx(ci * d[f"residual/{t}"], rel=1e-4, abs=1e-6 * ci)
            assert (ds[f"residual/{t}"] <= 0) == (d[f"residual/{t}"] <= 0)


def test_fixed_thresholds_are_not_scale_invariant():
    """Table 5 discussion: a fixed manual threshold is sensitive to the scale of the loss."""
    plain = build_stage("scd_vio", tasks=TASKS, threshold="fixed", fixed_thresholds=[0.5, 0.5, 0.5])
    scaled = build_stage("scd_vio", tasks=TASKS, threshold="fixed", fixed_thresholds=[0.5, 0.5, 0.5])
    _, _, d = step(plain, [0.4, 0.4, 0.4])
    _, _, ds = step(scaled, [4.0, 4.0, 4.0])
    assert d["residual/like"] < 0 < ds["residual/like"]


@pytest.mark.parametrize("margin", [1.0, 3.0, 8.0])
def test_proposition_2_graceful_deactivation(margin):
    """Eq. 31: with every r_j <= −m, |L_SCD − Σ L_i| <= C·exp(−m/α), C = K·Σ L_i here
    (g_i >= (1 − e^{−m/α})^{i−1} and 1 <= 1 + softplus(r_i/α) <= 1 + e^{−m/α})."""
    stage = build_stage("scd_vio", tasks=TASKS, alpha=1.0)
    current = [0.3, 0.2, 0.1]
    # With the mean threshold, r = (b − a)/2 after losses a then b: a = b + 2m gives r = −m.
    step(stage, [b + 2 * margin for b in current])
    obj, _, diag = step(stage, current)
    assert all(diag[f"residual/{t}"] == pytest.approx(-margin, abs=1e-5) for t in TASKS)
    bound = len(TASKS) * sum(current) * math.exp(-margin)
    assert abs(obj - sum(current)) <= bound
    assert abs(obj - sum(current)) > 0.05 * bound  # the bound is tight in order of magnitude


def test_gate_ablations_of_table_5():
    losses_then = [[0.5, 0.5, 0.5], [0.9, 0.1, 0.9]]  # step 2: r = [0.2, −0.2, 0.2]
    r = [0.2, -0.2, 0.2]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = {
        "recursive": [1.0, sig(-0.2), sig(-0.2) * sig(0.2)],
        "independent": [1.0, sig(0.2), sig(-0.2)],
        "none": [1.0, 1.0, 1.0],
    }
    for gate, gates in expected.items():
        stage = build_stage("scd_vio", tasks=TASKS, gate=gate)
        for values in losses_then:
            _, _, diag = step(stage, values)
        assert [diag[f"residual/{t}"] for t in TASKS] == pytest.approx(r, abs=1e-6)
        assert [diag[f"gate/{t}"] for t in TASKS] == pytest.approx(gates, abs=1e-6)


def test_penalty_off_gives_gated_sum():
    stage = build_stage("scd_vio", tasks=TASKS, softplus_penalty=False)
    step(stage, [0.5, 0.5, 0.5])
    obj, grads, diag = step(stage, [0.9, 0.1, 0.9])
    # Σ g_i L_i with g = [1, σ(−0.2), σ(−0.2)σ(0.2)] = [1, 0.450166, 0.247517]:
    # 0.9 + 0.045017 + 0.222765 = 1.167782; dObj/dL3 = g_3 = 0.247517.
    assert obj == pytest.approx(1.167782, abs=2e-6)
    assert grads[2] == pytest.approx(0.247517, abs=2e-6)
    assert [diag[f"weight/{t}"] for t in TASKS] == pytest.approx([diag[f"gate/{t}"] for t in TASKS])


def test_ema_and_windowed_median_thresholds():
    ema = build_stage("scd_vio", tasks=TASKS, threshold="ema", ema_decay=0.5)
    median = build_stage("scd_vio", tasks=TASKS, threshold="median", window=3)
    for values in ([1.0, 1.0, 1.0], [3.0, 2.0, 0.0], [2.0, 9.0, 4.0], [8.0, 8.0, 8.0]):
        _, _, de = step(ema, values)
        _, _, dm = step(median, values)
    # EMA started at the first value: 1 → 2 → 2 → 5 (like); 1 → 1.5 → 5.25 → 6.625 (finish).
    assert de["threshold/like"] == pytest.approx(5.0)
    assert de["threshold/finish"] == pytest.approx(6.625)
    # Median of the last 3 steps only: like {3, 2, 8} → 3; comment {0, 4, 8} → 4.
    assert dm["threshold/like"] == pytest.approx(3.0)
    assert dm["threshold/comment"] == pytest.approx(4.0)


def test_single_task_is_plain_penalised_loss():
    stage = build_stage("scd_vio", tasks=["like"])
    objective = stage({"like": torch.tensor(0.4)})
    assert float(objective) == pytest.approx(0.4 * (1 + math.log(2)))
    assert stage.diagnostics()["feasibility_gap"] == 0.0


@pytest.mark.parametrize(
    "hparams, message",
    [
        ({"gate": "recursiv"}, "did you mean 'recursive'"),
        ({"threshold": "fixed"}, "needs fixed_thresholds"),
        ({"window": 10}, "no effect"),
        ({"threshold": "ema", "ema_decay": 1.5}, "ema_decay"),
        ({"alpha": 0.0}, "alpha"),
        ({"threshold": "fixed", "fixed_thresholds": [0.1, 0.2]}, "2 values for 3 tasks"),
    ],
)
def test_bad_hyper_parameters_are_named(hparams, message):
    with pytest.raises(ValueError, match=message):
        build_stage("scd_vio", tasks=TASKS, **hparams)
