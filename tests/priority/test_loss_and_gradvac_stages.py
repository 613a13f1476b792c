"""The ``si``, ``stch`` and ``gradvac`` stages against their reference code (issue 17).

Golden values were produced by running the reference code itself, unmodified, in float64
(``torch.set_default_dtype(torch.float64)``), through a small harness (scratch script
``/tmp/ref/golden_libmtl.py``, kept out of the project):

* LibMTL, median-research-group/LibMTL @ 4336804847eaa5e0b924b743d76beec7ac3fdc97:
  ``LibMTL/weighting/STCH.py`` (``STCH.backward(losses, STCH_mu, STCH_warmup_epoch)`` with
  ``self.epoch`` set per step and ``losses`` a leaf tensor: golden = the value it back-propagates
  and ``losses.grad``) and ``LibMTL/weighting/GradVac.py`` (+ ``abstract_weighting.py``;
  ``GradVac.backward`` with one shared parameter x = 0 ∈ R^D and losses L_i = J_i·x + 5, so
  ``x.grad`` is the GradVac direction; golden = ``x.grad`` and ``rho_T`` after each step; the
  orders drawn by ``random.shuffle`` after ``random.seed(7)`` were recorded and are injected here).
  The Jacobians are ``torch.randn`` draws from ``torch.Generator().manual_seed(2024)``: first
  four 2 x 3, then five 3 x 4.
* nash-mtl, AvivNavon/nash-mtl @ cce18403ef5557a6b30f4ba43b896117107d6902:
  ``methods/weight_methods.py``, ``ScaleInvariantLinearScalarization(...).backward(losses)``
  (cvxpy stubbed: unused by this class).
* TorchJD, the torchjd 0.18.0 wheel from PyPI: ``torchjd/scalarization/_stch.py`` (``STCH`` with a
  preference, for the preference path LibMTL lacks) and ``torchjd/aggregation/_gradvac.py``
  (``GradVacWeighting``, fed the same Gram matrices and orders, agrees with LibMTL to 2e-15: a
  cross-check, not a separate golden).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from recsys_hmtl.priority import NonFiniteLossError, available_stages, build_stage
from recsys_hmtl.priority.registry import STAGES
from recsys_hmtl.priority.support import StageProfile

F64 = torch.float64
# Tolerances (relative): every golden is a float64 run of the same formulas, so they differ only by
# round-off in the order of operations (observed: SI 0, STCH <= 1e-15, GradVac <= 1e-15 of the
# direction's norm, whose Gram-matrix arithmetic replaces LibMTL's dot products of full vectors).
TOL_SI = 1e-15       # one log and one division per task
TOL_STCH = 1e-14     # logs, log-sum-exp, softmax over up to 7 steps
TOL_GRADVAC = 1e-13  # up to 5 steps of EMA and closed-form corrections (abs 1e-14 for entries near 0)


def tasks_for(k: int) -> list[str]:
    return [f"t{i}" for i in range(k)]


def leaf_losses(values) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The losses as one leaf vector (its .grad is ∂objective/∂L) and the per-task dict."""
    vec = torch.tensor(values, dtype=F64, requires_grad=True)
    return {t: vec[i] for i, t in enumerate(tasks_for(len(values)))}, vec


# ---------------------------------------------------------------------------------------- si
SI_GOLDEN = [
    # (losses, weights, value, ∂value/∂L)  nash-mtl ScaleInvariantLinearScalarization
    ([0.7, 0.2], None, -1.9661128563728327, [1.4285714285714286, 5.0]),
    ([1.5, 0.05, 0.3], [0.5, 1.0, 2.0], -5.20094532815178,
     [0.3333333333333333, 20.0, 6.666666666666667]),
]


@pytest.mark.parametrize("values, weights, value, grad", SI_GOLDEN)
def test_si_matches_nash_mtl(values, weights, value, grad):
    hp = {} if weights is None else {"weights": weights}
    stage = build_stage("si", tasks_for(len(values)), **hp)
    losses, vec = leaf_losses(values)
    out = stage(losses)
    out.backward()
    assert float(out.detach()) == pytest.approx(value, rel=TOL_SI)
    assert vec.grad.tolist() == pytest.approx(grad, rel=TOL_SI)
    diag = stage.diagnostics()
    assert [diag[f"weight/t{i}"] for i in range(len(values))] == pytest.approx(grad, rel=1e-6)


def test_si_is_scale_invariant():
    x = torch.tensor([0.3, -0.2], dtype=F64, requires_grad=True)
    stage = build_stage("si", ["a", "b"])

    def grad(scale: float) -> torch.Tensor:
        x.grad = None
        stage({"a": (x**2).sum() + 0.5, "b": scale * ((x - 1) ** 2).sum()}).backward()
        return x.grad.clone()

    assert torch.allclose(grad(1.0), grad(1000.0), rtol=1e-12, atol=0)


def test_si_refuses_negative_losses():
    stage = build_stage("si", ["a", "b"])
    with pytest.raises(ValueError, match=r"needs every loss >= 0.*'b'"):
        stage({"a": torch.tensor(1.0), "b": torch.tensor(-0.5)})


def test_si_skips_a_loss_that_underflowed_to_zero():
    """A BCE of exactly 0.0 (float32 underflow on a rare task) adds nothing that step; the others
    keep their scale-invariant gradient."""
    x = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    stage = build_stage("si", ["a", "b"])
    a = (x**2).sum() + 0.5
    objective = stage({"a": a, "b": 0.0 * x.sum()})
    objective.backward()
    assert torch.isfinite(objective) and float(objective) == pytest.approx(float(torch.log(a)))
    assert torch.allclose(x.grad, 2 * x.detach() / float(a))
    assert stage.diagnostics()["weight/b"] == 0.0


def test_si_refuses_non_finite_losses_first():
    with pytest.raises(NonFiniteLossError, match="'a'"):
        build_stage("si", ["a", "b"])({"a": torch.tensor(float("nan")), "b": torch.tensor(1.0)})


@pytest.mark.parametrize("weights, match", [
    ([1.0, -1.0], "weights must be >= 0"),
    ([1.0], "has 1 values for 2 tasks"),
    ({"a": 1.0}, "missing"),
    ([1.0, float("inf")], "not finite"),
])
def test_si_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        build_stage("si", ["a", "b"], weights=weights)


# -------------------------------------------------------------------------------------- stch
# (epoch, losses, LibMTL's back-propagated value, ∂/∂L) per step; end_epoch() between epochs.
STCH_A = dict(mu=1.0, warmup_epoch=1, normalizer=[0.6, 0.4], steps=[
    (0, [0.9, 0.4], -1.0216512475319812, [1.1111111111111112, 2.5]),
    (0, [0.8, 0.5], -0.916290731874155, [1.25, 2.0]),
    (1, [0.7, 0.3], -1.5606477482646686, [1.4285714285714286, 3.3333333333333335]),
    (1, [0.5, 0.5], -1.3862943611198906, [2.0, 2.0]),
    (2, [0.4, 0.2], 1.1192315758708453, [2.8571428571428568, 4.285714285714285]),
    (2, [0.65, 0.15], 0.5945030469358631, [2.2857142857142856, 3.428571428571428]),
    (3, [0.3, 0.35], 0.9039702474861148, [2.424242424242424, 3.636363636363636]),
])
STCH_B = dict(mu=0.5, warmup_epoch=0, normalizer=[1.0, 0.3, 2.0], steps=[
    (0, [1.2, 0.3, 2.5], -0.10536051565782634, [0.8333333333333334, 3.3333333333333335, 0.4]),
    (0, [1.0, 0.2, 2.0], -0.916290731874155, [1.0, 5.0, 0.5]),
    (0, [0.8, 0.4, 1.5], -0.7339691750802004, [1.25, 2.5, 0.6666666666666666]),
    (1, [0.9, 0.25, 1.0], 1.159309923370476,
     [1.538948701709943, 4.749841671944269, 0.42748575047498416]),
    (1, [0.6, 0.1, 1.8], 0.6876731823906013,
     [1.4050303555941024, 2.601908065915005, 1.053772766695577]),
    (2, [0.5, 0.3, 0.9], 0.5599293146158938,
     [1.0327022375215147, 6.884681583476765, 0.4647160068846815]),
])


def libmtl_shift(case, epoch, values) -> float:
    """LibMTL back-propagates K·μ·log Σ exp((f − max f)/μ) after the warm-up: the objective minus
    K·max_i f_i (a detached constant; same gradient). Zero during the warm-up."""
    if epoch <= case["warmup_epoch"]:
        return 0.0
    f = [math.log(v / n + 1e-20) for v, n in zip(values, case["normalizer"])]
    return len(values) * max(f)


def run_schedule(stage, steps, start_epoch=0):
    epoch = start_epoch
    for step_epoch, values, *_ in steps:
        while epoch < step_epoch:
            stage.end_epoch()
            epoch += 1
        losses, vec = leaf_losses(values)
        out = stage(losses)
        out.backward()
        yield step_epoch, values, float(out.detach()), vec.grad.tolist(), stage.diagnostics()


@pytest.mark.parametrize("case", [STCH_A, STCH_B], ids=["2tasks-mu1-warmup1", "3tasks-mu0.5-warmup0"])
def test_stch_matches_libmtl_through_warmup(case):
    k = len(case["normalizer"])
    stage = build_stage("stch", tasks_for(k), mu=case["mu"], warmup_epoch=case["warmup_epoch"])
    results = list(run_schedule(stage, case["steps"]))
    for (epoch, values, ref_value, ref_grad), (_, _, value, grad, diag) in zip(case["steps"], results):
        expected = ref_value + libmtl_shift(case, epoch, values)
        assert value == pytest.approx(expected, rel=TOL_STCH, abs=1e-15), (epoch, values)
        assert grad == pytest.approx(ref_grad, rel=TOL_STCH), (epoch, values)
        assert [diag[f"weight/t{i}"] for i in range(k)] == pytest.approx(ref_grad, rel=1e-12)
        assert diag["warmup"] == float(epoch <= case["warmup_epoch"])
    assert stage.normalizer.tolist() == pytest.approx(case["normalizer"], rel=1e-15)
    assert bool(stage.has_normalizer)


# TorchJD's STCH scalariser with weights K·λ, times K, on f = log(L/n + 1e-20), n = STCH_B's.
STCH_PREFERENCE = [
    (0.5, [0.9, 0.25, 1.0], 0.9505013704974261,
     [1.9341902919424192, 4.127614972111977, 0.41575566621539944]),
    (0.1, [0.6, 0.1, 1.8], -0.1893549717285592,
     [0.006629021337926789, 0.002578646853778687, 0.9990206250492477]),
]


@pytest.mark.parametrize("mu, values, value, grad", STCH_PREFERENCE)
def test_stch_preference_matches_torchjd(mu, values, value, grad):
    stage = build_stage("stch", tasks_for(3), mu=mu, warmup_epoch=0, preference=[0.5, 0.3, 0.2])
    warm = [(0, v) for _, v, *_ in STCH_B["steps"][:3]]           # normaliser [1.0, 0.3, 2.0]
    list(run_schedule(stage, warm))
    stage.end_epoch()
    (_, _, out, g, _), = run_schedule(stage, [(0, values)])
    assert out == pytest.approx(value, rel=TOL_STCH)
    assert g == pytest.approx(grad, rel=TOL_STCH)


def test_stch_uniform_preference_is_the_default():
    a = build_stage("stch", tasks_for(3), mu=0.5, warmup_epoch=0)
    b = build_stage("stch", tasks_for(3), mu=0.5, warmup_epoch=0, preference=[1 / 3, 1 / 3, 1 / 3])
    ra, rb = list(run_schedule(a, STCH_B["steps"])), list(run_schedule(b, STCH_B["steps"]))
    for x, y in zip(ra, rb):
        assert x[2] == pytest.approx(y[2], rel=1e-15) and x[3] == pytest.approx(y[3], rel=1e-15)


def test_stch_state_dict_round_trip_mid_accumulation():
    """A checkpoint taken while epoch W averages the losses resumes into the same normaliser."""
    case = STCH_A
    stage = build_stage("stch", tasks_for(2), mu=case["mu"], warmup_epoch=case["warmup_epoch"])
    steps = case["steps"]
    list(run_schedule(stage, steps[:3]))                  # epochs 0, 0, 1: mid epoch W = 1
    checkpoint = copy.deepcopy(stage.state_dict())
    resumed = build_stage("stch", tasks_for(2), mu=case["mu"], warmup_epoch=case["warmup_epoch"])
    resumed.load_state_dict(checkpoint)
    rest = list(run_schedule(stage, steps[3:], start_epoch=1))
    rest_r = list(run_schedule(resumed, steps[3:], start_epoch=1))
    assert [r[2:] for r in rest] == [r[2:] for r in rest_r]
    assert torch.equal(stage.normalizer, resumed.normalizer)


def test_stch_without_losses_in_the_averaging_epoch_says_so():
    stage = build_stage("stch", ["a", "b"], warmup_epoch=0)
    stage.end_epoch()                                     # epoch 0 ended with no step
    with pytest.raises(RuntimeError, match="no losses were seen during epoch 0"):
        stage({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})


def test_stch_refuses_negative_losses_before_averaging():
    stage = build_stage("stch", ["a", "b"], warmup_epoch=0)
    with pytest.raises(ValueError, match=r"needs every loss >= 0.*'b'"):
        stage({"a": torch.tensor(1.0), "b": torch.tensor(-0.1)})
    assert int(stage.loss_count) == 0 and float(stage.loss_sum.abs().sum()) == 0.0


@pytest.mark.parametrize("hp, match", [
    ({"mu": 0.0}, "mu must be a finite number > 0"),
    ({"mu": float("nan")}, "mu must be a finite number > 0"),
    ({"warmup_epoch": -1}, "warmup_epoch must be a whole number"),
    ({"warmup_epoch": 1.5}, "warmup_epoch must be a whole number"),
    ({"warmup_epoch": True}, "warmup_epoch must be a whole number"),
    ({"warmup_epoch": float("inf")}, "warmup_epoch must be a whole number"),
    ({"preference": [0.7, 0.7]}, "simplex"),
    ({"preference": [1.5, -0.5]}, "simplex"),
    ({"preference": [1.0]}, "has 1 values for 2 tasks"),
])
def test_stch_bad_hyper_parameters(hp, match):
    with pytest.raises(ValueError, match=match):
        build_stage("stch", ["a", "b"], **hp)


# ----------------------------------------------------------------------------------- gradvac
# Per step: (J row-major, LibMTL's orders [task i's visiting order], x.grad, rho_T row-major).
GRADVAC_2 = dict(beta=0.5, shape=(2, 3), steps=[
    ([-0.04042916736941367, 1.72599212022981, -0.8140387642807665,
      1.3721666341808492, 0.505964787487793, -0.4823373961513638], [[1], [0]],
     [1.3317374668114355, 2.231956907717603, -1.2963761604321302],
     [0.0, 0.20590108733067963, 0.20590108733067963, 0.0]),
    ([-0.7852525590254318, 0.6680798164641117, -0.44394351470093246,
      0.18883470052089937, 0.5986074161588711, 0.645812840724061], [[1], [0]],
     [-0.6930940683202496, 1.5807717604729448, 0.3118083997990613],
     [0.0, 0.0856051458723692, 0.0856051458723692, 0.0]),
    ([0.6306062453369514, -1.466829642939673, -0.6797558624097383,
      -0.6970294960613493, 0.7893269178658878, -0.9312258176931855], [[1], [0]],
     [-0.23223048333684693, -0.7789163742363551, -2.41730474565066],
     [0.0, -0.15486093398771728, -0.15486093398771728, 0.0]),
    ([-1.9367964987555142, -0.20720344149746928, -1.0538792384210767,
      1.0529300423090742, 1.302253169540278, -0.4860274313415839], [[1], [0]],
     [-0.9451635669715386, 1.5818594616849344, -2.0124458113837442],
     [0.0, -0.3100793697457248, -0.3100793697457248, 0.0]),
])
GRADVAC_3 = dict(beta=0.25, shape=(3, 4), steps=[
    ([0.6925033037107441, -0.6997519918543387, 0.38893382530240184, 0.5154482254880959,
      0.3058219933877856, -1.3592832913138158, -0.26687512013340875, 0.2686034939696055,
      -1.035236192862699, 0.3724661193902593, -1.0862856084934926, 0.08707215863231835],
     [[1, 2], [2, 0], [0, 1]],
     [-0.16491558352199842, -2.0810283323244136, -1.428704394934241, 1.4427456989071978],
     [0.0, 0.1761314692758066, -0.18581927932407072, 0.13739516919115738, 0.0,
      -0.056981025107287774, -0.18581927932407072, 0.11051610126537696, 0.0]),
    ([-0.43663556239499884, -0.794711502363962, -0.687156539523202, -0.6826714087713985,
      -1.1832747120746054, 1.4123115188278985, -1.9098783205693652, 0.07017799634634075,
      0.5745408011214433, -1.3964266182052967, 1.3639311875042512, -0.9215877772203613],
     [[2, 1], [2, 0], [1, 0]],
     [-1.3921755719570221, -1.1015753463831448, -1.3403066439417215, -2.43350323597497],
     [0.0, 0.1788551064559646, -0.0929040161996117, 0.30056065834844314, 0.0,
      -0.2670904564593381, 0.06499373600362243, -0.14146761167983954, 0.0]),
    ([0.30827614165534983, 0.312423145748707, 0.13026404723457277, -1.193786273505281,
      0.12260333948516822, 0.16926653076601597, -0.14192272736314174, -0.46052674699328716,
      -0.26056188659342644, -0.017104419811967194, 0.4109723712777289, 1.0495749309031936],
     [[1, 2], [2, 0], [1, 0]],
     [0.09034983286873938, 0.7941058017789782, 0.6572768435991618, -0.21399280944235421],
     [0.0, 0.3656653996653389, -0.2868548728737676, 0.36110622650160207, 0.0,
      -0.43747390411982934, 0.02366528078878453, -0.3432567705352054, 0.0]),
    ([-0.04908999020436743, 1.7251728399604176, 1.0751281873282472, -1.158732633176079,
      -1.9138353136441844, -1.2506601071171648, -0.1178559093997075, 0.9415655451939728,
      1.7422238027057788, -0.4933770644127979, -0.39780013835070005, -1.6413402358736935],
     [[2, 1], [2, 0], [0, 1]],
     [-2.0974104744501303, -0.36141247478266325, 1.1521919838825423, -2.1601067259678217],
     [0.0, 0.1326429037510917, -0.19195252643986122, 0.10501869347080245, 0.0,
      -0.5000627339446688, 0.04093758880705285, -0.42939988375620086, 0.0]),
    ([1.197815313526984, 1.1251011352968125, 0.5622562631478273, 0.057844779786211574,
      0.8232160370243725, 0.4189672207519877, -1.0722355289506946, 0.43953810075194244,
      0.1825327515195792, 1.2574240383976347, 1.0601463532911368, -1.6112936173212826],
     [[1, 2], [2, 0], [1, 0]],
     [2.203564102070936, 2.801492394446435, 0.5501670874882695, -1.1139107367831287],
     [0.0, 0.18490698680485912, -0.010910276548352554, 0.16418882909464216, 0.0,
      -0.4603484805134095, 0.163757309886833, -0.40735134287205854, 0.0]),
])


def gradvac_step(stage, jac: torch.Tensor) -> torch.Tensor:
    """One backward of L_i = J_i·x + 5 at x = 0: x.grad is the combined direction."""
    x = torch.zeros(jac.shape[1], dtype=F64, requires_grad=True)
    stage.backward({t: jac[i] @ x + 5.0 for i, t in enumerate(stage.tasks)}, shared=[x])
    return x.grad


@pytest.mark.parametrize("case, inject_orders", [(GRADVAC_2, False), (GRADVAC_3, True)],
                         ids=["2tasks-beta0.5", "3tasks-beta0.25"])
def test_gradvac_matches_libmtl_over_several_steps(case, inject_orders, monkeypatch):
    k, d = case["shape"]
    stage = build_stage("gradvac", tasks_for(k), beta=case["beta"])
    if inject_orders:   # LibMTL's random.shuffle draws, recorded by the reference run
        orders = iter([step[1] for step in case["steps"]])
        monkeypatch.setattr(stage, "_orders", lambda: next(orders))
    adjustments = 0
    for jac, _, direction, rho in case["steps"]:
        got = gradvac_step(stage, torch.tensor(jac, dtype=F64).reshape(k, d))
        assert got.tolist() == pytest.approx(direction, rel=TOL_GRADVAC, abs=1e-14)
        assert stage.targets.reshape(-1).tolist() == pytest.approx(rho, rel=TOL_GRADVAC, abs=1e-14)
        adjustments += stage.diagnostics()["adjustments"]
    assert adjustments >= len(case["steps"])   # the goldens exercise the correction


def test_gradvac_with_zero_targets_and_beta_zero_is_pcgrad():
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        jac = torch.randn(2, 4, generator=gen, dtype=F64)
        gv = gradvac_step(build_stage("gradvac", ["a", "b"], beta=0.0, eps=0.0), jac)
        pc = gradvac_step(build_stage("pcgrad", ["a", "b"]), jac)
        assert torch.allclose(gv, pc, rtol=1e-12, atol=1e-14)


def test_gradvac_heads_get_their_plain_gradient():
    x = torch.tensor([0.2, -0.4, 0.1], dtype=F64, requires_grad=True)
    heads = torch.tensor([0.5, -1.5, 2.0], dtype=F64, requires_grad=True)
    jac = torch.tensor([[1.0, 2.0, 0.0], [-1.0, -1.0, 1.0], [0.5, -2.0, 1.0]], dtype=F64)
    losses = {f"t{i}": heads[i] * (jac[i] @ x) + heads[i] ** 2 for i in range(3)}
    build_stage("gradvac", tasks_for(3)).backward(losses, shared=[x])
    expected = (jac @ x.detach()) + 2 * heads.detach()
    assert torch.allclose(heads.grad, expected, rtol=1e-14, atol=0)


def test_gradvac_state_dict_round_trip_continues_targets_and_orders():
    gen = torch.Generator().manual_seed(11)
    jacs = [torch.randn(4, 5, generator=gen, dtype=F64) for _ in range(8)]
    stage = build_stage("gradvac", tasks_for(4), beta=0.3, seed=5)
    for jac in jacs[:4]:
        gradvac_step(stage, jac)
    resumed = build_stage("gradvac", tasks_for(4), beta=0.3, seed=5)
    resumed.load_state_dict(copy.deepcopy(stage.state_dict()))
    assert set(stage.state_dict()) == {"targets", "rng_state"}
    for jac in jacs[4:]:
        assert torch.equal(gradvac_step(stage, jac), gradvac_step(resumed, jac))
        assert torch.equal(stage.targets, resumed.targets)
        assert stage.diagnostics() == resumed.diagnostics()


def test_gradvac_orders_come_from_its_seeded_generator():
    def orders(seed):
        stage = build_stage("gradvac", tasks_for(4), seed=seed)
        return [stage._orders() for _ in range(6)]

    assert orders(1) == orders(1)
    assert orders(1) != orders(2)
    for per_step in orders(1):
        assert [sorted(o) for o in per_step] == [[j for j in range(4) if j != i] for i in range(4)]


@pytest.mark.parametrize("hp, match", [
    ({"beta": -0.1}, "beta must be a finite number >= 0"),
    ({"beta": 1.5}, r"beta must lie in \[0, 1\]"),
    ({"beta": float("nan")}, "beta must be a finite number"),
    ({"eps": -1e-8}, "eps must be a finite number >= 0"),
    ({"beta": "high"}, "beta must be a number"),
])
def test_gradvac_bad_hyper_parameters(hp, match):
    with pytest.raises(ValueError, match=match):
        build_stage("gradvac", ["a", "b"], **hp)


# ------------------------------------------------------------------------------ registration
@pytest.mark.parametrize("name, weights, grads", [
    ("si", "losses", False), ("stch", "losses", False), ("gradvac", "gradients", True),
])
def test_registered_with_a_profile(name, weights, grads):
    assert name in available_stages()
    cls = STAGES.get(name)
    assert isinstance(cls.profile, StageProfile) and cls.profile.weights == weights
    assert cls.needs_task_grads is grads


def test_gradvac_zero_gradient_with_eps_zero_stays_finite():
    stage = build_stage("gradvac", tasks_for(3), eps=0.0)
    jac = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.5]], dtype=F64)
    for _ in range(3):
        d = gradvac_step(stage, jac)
        assert bool(torch.isfinite(d).all()) and bool(torch.isfinite(stage.targets).all())
