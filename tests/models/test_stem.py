"""STEM: T+1 embedding collections; all-forward, task-specific-backward gating (Su et al., 2024)."""

from __future__ import annotations

import pytest
import torch

from synthetic import FEATURES, TASKS, TINY, task_losses
from recsys_hmtl.models import build_model
from recsys_hmtl.models.stem import STEM


def build_stem(**overrides) -> STEM:
    torch.manual_seed(0)
    return build_model("stem", FEATURES, TASKS, **{**TINY["stem"], **overrides})


def table_grads(embedding) -> list[torch.Tensor | None]:
    return [bag.weight.grad for bag in embedding.ebc.embedding_bags.values()]


def has_grad(grad: torch.Tensor | None) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


def test_one_shared_and_one_collection_per_task_with_distinct_tables():
    model = build_stem()
    names = model.shared_embedding.table_names + [
        name for emb in model.task_embeddings for name in emb.table_names
    ]
    assert model.shared_embedding.table_names == ["shared__user", "shared__item", "shared__tags"]
    assert model.task_embeddings[1].table_names == ["like__user", "like__item", "like__tags"]
    assert len(names) == len(set(names)) == (len(TASKS) + 1) * len(FEATURES.sparse)


@pytest.mark.parametrize("levels", [1, 2])
def test_task_loss_never_reaches_other_tasks_embeddings_or_experts(levels, batch):
    model = build_stem(num_levels=levels)
    k = model.params.num_task_experts
    for i, task in enumerate(TASKS):
        model.zero_grad(set_to_none=True)
        task_losses(model(batch), batch.labels)[i].backward()
        assert all(has_grad(g) for g in table_grads(model.shared_embedding)), task
        assert all(has_grad(g) for g in table_grads(model.task_embeddings[i])), task
        for j in range(len(TASKS)):
            if j == i:
                continue
            assert not any(has_grad(g) for g in table_grads(model.task_embeddings[j])), (task, j)
            for level in model.levels:
                for weight in level.task_experts.weights:  # [T*K, in, out], task-major groups
                    assert not has_grad(weight.grad[j * k : (j + 1) * k]), (task, j)
                    assert has_grad(weight.grad[i * k : (i + 1) * k]), task
                for weight in level.task_gates.net.weights:  # [T, in, out]
                    assert not has_grad(weight.grad[j]), (task, j)


def test_all_forward_task_outputs_see_other_tasks_experts(batch):
    """Detaching changes gradients only: task 0's logit moves when task 1's embeddings move."""
    model = build_stem(num_levels=1)
    before = model(batch)["click"].detach()
    with torch.no_grad():
        for bag in model.task_embeddings[1].ebc.embedding_bags.values():
            bag.weight.add_(0.5)
    after = model(batch)["click"].detach()
    assert not torch.allclose(before, after)


def test_stem_shared_representation_is_the_shared_embedding(batch):
    model = build_stem()
    out = model(batch)
    expected = model.shared_embedding(batch)
    torch.testing.assert_close(out.shared, expected)
