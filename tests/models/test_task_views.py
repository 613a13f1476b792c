"""Task views (models/base.py): the towers give each task its own view of the shared tensors at the
task split, so a gradient stage gets every task's gradient from ONE backward and back-propagates
the combined direction through the trunk once (priority/task_grads.py)."""

from __future__ import annotations

import pytest
import torch

from synthetic import FEATURES, TASKS, TINY, make_batch, task_losses
from recsys_hmtl.models import build_model
from recsys_hmtl.adapters.recsys.trainable import task_views
from recsys_hmtl.priority import ExpandedView, MixtureView, TaskViews, build_stage
from recsys_hmtl.priority.task_views import gram_matrix, view_gradient_blocks

ONE_LEVEL = {"ple": {"num_levels": 1}, "stem": {"num_levels": 1}}
WITH_VIEWS = ["shared_bottom", "omoe", "mmoe", "ple", "stem"]


def build(name: str, views: bool, **overrides):
    torch.manual_seed(0)
    model = build_model(name, FEATURES, TASKS, **{**TINY[name], **ONE_LEVEL.get(name, {}), **overrides})
    model.task_views = views
    return model


def forward(model, batch):
    out = model(batch)
    losses = task_losses(out, batch.labels)
    return out, {task: losses[t] for t, task in enumerate(TASKS)}


@pytest.mark.parametrize("name", WITH_VIEWS)
def test_views_change_no_prediction(name):
    batch = make_batch(64)
    plain, viewed = build(name, False).eval(), build(name, True).eval()
    assert plain.supports_task_views and not plain(batch).views
    out = viewed(batch)
    assert out.views and all(v.target.shape[0] == len(TASKS) for v in task_views(out.views).views)
    torch.testing.assert_close(out.stacked, plain(batch).stacked, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", WITH_VIEWS)
def test_one_backward_gives_each_tasks_own_gradient(name):
    """Row i of each block is ∂L_i/∂source as a backward of L_i alone gives it (expanded views:
    at row i of the view; mixtures: at the experts, which only the mixture reads), and the Gram
    matrix of the (factored) blocks is that of the explicit rows."""
    out, losses = forward(build(name, True), make_batch(64))
    views = task_views(out.views)
    blocks = view_gradient_blocks([losses[t] for t in TASKS], views)
    rows = [[] for _ in TASKS]
    for view, block in zip(views.views, blocks):
        for i, task in enumerate(TASKS):
            unit = torch.zeros(len(TASKS), dtype=torch.float64)
            unit[i] = 1
            row = block.combine(unit).flatten()
            at = view.view if isinstance(view, ExpandedView) else view.source
            alone = torch.autograd.grad(losses[task], at, retain_graph=True)[0]
            torch.testing.assert_close(row, (alone[i] if isinstance(view, ExpandedView) else alone).flatten(),
                                       rtol=1e-5, atol=1e-8)
            rows[i].append(row)
    explicit = torch.stack([torch.cat(r) for r in rows])
    gram = sum(block.gram() for block in blocks)
    torch.testing.assert_close(gram, gram_matrix(explicit), rtol=1e-4, atol=1e-9)
    assert not torch.allclose(explicit[0], explicit[1])  # the tasks really differ
    kinds = {type(v) for v in views.views}
    assert kinds == ({ExpandedView} if name in ("shared_bottom", "omoe") else {MixtureView})


def gradients(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", WITH_VIEWS)
def test_mgda_with_views_is_the_gradient_of_its_weighted_sum(name):
    """MGDA weighs heads by its coefficients too, so every parameter's gradient is ∇ Σ c_i L_i."""
    batch = make_batch(128)
    model = build(name, True)
    stage = build_stage("mgda", TASKS)
    out, losses = forward(model, batch)
    stage.backward(losses, shared=task_views(out.views))
    got = gradients(model)
    c = torch.tensor([stage.diagnostics()[f"weight/{t}"] for t in TASKS])
    assert c.min() < 0.99 * c.max()  # a non-trivial combination
    model.zero_grad()
    _, losses = forward(model, batch)
    sum(c[i] * losses[t] for i, t in enumerate(TASKS)).backward()
    want = gradients(model)
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-6, msg=key)


def test_heads_get_their_plain_gradient_and_the_trunk_the_combination():
    """IMTL-G (heads weight 1): the gates and towers of MMoE get ∇ Σ L_i, the experts (below the
    views) ∇ Σ c_i L_i."""
    batch = make_batch(128)
    model = build("mmoe", True)
    stage = build_stage("imtl_g", TASKS)
    out, losses = forward(model, batch)
    stage.backward(losses, shared=task_views(out.views))
    got = gradients(model)
    c = torch.tensor([stage.diagnostics()[f"weight/{t}"] for t in TASKS])
    model.zero_grad()
    _, losses = forward(model, batch)
    sum(losses.values()).backward()
    plain = gradients(model)
    model.zero_grad()
    _, losses = forward(model, batch)
    sum(c[i] * losses[t] for i, t in enumerate(TASKS)).backward()
    combined = gradients(model)
    for key in got:
        if key.startswith(("gates.", "towers.")):
            torch.testing.assert_close(got[key], plain[key], rtol=1e-4, atol=1e-6, msg=key)
        elif key.startswith("experts."):
            torch.testing.assert_close(got[key], combined[key], rtol=1e-4, atol=1e-6, msg=key)
    assert any(key.startswith("experts.") for key in got)


@pytest.mark.parametrize("name, overrides", [("esmm", {}), ("aitm", {}), ("ple", {"num_levels": 2}),
                                              ("stem", {"num_levels": 2})])
def test_chained_and_multi_level_towers_have_no_views(name, overrides):
    torch.manual_seed(0)
    model = build_model(name, FEATURES, TASKS, **{**TINY[name], **overrides})
    assert not model.supports_task_views
    with pytest.raises(ValueError, match="cannot give task views"):
        model.task_views = True
    assert not model.task_views and not model(make_batch(8)).views


def test_task_views_are_checked():
    source = torch.zeros(4, 3, requires_grad=True) * 1
    with pytest.raises(ValueError, match="not \\[K"):
        ExpandedView(source, torch.zeros(2, 3, 4))
    experts = torch.zeros(3, 4, 5)
    with pytest.raises(ValueError, match="cannot be"):
        MixtureView(experts, torch.zeros(2, 4, 3), torch.zeros(2, 4, 6))
    with pytest.raises(ValueError, match="at least one view"):
        TaskViews(())


@pytest.mark.parametrize("name", ["shared_bottom", "omoe"])
@pytest.mark.parametrize("stage_name", ["pcgrad", "mgda", "getmtl"])
def test_where_the_representation_is_the_same_the_update_is_too(name, stage_name):
    """SharedBottom and OMoE split after one shared tensor: the views give the update the K partial
    backward passes at that tensor gave."""
    batch = make_batch(128)
    results = []
    for views in (False, True):
        model, stage = build(name, views), build_stage(stage_name, TASKS)
        out, losses = forward(model, batch)
        stage.backward(losses, shared=task_views(out.views) if views else out.shared)
        results.append(gradients(model))
    old, new = results
    assert old.keys() == new.keys()
    for key in old:
        torch.testing.assert_close(new[key], old[key], rtol=1e-4, atol=1e-7, msg=key)
