"""The named variants that make the seed stages act at real BCE loss scales (issue 11):
``scd_vio`` ``alpha="auto"``, ``hb_aho`` ``scale="relative"``, ``getmtl`` ``eps_mode="relative"``.

"Acting" is judged as in training (``priority/acting.py``): per step the ``weight/<task>``
diagnostics normalised to sum 1; over the last 200 steps some task's interquartile range must exceed
0.1/K. The loss sequences are BCE-sized: 8 tasks with positive rates 0.4 .. 0.002, each step's loss
the BCE of a batch of 1024 labels drawn at the task's rate against a prediction that starts
over-confident and slowly drifts to the rate (so losses carry batch noise and a slow downward drift).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from recsys_hmtl.priority import NonFiniteLossError, build_stage
from recsys_hmtl.priority.acting import WeightWindow

TASKS = ("click", "long_view", "like", "follow", "comment", "forward", "profile", "hate")
RATES = (0.4, 0.2, 0.05, 0.02, 0.01, 0.005, 0.003, 0.002)
F64 = torch.float64


def bce_losses(steps: int = 400, batch: int = 1024, seed: int = 0) -> torch.Tensor:
    """[steps, K] batch BCE losses: labels ~ Bernoulli(p_i), prediction q_i(t) = p_i (1 + e^{−t/150})."""
    g = torch.Generator().manual_seed(seed)
    p = torch.tensor(RATES, dtype=F64)
    out = []
    for t in range(steps):
        positives = torch.binomial(torch.full((len(p),), float(batch), dtype=F64), p, generator=g)
        frac = positives / batch
        q = (p * (1.0 + math.exp(-t / 150.0))).clamp(max=0.99)
        out.append(-(frac * q.log() + (1 - frac) * (1 - q).log()))
    return torch.stack(out).float()


SEQUENCE = bce_losses()


def as_losses(row, requires_grad: bool = True) -> dict[str, torch.Tensor]:
    return {t: torch.tensor(float(v), requires_grad=requires_grad) for t, v in zip(TASKS, row)}


def run_scalar(stage, rows, end_epoch_every: int | None = None):
    """Drive a scalarising stage over ``rows``; returns (acting summary, [steps, K] raw weights)."""
    window = WeightWindow(TASKS)
    weights = []
    for i, row in enumerate(rows):
        stage(as_losses(row)).backward()
        diag = stage.diagnostics()
        window.observe(diag)
        weights.append([diag[f"weight/{t}"] for t in TASKS])
        if end_epoch_every and i % end_epoch_every == end_epoch_every - 1:
            stage.end_epoch()
    return window.summary(), torch.tensor(weights, dtype=F64)


def test_the_sequence_is_bce_sized():
    last = SEQUENCE[-200:]
    assert 0.6 < float(last[:, 0].mean()) < 0.75  # H(0.4) = 0.673
    assert 0.005 < float(last[:, -1].mean()) < 0.03  # H(0.002) = 0.014
    assert float(last[:, -1].std()) > 0.2 * float(last[:, -1].mean())  # rare tasks: heavy noise


# ------------------------------------------------------------------------------------ SCD-VIO


def test_scd_vio_paper_alpha_does_not_act_and_auto_does():
    paper, w_paper = run_scalar(build_stage("scd_vio", tasks=TASKS), SEQUENCE)
    auto, w_auto = run_scalar(build_stage("scd_vio", tasks=TASKS, alpha="auto"), SEQUENCE)
    assert paper["acting"] is False
    # α = 1: each gate factor σ(−r/1) ≈ 0.5 for BCE-sized residuals: a fixed ≈ 0.5^(i−1) weighting
    ratios = w_paper[-200:, 1:] / w_paper[-200:, :-1]
    assert float((ratios - 0.5).abs().max()) < 0.05
    assert auto["acting"] is True
    assert auto["max_spread"] > 3 * auto["threshold"]
    assert bool(torch.isfinite(w_auto).all()) and float(w_auto.min()) > 0
    assert float(w_auto.max()) < 10.0  # g_i ≤ 1 and 1 + softplus(z) for z-scores of a few units


def test_scd_vio_auto_alpha_is_the_running_spread():
    stage = build_stage("scd_vio", tasks=TASKS, alpha="auto")
    rows = SEQUENCE[:30]
    stage(as_losses(rows[0]))
    diag = stage.diagnostics()
    assert [diag[f"alpha/{t}"] for t in TASKS] == [1.0] * len(TASKS)  # one step: no spread yet
    for n in range(2, len(rows) + 1):
        stage(as_losses(rows[n - 1]))
    diag = stage.diagnostics()
    expected = rows.double().std(dim=0, unbiased=True)  # this step included
    assert [diag[f"alpha/{t}"] for t in TASKS] == pytest.approx(expected.tolist(), rel=1e-5)
    # the gates and the violation map use α_i: p_i = σ(r_i/α_i)
    for t, a in zip(TASKS, expected.tolist()):
        assert diag[f"violation/{t}"] == pytest.approx(1 / (1 + math.exp(-diag[f"residual/{t}"] / a)), rel=1e-5)


def test_scd_vio_auto_two_steps_by_hand():
    tasks = ("a", "b", "c")
    stage = build_stage("scd_vio", tasks=tasks, alpha="auto")
    stage({t: torch.tensor(v) for t, v in zip(tasks, [0.5, 0.5, 0.5])})
    # Step 2, L = [0.9, 0.1, 0.9]: ε = [0.7, 0.3, 0.7], r = [0.2, −0.2, 0.2],
    # α = sample std of {0.5, 0.9} etc. = 0.4/√2 = 0.282843 for every task, r/α = ±0.707107.
    losses = {t: torch.tensor(v, requires_grad=True) for t, v in zip(tasks, [0.9, 0.1, 0.9])}
    objective = stage(losses)
    z = 0.2 / (0.4 / math.sqrt(2))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    gates = [1.0, sig(-z), sig(-z) * sig(z)]
    weights = [gates[0] * (1 + sp(z)), gates[1] * (1 + sp(-z)), gates[2] * (1 + sp(z))]
    diag = stage.diagnostics()
    assert [diag[f"gate/{t}"] for t in tasks] == pytest.approx(gates, rel=1e-5)
    assert [diag[f"weight/{t}"] for t in tasks] == pytest.approx(weights, rel=1e-5)
    assert float(objective) == pytest.approx(sum(w * v for w, v in zip(weights, [0.9, 0.1, 0.9])), rel=1e-5)


def test_scd_vio_auto_weights_are_detached():
    """With α_i ~ the batch spread, gate derivatives ~ 1/α_i would dominate (and reward raising an
    upstream loss): in auto mode each task's gradient is exactly its weight, never negative."""
    stage = build_stage("scd_vio", tasks=TASKS, alpha="auto")
    for row in SEQUENCE[:60]:
        losses = as_losses(row)
        stage(losses).backward()
        diag = stage.diagnostics()
        for t in TASKS:
            assert float(losses[t].grad) == pytest.approx(diag[f"weight/{t}"], rel=1e-6)
            assert float(losses[t].grad) > 0


@pytest.mark.parametrize("name,options,quantity,steps", [
    ("scd_vio", {"alpha": "auto"}, "gate", 40),       # Proposition 1: r_i and α_i scale alike
    ("hb_aho", {"scale": "relative"}, "weight", 60),  # thresholds and x = L/ε − 1 scale alike
])
def test_acting_variants_are_scale_free(name, options, quantity, steps):
    """L_i → c_i L_i leaves the acting variants' gates / weights unchanged."""
    c = torch.tensor([3.0, 0.01, 250.0, 1.0, 7.0, 0.5, 2.0, 40.0])
    plain = build_stage(name, tasks=TASKS, **options)
    scaled = build_stage(name, tasks=TASKS, **options)
    for row in SEQUENCE[:steps]:
        plain(as_losses(row))
        scaled(as_losses(row * c))
        d, ds = plain.diagnostics(), scaled.diagnostics()
        for t in TASKS:
            assert ds[f"{quantity}/{t}"] == pytest.approx(d[f"{quantity}/{t}"], rel=2e-4, abs=1e-6)


# ------------------------------------------------------------------------------------- HB-AHO


def test_hb_aho_paper_does_not_act_and_relative_does():
    paper, w_paper = run_scalar(build_stage("hb_aho", tasks=TASKS), SEQUENCE)
    rel, w_rel = run_scalar(build_stage("hb_aho", tasks=TASKS, scale="relative"), SEQUENCE)
    assert paper["acting"] is False
    downstream = w_paper[:, 1:]
    assert float(downstream.min()) > 0.5 and float(downstream.max()) <= 0.59  # (0.5, 0.59]
    assert rel["acting"] is True
    assert rel["max_spread"] > 3 * rel["threshold"]
    # bounded: first task's weight φ_1 in [0, 1], downstream 1/(1 + φ) in [0.5, 1]
    assert bool(torch.isfinite(w_rel).all())
    assert 0.0 <= float(w_rel[:, 0].min()) and float(w_rel[:, 0].max()) <= 1.0
    assert 0.5 <= float(w_rel[:, 1:].min()) and float(w_rel[:, 1:].max()) <= 1.0
    # and they really move over that range (the paper's weights never leave (0.5, 0.59])
    assert float(w_rel[-200:, 1:].max()) > 0.9 and float(w_rel[-200:, 1:].min()) < 0.55


def test_hb_aho_relative_thresholds_track_the_median():
    stage = build_stage("hb_aho", tasks=TASKS, scale="relative")
    satisfied = []
    for row in SEQUENCE:
        stage(as_losses(row))
        satisfied.append([stage.diagnostics()[f"satisfied/{t}"] for t in TASKS])
    rate = torch.tensor(satisfied[-200:]).mean(0)
    assert bool(((rate > 0.3) & (rate < 0.7)).all()), rate  # two-sided Eq. 5: P(L <= ε) ≈ ½


def test_hb_aho_relative_by_hand():
    tasks = ("a", "b", "c")
    stage = build_stage("hb_aho", tasks=tasks, scale="relative")  # eps0 = 1.0, γ = 0.95, s = 3

    def weights():
        d = stage.diagnostics()
        return [d[f"weight/{t}"] for t in tasks]

    # Step 1: ε = 1.0 · L = [0.6, 0.02, 0.004], x = 0: φ = tanh(1) = 0.761594 for all;
    # weights [0.761594, 1/1.761594 = 0.567668, 0.567668]; all satisfied: ε ← 0.95 ε.
    stage({t: torch.tensor(v) for t, v in zip(tasks, [0.6, 0.02, 0.004])})
    assert weights() == pytest.approx([0.761594, 0.567668, 0.567668], abs=1e-6)
    assert stage.eps.tolist() == pytest.approx([0.57, 0.019, 0.0038])
    # Step 2, L = [0.57·0.8, 0.019·1.5, 0.0038]: x = [−0.2, 0.5, 0]:
    # φ1 = tanh(0.4) = 0.379949, φ2 = tanh(2.5) = 0.986614;
    # weights [0.379949, 1/1.379949 = 0.724664, 1/1.986614 = 0.503369];
    # a, c satisfied (ε ← 0.95 ε), b violated: ε ← ε/0.95 (two-sided Eq. 5).
    stage({t: torch.tensor(v) for t, v in zip(tasks, [0.456, 0.0285, 0.0038])})
    assert weights() == pytest.approx([0.379949, 0.724664, 0.503369], abs=1e-5)
    assert stage.eps.tolist() == pytest.approx([0.5415, 0.02, 0.00361])
    # Step 3, L = [0.1, 0.02, 0.05]: x1 = 0.1/0.5415 − 1 = −0.815 < −1/3: φ1 clamps at 0,
    # so the first weight is 0 and the next one 1 (never the tanh(1 − 3·0.815) ≈ −0.89 → 9.3).
    stage({t: torch.tensor(v) for t, v in zip(tasks, [0.1, 0.02, 0.05])})
    assert weights()[:2] == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("barrier", ["tanh", "sigmoid", "gaussian", "softplus", "exp", "quadratic", "cubic"])
def test_hb_aho_relative_weights_stay_bounded_for_every_barrier(barrier):
    stage = build_stage("hb_aho", tasks=TASKS, scale="relative", barrier=barrier)
    rows = torch.cat([SEQUENCE[:100], SEQUENCE[:5] * 1e4, SEQUENCE[:5] * 1e-6])  # extreme jumps
    _, w = run_scalar(stage, rows)
    assert bool(torch.isfinite(w).all())
    assert float(w[:, 0].min()) >= 0.0 and float(w[:, 0].max()) <= 1.0
    assert float(w[:, 1:].min()) >= 0.5 and float(w[:, 1:].max()) <= 1.0


def test_hb_aho_relative_epoch_mode_steps_once_per_epoch():
    stage = build_stage("hb_aho", tasks=("a", "b"), scale="relative", update="epoch")
    stage({"a": torch.tensor(0.4), "b": torch.tensor(0.1)})  # ε = [0.4, 0.1]
    stage({"a": torch.tensor(0.2), "b": torch.tensor(0.3)})
    assert stage.eps.tolist() == pytest.approx([0.4, 0.1])  # nothing moves inside the epoch
    stage.end_epoch()  # epoch means [0.3, 0.2]: a satisfied (×0.95), b violated (÷0.95)
    assert stage.eps.tolist() == pytest.approx([0.38, 0.1 / 0.95])


# ------------------------------------------------------------------------------------- GetMTL


def linear_coeffs(jac: torch.Tensor, **hparams) -> tuple[list[float], dict[str, float]]:
    tasks = [f"t{i}" for i in range(jac.shape[0])]
    stage = build_stage("getmtl", tasks=tasks, **hparams)
    x = torch.zeros(jac.shape[1], dtype=F64, requires_grad=True)
    stage.backward({t: jac[i] @ x + 0.5 for i, t in enumerate(tasks)}, shared=[x])
    diag = stage.diagnostics()
    return [diag[f"weight/{t}"] for t in tasks], diag


CONFLICT = torch.tensor(  # pairwise conflicting directions of different sizes
    [[1.0, 0.2, 0.0, 0.1], [-0.8, 1.0, 0.3, 0.0], [0.1, -0.9, 1.2, 0.0], [0.0, 0.0, -1.0, 0.6]], dtype=F64
)


def test_getmtl_relative_acts_where_absolute_is_plain_averaging():
    k = CONFLICT.shape[0]
    small = CONFLICT * 1e-2  # BCE-sized gradient norms
    absolute, diag_abs = linear_coeffs(small)
    assert max(abs(c - 1 / k) for c in absolute) < 1e-3 / k  # ≈ 1/K: the correction is ~ε‖g0‖
    assert diag_abs["relative_correction"] < 1e-3
    relative, diag_rel = linear_coeffs(small, eps_mode="relative")
    normalised = torch.tensor(relative) / sum(relative)
    assert float((normalised - 1 / k).abs().max()) > 0.15 / k  # a material departure from 1/K
    assert diag_rel["relative_correction"] == 0.5 and diag_rel["guard"] == 0.0
    assert diag_rel["constraint_denominator"] == pytest.approx(0.75)  # 1 − ε², ε = 0.5
    # scale-free: the same coefficients whatever the gradient scale
    big, _ = linear_coeffs(CONFLICT * 1e3, eps_mode="relative")
    assert big == pytest.approx(relative, rel=1e-9)


def test_getmtl_relative_is_absolute_with_eps_over_g0_norm():
    """ε_eff = ε/‖g_0‖ in Algorithm 1: the relative mode equals the paper's with that ε."""
    g0_norm = float(CONFLICT.mean(0).norm())
    relative, _ = linear_coeffs(CONFLICT, eps_mode="relative", eps=0.3)
    absolute, _ = linear_coeffs(CONFLICT, eps=0.3 / g0_norm)
    assert relative == pytest.approx(absolute, rel=1e-9)


def test_getmtl_relative_correction_has_size_eps():
    jac = CONFLICT * 0.03
    coeffs, _ = linear_coeffs(jac, eps_mode="relative", eps=0.2)
    d = torch.tensor(coeffs, dtype=F64) @ jac
    g0 = jac.mean(0)
    # d (1 − ε²) − g0 = ε‖g0‖ g_w/‖g_w‖
    assert float((d * (1 - 0.04) - g0).norm()) == pytest.approx(0.2 * float(g0.norm()), rel=1e-9)


def test_getmtl_acting_over_a_run_of_conflicting_gradients():
    # Note: where MGDA gives some β_i = 0, g_βi = 0 is a vertex with J = 0 and d is the centre
    # g_0/(1 − ε²) in either mode (uniform weights; the paper's own degenerate case, Eq. 13 with
    # λ* = 0); the perturbed CONFLICT problem keeps every β_i > 0 on most steps.
    g = torch.Generator().manual_seed(3)
    k = CONFLICT.shape[0]
    tasks = [f"t{i}" for i in range(k)]
    windows = {mode: WeightWindow(tasks) for mode in ("absolute", "relative")}
    stages = {mode: build_stage("getmtl", tasks=tasks, eps_mode=mode) for mode in windows}
    for _ in range(200):
        jac = (CONFLICT + 0.2 * torch.randn(k, 4, generator=g, dtype=F64)) * 1e-2
        for mode, stage in stages.items():
            x = torch.zeros(4, dtype=F64, requires_grad=True)
            stage.backward({t: jac[i] @ x for i, t in enumerate(tasks)}, shared=[x])
            windows[mode].observe(stage.diagnostics())
    assert windows["absolute"].summary()["acting"] is False
    assert windows["relative"].summary()["acting"] is True


def test_getmtl_relative_with_zero_gradients_has_no_correction():
    coeffs, diag = linear_coeffs(torch.zeros(3, 4, dtype=F64), eps_mode="relative")
    assert coeffs == pytest.approx([1 / 3 / 0.75] * 3)  # g_0/(1 − ε²), no division by ‖g_0‖ = 0
    assert diag["relative_correction"] == 0.0


# ------------------------------------------------------------ state, defaults, option validation

VARIANTS = [
    ("scd_vio", {"alpha": "auto"}),
    ("scd_vio", {"alpha": "auto", "gate": "independent", "threshold": "ema"}),
    ("hb_aho", {"scale": "relative"}),
    ("hb_aho", {"scale": "relative", "update": "epoch"}),
]


@pytest.mark.parametrize("name, hparams", VARIANTS)
def test_state_dict_round_trip_resumes_exactly(name, hparams):
    stage = build_stage(name, tasks=TASKS, **hparams)
    for i, row in enumerate(SEQUENCE[:50]):
        stage(as_losses(row))
        if i % 20 == 19:
            stage.end_epoch()
    checkpoint = copy.deepcopy(stage.state_dict())
    resumed = build_stage(name, tasks=TASKS, **hparams)
    resumed.load_state_dict(checkpoint)
    for i, row in enumerate(SEQUENCE[50:90], start=50):
        losses, losses_r = as_losses(row), as_losses(row)
        out, out_r = stage(losses), resumed(losses_r)
        out.backward()
        out_r.backward()
        assert torch.equal(out.detach(), out_r.detach())
        assert stage.diagnostics() == resumed.diagnostics()
        assert all(torch.equal(losses[t].grad, losses_r[t].grad) for t in TASKS)
        if i % 20 == 19:
            stage.end_epoch()
            resumed.end_epoch()


def test_new_buffers_are_in_the_state_dict_and_only_in_their_mode():
    auto = build_stage("scd_vio", tasks=TASKS, alpha="auto").state_dict()
    assert {"spread.count", "spread.mean", "spread.m2"} <= set(auto)
    assert not any(k.startswith("spread.") for k in build_stage("scd_vio", tasks=TASKS).state_dict())
    assert "started" in build_stage("hb_aho", tasks=TASKS, scale="relative").state_dict()
    assert "started" not in build_stage("hb_aho", tasks=TASKS).state_dict()  # old checkpoints load


@pytest.mark.parametrize("name, hparams", VARIANTS)
def test_non_finite_loss_is_refused_before_any_state_changes(name, hparams):
    stage = build_stage(name, tasks=TASKS, **hparams)
    for row in SEQUENCE[:3]:
        stage(as_losses(row))
    before = copy.deepcopy(stage.state_dict())
    bad = as_losses(SEQUENCE[3])
    bad["like"] = torch.tensor(float("nan"))
    with pytest.raises(NonFiniteLossError, match="'like'"):
        stage(bad)
    after = stage.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_first_step_nan_leaves_relative_thresholds_unset():
    stage = build_stage("hb_aho", tasks=TASKS, scale="relative")
    bad = as_losses(SEQUENCE[0])
    bad["hate"] = torch.tensor(float("inf"))
    with pytest.raises(NonFiniteLossError):
        stage(bad)
    assert not bool(stage.started) and stage.eps.tolist() == [1.0] * len(TASKS)


def test_defaults_are_the_papers():
    assert build_stage("scd_vio", tasks=TASKS).alpha == 1.0
    hb = build_stage("hb_aho", tasks=TASKS)
    assert hb.scale == "absolute" and hb.eps.tolist() == pytest.approx([0.05] * len(TASKS))
    getmtl = build_stage("getmtl", tasks=TASKS)
    assert getmtl.eps_mode == "absolute" and getmtl.eps == 0.0075
    assert build_stage("getmtl", tasks=TASKS, eps_mode="relative").eps == 0.5
    assert build_stage("hb_aho", tasks=TASKS, scale="relative").eps.tolist() == [1.0] * len(TASKS)


@pytest.mark.parametrize(
    "name, hparams, message",
    [
        ("scd_vio", {"alpha": "autoo"}, r"scd_vio.*alpha.*'auto'"),
        ("scd_vio", {"alpha": "Auto"}, r"scd_vio.*alpha"),
        ("scd_vio", {"alpha": -1.0}, r"scd_vio.*alpha"),
        ("hb_aho", {"scale": "relativ"}, r"hb_aho.*scale.*did you mean 'relative'"),
        ("hb_aho", {"scale": "relative", "eps0": 0.0}, r"hb_aho.*eps0"),
        ("hb_aho", {"scale": "relative", "decay": 1.5}, r"hb_aho.*decay"),
        ("getmtl", {"eps_mode": "rel"}, r"getmtl.*eps_mode"),
        ("getmtl", {"eps_mode": "relative", "eps": 1.0}, r"getmtl.*eps must lie in \(0, 1\)"),
        ("getmtl", {"eps_mode": "relative", "eps": -0.1}, r"getmtl.*eps"),
    ],
)
def test_bad_option_values_name_the_stage_and_key(name, hparams, message):
    with pytest.raises(ValueError, match=message):
        build_stage(name, tasks=TASKS, **hparams)


def test_getmtl_positive_beta_support_leaves_the_degenerate_vertex():
    """Where MGDA gives a task β_i = 0, the paper's w sits at that task (g_w = 0, plain average);
    beta_support='positive' optimises over the tasks MGDA keeps, so the correction acts."""
    from recsys_hmtl.priority import build_stage

    # Task c's gradient is dominated (β_c = 0 in the min-norm combination of a, b, c).
    gram = torch.tensor([[1.0, -0.2, 0.9], [-0.2, 1.0, 0.7], [0.9, 0.7, 2.0]], dtype=torch.float64)
    tasks = ["a", "b", "c"]
    losses = torch.zeros(3, dtype=torch.float64)
    paper = build_stage("getmtl", tasks=tasks, eps_mode="relative")
    kept = build_stage("getmtl", tasks=tasks, eps_mode="relative", beta_support="positive")
    paper.combine(gram, losses)
    beta = torch.tensor([paper.diagnostics()[f"beta/{t}"] for t in tasks])
    assert beta[2] == 0 and beta[:2].min() > 0
    uniform = torch.full((3,), 1 / 3, dtype=torch.float64) / (1 - 0.5**2)
    assert torch.allclose(paper.combine(gram, losses), uniform)
    coeffs = kept.combine(gram, losses)
    assert (coeffs - uniform).abs().max() > 0.05
    assert kept.diagnostics()["trade_off/c"] == 0.0
    with pytest.raises(ValueError, match="beta_support"):
        build_stage("getmtl", tasks=tasks, beta_support="some")
