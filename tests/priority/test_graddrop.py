"""``graddrop`` (GradDrop, Chen et al., NeurIPS 2020) against LibMTL's ``GradDrop``: golden
directions in rep-grad and parameter mode, its own seeded draws (the resumed run draws the same
masks), task views (expanded and mixture) and refusals.

Golden values: the scratch script /tmp/ref17c/golden.py (kept out of the project), run as
    cd /tmp/ref17c && /work/main/.venv/bin/python golden.py > golden_out.py
with this project's .venv (torch 2.13.0+cpu, numpy 2.3.5), ``torch.set_default_dtype(torch.float64)``:

* median-research-group/LibMTL @ 4336804847eaa5e0b924b743d76beec7ac3fdc97,
  ``LibMTL/weighting/GradDrop.py`` (``GradDrop.backward``; file last changed in
  ed73b0b319c180aef5f7e16a613c75c8ac2d47b8) and ``LibMTL/weighting/abstract_weighting.py``
  (``AbsWeighting._compute_grad``), unmodified.
* A harness subclass of ``GradDrop`` with ``task_num = K``, ``device = "cpu"``, ``rep_grad = True``;
  per step a leaf ``base`` holding the listed representation values (row-major, one entry 0 so that
  sign(0) = 0 is exercised), ``rep = base * 1.0`` as ``self.rep``, its detached copies as
  ``rep_tasks`` (LibMTL's ``_prepare_rep``), L_i = Σ A_i ⊙ rep_tasks[i] + c_i, then
  ``GradDrop.backward(losses, leak=ℓ)``: golden = ``base.grad`` (the representation's gradient).
* Randomness: LibMTL's one random call, ``torch.rand_like(P)``, was replaced in the script by this
  stage's draws, ``torch.rand(n, dtype=float64, generator=torch.Generator().manual_seed(seed))``, one
  call per step (listed as U), so the comparison is exact.
* Sequences (4 steps each): G2 (K=2, representation [4, 3], ℓ=0, seed 11), G3 (K=3, representation
  [3, 2, 3], ℓ=0.25, seed 12); GP3 (K=3, ℓ=0, seed 13) is parameter mode: the reference run on a
  one-row representation [1, 5] of ones (a_i = g_i), compared with this stage's direction at a shared
  parameter x in R^5, L_i = A_i·x + 1. Inputs: ``torch.randn`` from seeds 111/112/113, rounded to 3
  decimals, the gradients scaled by (1 + t).

Tolerance: the masks agree exactly; the directions to <= 2.1e-16 of their largest entry (rep-grad:
autograd adds the heads' hᵀG back; parameter mode: bit for bit), asserted 1e-12.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from recsys_hmtl.priority import ExpandedView, MixtureView, NonFiniteLossError, TaskViews, build_stage
from recsys_hmtl.training.steps import check_grad_mode

F64 = torch.float64

# case -> (K, representation shape, leak, seed, [(representation, per-task gradients [K, *shape],
#          U, direction at the representation), ...])
GOLDEN = {
    'G2': (2, (4, 3), 0.0, 11, [
        ([0.0, -0.757, 1.042, 0.33, 0.531, -1.024, 1.356, 0.309, 0.523, -1.093, 1.98, -0.261],
         [0.795, -0.911, -0.82, -1.474, -0.079, -0.861, 0.708, 0.4, -0.959, 0.019, 0.29, 1.398,
          -0.512, 0.702, -0.41, 1.943, -0.089, -0.935, -1.133, 0.245, 0.002, -0.52, -0.624, -1.023],
         [0.19233373084394845, 0.8852923701860037, 0.6715475054338559],
         [-0.512, 0.702, -0.82, 1.943, -0.089, -0.861, -1.133, 0.245, -0.959, -0.52, -0.624, 1.398]),
        ([-0.301, 0.0, -0.051, -0.359, -1.068, 1.156, 1.668, -0.844, -0.305, 0.977, 0.458, -1.139],
         [0.001, -2.99, 1.361, -0.366, 1.609, -1.419, 3.172, 1.133, 4.816, -0.585, 1.057, 0.226,
          -0.217, 3.511, -0.804, -1.365, 3.614, -0.609, 0.353, 4.14, -0.535, 1.064, 0.054, 1.311],
         [0.664679492131691, 0.5769811178088923, 0.15470229421268566],
         [-0.216, 0.5209999999999999, 0.5569999999999999, -1.7309999999999999, 5.223, -2.028,
          3.5250000000000004, 5.273, 4.281, 0.4790000000000001, 1.111, 1.537]),
        ([0.885, -1.637, 0.0, 1.674, 1.505, -0.561, 1.458, -0.823, -0.291, 0.426, -1.31, 1.377],
         [-0.087, -0.579, 0.464, -3.48, -3.014, -6.554, 0.262, 2.618, 0.107, 1.703, -2.033, 1.496,
          1.486, -3.609, 3.088, 2.518, 3.996, 0.417, 2.905, -0.335, -4.176, -3.823, -1.122, 2.527],
         [0.17510123078381978, 0.13704720791881153, 0.820022627264256],
         [1.486, -3.609, 3.552, 2.518, 3.996, -6.1370000000000005, 2.905, -0.335, -4.069, -3.823,
          -1.122, 4.023]),
        ([0.761, 0.612, 0.494, 0.0, -0.03, -0.531, -1.09, 0.901, 0.026, 1.04, -1.092, 0.407],
         [-1.256, -9.172, 7.518, 0.402, -3.683, -0.485, -4.704, 3.739, -4.608, 6.435, -7.05,
          4.462, 0.485, 4.526, 0.356, 1.997, 2.282, 1.412, -3.464, -5.96, -0.738, -5.849, 0.446,
          -4.492],
         [0.4283356140652611, 0.9672263687905949, 0.6914732541554117],
         [-1.256, 4.526, 0.356, 0.402, 2.282, 1.412, -4.704, -5.96, -0.738, 6.435, 0.446, -4.492]),
    ]),
    'G3': (3, (3, 2, 3), 0.25, 12, [
        ([0.0, -0.61, 0.608, -0.523, -0.679, -0.184, 0.192, 0.533, -0.437, -0.245, 1.226, 1.103,
          0.373, -0.634, -1.344, -0.779, -0.596, -0.264],
         [-0.402, 1.5, -0.692, -1.295, -0.69, -0.101, -0.294, -0.463, -1.036, -0.477, 0.434,
          0.076, 1.129, 1.83, 0.026, -0.075, -0.685, -0.574, -0.114, -0.085, 1.487, 1.358, 1.553,
          -0.683, 2.062, -0.13, -1.32, -0.487, 0.981, 0.873, -0.759, -0.205, -0.361, -1.136,
          -2.24, -0.298, 0.559, -0.746, -0.086, 1.408, -0.102, 0.562, -0.516, -0.618, 0.004,
          0.573, -0.905, -1.09, -1.76, -0.498, -0.091, 1.578, 0.03, -0.275],
         [0.7254998427494742, 0.6217684142051493, 0.2691579277202012, 0.09826837711420244,
          0.8495237114325871, 0.5938825769253581],
         [0.43000000000000005, 1.2922500000000001, 0.7090000000000002, 0.41500000000000015,
          0.11375, -0.6435, -0.07400000000000007, -0.65, -2.352, -0.82075, -0.55125,
          0.6764999999999999, -1.6675, 1.65425, -0.42599999999999993, -0.8164999999999998,
          -0.70125, -0.9407499999999999]),
        ([0.72, 0.0, -0.174, -0.9, 0.621, 0.238, -1.538, -1.274, 0.536, 0.238, 0.872, 1.41, 0.726,
          1.529, 0.043, -1.118, 1.225, -0.952],
         [1.673, -0.685, -0.789, -0.537, 0.009, -2.228, 2.208, -1.389, -1.366, 2.396, 2.382,
          0.575, 0.867, 1.523, -2.722, -2.029, -0.978, 3.177, -1.685, -1.99, 0.619, 0.397, -1.206,
          1.251, -0.731, 1.703, 1.33, 0.185, 2.058, -1.998, 2.248, 0.288, 0.979, 2.762, -3.773,
          2.364, 1.298, -1.868, -1.417, -1.431, 0.369, -0.724, 2.494, 3.467, -0.736, -1.379, 2.36,
          2.632, -1.603, -0.578, -1.265, 1.568, -1.56, -1.32],
         [0.6640264012512352, 0.44708875776501167, 0.8322309140940488, 0.0046951164409929635,
          0.2804568653095162, 0.25835084135396746],
         [1.295, -4.02925, -2.05125, -0.7955000000000001, 0.07650000000000001, -0.96825,
          2.8632500000000003, 4.82275, -1.7695, 2.0975, 5.2565, 2.27625, -0.8242499999999999,
          0.09075, -3.7422500000000003, -0.9464999999999998, -3.48125, 0.06525000000000003]),
        ([-1.006, 0.274, 0.0, -0.246, 1.869, 0.964, -0.581, -1.893, 1.278, -1.613, -0.398, -0.265,
          -0.578, -0.284, 1.147, -0.192, 0.298, -1.252],
         [-0.266, -0.043, 2.756, 5.431, 2.321, -0.258, 0.855, 5.216, 2.217, -1.662, 2.036, 1.795,
          -5.505, -0.225, 5.057, -4.694, -2.546, -3.756, -0.136, 0.904, -1.598, 3.08, -2.159,
          -1.999, -0.563, -0.437, 3.189, -2.604, -3.403, 6.265, -0.728, -1.53, 2.763, -1.358,
          -0.763, -3.514, 5.093, -1.289, -2.318, 0.725, 2.77, 5.034, -1.838, 2.402, 1.597, -2.343,
          0.316, 0.585, 2.146, 1.272, -6.037, 2.683, -3.15, 1.042],
         [0.7730777175570529, 0.4023866236395047, 0.6269217442876536, 0.4709029903287282,
          0.5730738197647857, 0.05294784752133452],
         [4.9925, -1.1059999999999999, 0.5784999999999997, 8.69225, 4.5512500000000005, 4.27625,
          -1.7650000000000001, 7.50875, 5.805250000000001, -4.85175, 1.50125, 3.94625, 0.58775,
          0.6645, 6.3107500000000005, -5.38125, -5.886749999999999, -3.5925000000000002]),
        ([0.98, 0.205, -0.692, 0.0, -0.231, 0.295, 0.334, -0.787, -0.028, -0.111, 0.503, 0.147,
          -0.87, 0.155, -1.638, 0.94, -2.416, 0.316],
         [-0.243, 2.267, 1.332, -0.58, -7.275, 2.649, 5.575, -3.023, 4.392, -1.502, 6.645, 5.89,
          1.572, 0.846, -2.998, 4.43, 0.576, -0.949, 0.884, -6.05, -5.213, -3.674, -0.511, -2.474,
          -3.437, -3.019, 1.453, -2.474, -2.374, 4.328, -7.445, 3.88, 4.012, -4.453, 1.46, 3.838,
          -0.431, 6.085, 4.485, -4.575, -0.55, -2.554, -0.297, -7.954, -0.785, 1.944, 0.288,
          -3.238, 4.113, -1.681, -0.657, 2.484, -2.111, 4.634],
         [0.1387419499057454, 0.14791224291368543, 0.8198035064416593, 0.6184672361685678,
          0.9104356494796854, 0.1271506420895019],
         [0.53325, 2.302, 0.6040000000000001, -6.0735, -2.4672500000000004, -0.46350000000000013,
          2.06375, -13.995999999999999, 5.0600000000000005, -0.17649999999999988,
          -0.6407500000000003, 9.4085, -4.84475, 3.045, 0.3569999999999993, 5.80075, 1.07625,
          4.0475]),
    ]),
    'GP3': (3, (1, 5), 0.0, 13, [
        ([1.0, 1.0, 1.0, 1.0, 1.0],
         [0.625, -0.697, 1.01, -2.137, -0.935, 0.094, -0.112, 0.509, 0.086, 0.54, 1.648, -0.803,
          -0.374, 0.511, 0.691],
         [0.7345364605623868, 0.48441069575977913, 0.12242455147871234, 0.8543644805686369,
          0.8870757859153777],
         [2.367, -1.612, 1.5190000000000001, -2.137, -0.935]),
        ([1.0, 1.0, 1.0, 1.0, 1.0],
         [1.59, 0.799, -2.692, 3.222, -2.113, -1.979, 4.449, 0.676, -1.189, -0.559, -1.936, 1.284,
          -1.157, -0.771, -2.915],
         [0.664049030142553, 0.31896429412047644, 0.278291127215075, 0.024134820958604863,
          0.6933352185951176],
         [-3.915, 6.532, -3.849, 3.222, -5.587]),
        ([1.0, 1.0, 1.0, 1.0, 1.0],
         [-4.571, 1.669, 0.704, -0.002, 1.204, -5.49, 5.224, -2.057, -0.625, 4.825, 3.973, -7.163,
          -8.213, 0.375, 0.971],
         [0.7547958669243625, 0.22451253201856525, 0.8335727310326199, 0.2608134611092957,
          0.6050469861056011],
         [-10.061, 6.893000000000001, -10.27, 0.375, 7.0]),
        ([1.0, 1.0, 1.0, 1.0, 1.0],
         [-0.092, 0.963, -0.298, 4.178, 1.028, 2.282, -4.64, 2.084, -2.12, -0.906, 3.069, -2.522,
          2.515, -1.53, 5.799],
         [0.32860824883756246, 0.8613288548352378, 0.8463253942712075, 0.2773492882032871,
          0.8675900365384799],
         [5.351, -7.161999999999999, 4.599, 4.178, 6.827]),
    ]),
}


def tasks_for(k):
    return [f"t{i}" for i in range(k)]


def run_step(stage, case, rep_values, per_task):
    """One backward: rep-grad on a representation (G*), or parameter mode at x (GP*); returns the
    direction the shared tensor received, flat."""
    k, shape, _, _, _ = GOLDEN[case]
    values = torch.tensor(rep_values, dtype=F64).reshape(shape)
    grads = torch.tensor(per_task, dtype=F64).reshape(k, *shape)
    if case.startswith("GP"):
        x = torch.zeros(shape[1], dtype=F64, requires_grad=True)
        stage.backward({t: grads[i, 0] @ x + 1.0 for i, t in enumerate(stage.tasks)}, shared=[x])
        return x.grad.reshape(-1)
    base = values.clone().requires_grad_(True)
    rep = base * 1.0
    stage.backward({t: (grads[i] * rep).sum() + 1.0 for i, t in enumerate(stage.tasks)}, shared=rep)
    return base.grad.reshape(-1)


def check_steps(stage, case, steps):
    dropped = False
    for rep_values, per_task, _, d_ref in steps:
        direction = run_step(stage, case, rep_values, per_task)
        expected = torch.tensor(d_ref, dtype=F64)
        assert float((direction - expected).abs().max()) <= 1e-12 * float(expected.abs().max())
        k, shape = GOLDEN[case][0], GOLDEN[case][1]
        plain = torch.tensor(per_task, dtype=F64).reshape(k, -1).sum(0)
        dropped |= not torch.allclose(direction, plain)
    return dropped


# ------------------------------------------------------------------------------ golden values
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_sequence(case):
    k, _, leak, seed, steps = GOLDEN[case]
    stage = build_stage("graddrop", tasks_for(k), leak=leak, seed=seed)
    assert check_steps(stage, case, steps), "the masks never dropped anything: a weak test"


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_the_stage_draws_the_uniforms_fed_to_the_reference(case):
    k, shape, leak, seed, steps = GOLDEN[case]
    stage = build_stage("graddrop", tasks_for(k), leak=leak, seed=seed)
    n = int(torch.tensor(shape[1:]).prod())
    for _, _, u, _ in steps:
        assert torch.equal(stage.draw_uniform(n), torch.tensor(u, dtype=F64))


def test_the_global_rng_is_untouched():
    k, _, leak, seed, steps = GOLDEN["G3"]
    stage = build_stage("graddrop", tasks_for(k), leak=leak, seed=seed)
    before = torch.get_rng_state()
    check_steps(stage, "G3", steps[:2])
    assert torch.equal(torch.get_rng_state(), before)


# -------------------------------------------------------------------------------------- state
@pytest.mark.parametrize("case, cut", [("G2", 1), ("G3", 2), ("GP3", 3)])
def test_state_dict_round_trip_draws_the_same_masks(case, cut):
    k, _, leak, seed, steps = GOLDEN[case]
    stage = build_stage("graddrop", tasks_for(k), leak=leak, seed=seed)
    check_steps(stage, case, steps[:cut])
    state = copy.deepcopy(stage.state_dict())
    assert set(state) == {"rng_state"}
    resumed = build_stage("graddrop", tasks_for(k), leak=leak, seed=seed + 1000)  # the state wins
    resumed.load_state_dict(state)
    assert torch.equal(resumed.rng_state, stage.rng_state)
    check_steps(resumed, case, steps[cut:])
    check_steps(stage, case, steps[cut:])


def test_non_finite_loss_is_refused_before_the_state_moves():
    k, _, leak, seed, steps = GOLDEN["G2"]
    stage = build_stage("graddrop", tasks_for(k), leak=leak, seed=seed)
    check_steps(stage, "G2", steps[:1])
    before = stage.rng_state.clone()
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(NonFiniteLossError, match="'t1'"):
            stage.backward({"t0": x.sum() + 1.0, "t1": x.sum() * bad}, shared=[x])
    assert torch.equal(stage.rng_state, before) and x.grad is None
    check_steps(stage, "G2", steps[1:])  # the sequence goes on as if nothing happened


# ------------------------------------------------------------------------------- the method
class ExpertModel(nn.Module):
    """Experts [E, B, H] from shared parameters, mixed per task by task-specific gates [K, B, E]
    (a mixture view); or one shared representation [B, H] read by every head."""

    def __init__(self, k=3, e=2, b=5, h=4, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(b, 3, generator=gen, dtype=F64)
        self.experts = nn.Parameter(torch.randn(e, 3, h, generator=gen, dtype=F64))
        self.gates = nn.Parameter(torch.randn(k, 3, e, generator=gen, dtype=F64))
        self.heads = nn.Parameter(torch.randn(k, h, generator=gen, dtype=F64))
        self.y = torch.randn(k, b, generator=gen, dtype=F64)
        self.k = k

    def losses_from(self, per_task):  # [K, B, H]
        pred = (torch.tanh(per_task) * self.heads[:, None, :]).sum(-1)
        losses = ((pred - self.y) ** 2).mean(1)
        return {f"t{i}": losses[i] for i in range(self.k)}

    # The shared tensors are ``leaf * 1.0``: the leaf's .grad is what the trunk below receives
    # (a retained .grad of the non-leaf tensor would also collect the per-task autograd.grad calls).
    def expanded(self, views: bool):
        leaf = (torch.tanh(self.x @ self.experts[0]) - 0.3).detach().requires_grad_(True)  # [B, H]
        rep = leaf * 1.0
        view = rep.unsqueeze(0).expand(self.k, *rep.shape)
        shared = TaskViews((ExpandedView(rep, view),)) if views else rep
        return leaf, rep, shared, self.losses_from(view)

    def mixture(self):
        leaf = torch.tanh(torch.einsum("bd,edh->ebh", self.x, self.experts)).detach().requires_grad_(True)
        experts = leaf * 1.0  # [E, B, H]
        gates = torch.softmax(torch.einsum("bd,kde->kbe", self.x, self.gates), dim=-1)
        mixed = torch.einsum("kbe,ebh->kbh", gates, experts)
        return leaf, experts, TaskViews((MixtureView(experts, gates, mixed),)), self.losses_from(mixed)


def graddrop_by_hand(per_task, source, batch_dim, u, leak):
    """The reference rule on materialised per-task gradients [K, *source.shape]: signed batch sums,
    purity, masks (Eqs. 1-2), masked sum."""
    signed = (per_task * torch.sign(source).unsqueeze(0)).sum(1 + batch_dim)
    purity = 0.5 * (1 + signed.sum(0) / (signed.abs().sum(0) + 1e-7))
    u = u.reshape(purity.shape)
    mask = (purity.gt(u) & signed.gt(0)) | (purity.lt(u) & signed.lt(0))
    keep = (leak + (1 - leak) * mask.to(F64)).unsqueeze(1 + batch_dim)
    return (per_task * keep).sum(0)


@pytest.mark.parametrize("views", [False, True])
def test_a_representation_and_its_task_view_get_the_rule(views):
    model = ExpertModel()
    stage = build_stage("graddrop", tasks_for(3), leak=0.1, seed=5)
    draws = build_stage("graddrop", tasks_for(3), seed=5)
    for _ in range(2):
        model.zero_grad()
        leaf, rep, shared, losses = model.expanded(views)
        per_task = torch.stack([torch.autograd.grad(losses[t], rep, retain_graph=True)[0] for t in tasks_for(3)])
        stage.backward(losses, shared=shared)
        expected = graddrop_by_hand(per_task, rep.detach(), 0, draws.draw_uniform(rep.shape[1]), 0.1)
        torch.testing.assert_close(leaf.grad, expected, rtol=1e-12, atol=1e-15)


def test_a_mixture_view_gets_the_rule_over_expert_coordinates():
    model = ExpertModel()
    stage = build_stage("graddrop", tasks_for(3), seed=6)
    draws = build_stage("graddrop", tasks_for(3), seed=6)
    leaf, experts, views, losses = model.mixture()
    per_task = torch.stack([torch.autograd.grad(losses[t], experts, retain_graph=True)[0] for t in tasks_for(3)])
    stage.backward(losses, shared=views)
    e, _, h = experts.shape
    expected = graddrop_by_hand(per_task, experts.detach(), 1, draws.draw_uniform(e * h), 0.0)
    torch.testing.assert_close(leaf.grad, expected, rtol=1e-12, atol=1e-15)
    assert 0.0 <= stage.diagnostics()["mixed_sign"] <= 1.0


def test_heads_get_their_plain_gradients_and_leak_one_is_the_sum():
    model = ExpertModel()
    leaf, rep, _, losses = model.expanded(False)
    per_task = torch.stack([torch.autograd.grad(losses[t], rep, retain_graph=True)[0] for t in tasks_for(3)])
    heads = torch.autograd.grad(sum(losses.values()), model.heads, retain_graph=True)[0]
    stage = build_stage("graddrop", tasks_for(3), leak=1.0)
    out = stage.backward(losses, shared=rep)
    torch.testing.assert_close(model.heads.grad, heads, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(leaf.grad, per_task.sum(0), rtol=1e-12, atol=1e-15)  # no drop at ℓ = 1
    assert float(out) == pytest.approx(float(sum(v.detach() for v in losses.values())))


def test_parameter_mode_at_several_tensors_draws_one_mask_over_all_coordinates():
    k, _, leak, seed, steps = GOLDEN["GP3"]
    a, b = (torch.zeros(2, dtype=F64, requires_grad=True), torch.zeros(3, dtype=F64, requires_grad=True))
    stage = build_stage("graddrop", tasks_for(k), leak=leak, seed=seed)
    for _, per_task, _, d_ref in steps:
        grads = torch.tensor(per_task, dtype=F64).reshape(k, 5)
        a.grad = b.grad = None
        x = torch.cat([a, b])
        stage.backward({t: grads[i] @ x + 1.0 for i, t in enumerate(stage.tasks)}, shared=[a, b])
        assert torch.equal(torch.cat([a.grad, b.grad]), torch.tensor(d_ref, dtype=F64))


def test_both_gradient_modes_are_declared():
    stage = build_stage("graddrop", ["a", "b"])
    assert stage.grad_modes == ("rep", "params") and stage.needs_task_grads
    check_grad_mode(None, stage)
    check_grad_mode("rep", stage)
    check_grad_mode("params", stage)


@pytest.mark.parametrize("bad, key", [({"leak": -0.1}, "leak"), ({"leak": 1.5}, "leak"),
                                      ({"leak": "x"}, "leak"), ({"seed": 1.5}, "seed"),
                                      ({"seed": True}, "seed")])
def test_bad_hyper_parameters_are_named(bad, key):
    with pytest.raises(ValueError, match=key):
        build_stage("graddrop", ["a", "b"], **bad)
