"""The contract every registered loss stage keeps (SPEC §5), checked through its public API on a tiny
model: non-finite losses are refused before any state moves, a mid-run ``state_dict`` round trip
resumes exactly, diagnostics are finite floats keyed ``<quantity>/<task>`` (or ``<quantity>``), and
unknown hyper-parameters are named. Gradient stages are driven by ``stage.backward(losses, shared=...)``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from recsys_hmtl.priority import NonFiniteLossError, available_stages, build_stage

TASKS = ("click", "like", "follow")

# Every stage with its defaults, plus the non-default modes of the stages whose state differs.
CASES = [(name, {}) for name in available_stages()] + [
    ("scd_vio", {"threshold": "median", "window": 3}),
    ("scd_vio", {"threshold": "ema", "gate": "independent"}),
    ("hb_aho", {"eps0": 0.6}),                      # thresholds the tiny model's losses reach
    ("hb_aho", {"update": "epoch", "eps0": 0.6}),
    ("ldc_mtl", {"normalize": "log", "reset_every_epoch": True, "tau": "one"}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in hp.items()) for name, hp in CASES]


class TinyModel(nn.Module):
    """A shared trunk and one head per task; losses are positive (squared error + 0.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 3)
        self.heads = nn.ModuleList(nn.Linear(3, 1) for _ in TASKS)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def losses(self, step: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(100 + step)
        x = torch.randn(8, 4, generator=g)
        y = torch.rand(8, len(TASKS), generator=g)
        h = torch.relu(self.trunk(x))
        return {
            t: ((head(h).squeeze(-1) - y[:, i]) ** 2).mean() + 0.1
            for i, (t, head) in enumerate(zip(TASKS, self.heads))
        }


def train_step(stage, model, step: int):
    """One step: backward through the stage, SGD on model and stage parameters."""
    model.zero_grad()
    stage.zero_grad()
    out = stage.backward(model.losses(step), shared=list(model.trunk.parameters()))
    grads = [p.grad.clone() if p.grad is not None else None for p in model.parameters()]
    with torch.no_grad():
        for p in [*model.parameters(), *stage.parameters()]:
            if p.grad is not None:
                p -= 0.1 * p.grad
    if step % 3 == 2:
        stage.end_epoch()
    return out, grads, stage.diagnostics()


def snapshot(stage):
    return {k: v.clone() for k, v in stage.state_dict().items()}


@pytest.mark.parametrize("name, hparams", CASES, ids=IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_is_refused_before_any_state_changes(name, hparams, bad):
    stage = build_stage(name, tasks=TASKS, **hparams)
    model = TinyModel()
    for step in range(2):
        train_step(stage, model, step)
    before = snapshot(stage)
    losses = model.losses(2)
    losses["like"] = losses["like"] * bad
    with pytest.raises(NonFiniteLossError, match="'like'"):
        stage.backward(losses, shared=list(model.trunk.parameters()))
    after = stage.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), f"{name}: '{key}' changed on a non-finite loss"


@pytest.mark.parametrize("name, hparams", CASES, ids=IDS)
def test_state_dict_round_trip_resumes_exactly(name, hparams):
    stage = build_stage(name, tasks=TASKS, **hparams)
    model = TinyModel()
    for step in range(3):   # ends with an end_epoch() (step 2)
        train_step(stage, model, step)
    for step in range(3, 5):
        train_step(stage, model, step)
    checkpoint = copy.deepcopy(stage.state_dict()), copy.deepcopy(model.state_dict())

    resumed = build_stage(name, tasks=TASKS, **hparams)
    resumed.load_state_dict(checkpoint[0])
    resumed_model = TinyModel()
    resumed_model.load_state_dict(checkpoint[1])
    for step in range(5, 9):
        out, grads, diag = train_step(stage, model, step)
        out_r, grads_r, diag_r = train_step(resumed, resumed_model, step)
        assert torch.equal(out, out_r), f"{name}: step {step} output differs after resume"
        assert diag == diag_r, f"{name}: step {step} diagnostics differ after resume"
        for g, g_r in zip(grads, grads_r):
            assert (g is None and g_r is None) or torch.equal(g, g_r)


@pytest.mark.parametrize("name, hparams", CASES, ids=IDS)
def test_diagnostics_are_finite_floats_keyed_by_task(name, hparams):
    stage = build_stage(name, tasks=TASKS, **hparams)
    model = TinyModel()
    for step in range(4):
        train_step(stage, model, step)
        diag = stage.diagnostics()
        assert diag, f"{name} reports no diagnostics"
        for key, value in diag.items():
            assert isinstance(value, float) and value == value and abs(value) != float("inf"), (key, value)
            quantity, _, task = key.partition("/")
            assert quantity and "/" not in task
            assert task == "" or task in TASKS, key
        assert any(key.endswith(f"/{TASKS[-1]}") for key in diag), f"{name}: no per-task entries"


@pytest.mark.parametrize("name, hparams", CASES, ids=IDS)
def test_objectives_of_accumulated_micro_batches_back_propagate_together(name, hparams):
    """Gradient accumulation: two calls, then one backward of their sum (scalarising stages)."""
    stage = build_stage(name, tasks=TASKS, **hparams)
    if stage.needs_task_grads:
        pytest.skip("gradient stages back-propagate inside backward()")
    model = TinyModel()
    train_step(stage, model, 0)
    total = stage(model.losses(1)) + stage(model.losses(2))
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", available_stages())
def test_unknown_hyper_parameter_is_named(name):
    with pytest.raises(TypeError, match="no_such_option"):
        build_stage(name, tasks=TASKS, no_such_option=1)


def test_unknown_stage_gets_a_hint():
    with pytest.raises(ValueError, match="did you mean 'scd_vio'"):
        build_stage("scd_vi", tasks=TASKS)


@pytest.mark.parametrize("name, hparams", CASES, ids=IDS)
def test_extra_term_joins_the_single_backward_unweighted(name, hparams):
    """``backward(losses, shared, extra=a)`` (AITM's calibrator) gives the stage's gradient plus
    ∂a/∂θ, from one backward pass, and the stage never re-weights ``a``."""
    stage = build_stage(name, tasks=TASKS, **hparams)
    model = TinyModel()
    train_step(stage, model, 0)
    twin = copy.deepcopy(stage)
    head = model.heads[0].weight

    def grads(s, with_extra: bool):
        model.zero_grad()
        torch.manual_seed(7)  # stochastic stages (RLW) draw the same weights in both calls
        extra = 3.0 * (head ** 2).sum() if with_extra else None
        s.backward(model.losses(1), shared=list(model.trunk.parameters()), extra=extra)
        return [p.grad.clone() for p in model.parameters()]

    plain, with_extra = grads(stage, False), grads(twin, True)
    expected_head = plain[2] + 6.0 * head.detach()          # parameters: trunk w, trunk b, head0 w, ...
    assert torch.allclose(with_extra[2], expected_head, atol=1e-6), name
    for i in (0, 1, 3, 4, 5, 6, 7):
        assert torch.allclose(with_extra[i], plain[i], atol=1e-6), (name, i)
