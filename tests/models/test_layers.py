"""Building blocks: batched experts equal a per-expert loop; gates; expert mixing; embeddings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recsys_hmtl.data.batch import Batch
from recsys_hmtl.data.spec import FeatureSpec, SparseFeature
from recsys_hmtl.errors import InputError
from recsys_hmtl.models.embeddings import FeatureEmbedding
from recsys_hmtl.models.layers import (
    Gates,
    GroupedMLP,
    mix_experts,
    mix_task_experts,
    short_softmax,
)


def loop_reference(mlp: GroupedMLP, x: torch.Tensor, activate_last: bool) -> torch.Tensor:
    """The same MLPs evaluated one group at a time with plain ``F.linear``."""
    outs = []
    for g in range(mlp.num_groups):
        h = x if mlp.shared_input else x[g]
        for layer in range(len(mlp.weights)):
            weight, bias = mlp.layer_params(g, layer)
            h = F.linear(h, weight.T, bias)
            if layer < len(mlp.weights) - 1 or activate_last:
                h = torch.relu(h)
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("shared_input", [True, False])
@pytest.mark.parametrize("activate_last", [True, False])
def test_batched_experts_equal_per_expert_loop(shared_input, activate_last):
    torch.manual_seed(0)
    mlp = GroupedMLP(5, 12, [32, 16, 8], shared_input=shared_input, activate_last=activate_last)
    x = torch.randn(64, 12) if shared_input else torch.randn(5, 64, 12)
    out = mlp(x)
    assert out.shape == (5, 64, 8)
    torch.testing.assert_close(out, loop_reference(mlp, x, activate_last), atol=1e-6, rtol=0)


def test_batched_experts_gradients_equal_per_expert_loop():
    torch.manual_seed(1)
    mlp = GroupedMLP(4, 6, [10, 3], shared_input=True)
    x = torch.randn(32, 6, requires_grad=True)
    (mlp(x) ** 2).sum().backward()
    batched = [p.grad.clone() for p in mlp.parameters()] + [x.grad.clone()]
    mlp.zero_grad()
    x.grad = None
    (loop_reference(mlp, x, True) ** 2).sum().backward()
    looped = [p.grad for p in mlp.parameters()] + [x.grad]
    for a, b in zip(batched, looped):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_experts_are_independent_groups():
    """Changing one expert's weights changes that expert's output only."""
    torch.manual_seed(2)
    mlp = GroupedMLP(3, 4, [6, 5], shared_input=True)
    x = torch.randn(8, 4)
    before = mlp(x).detach()
    with torch.no_grad():
        mlp.weights[1][1] += 1.0
    after = mlp(x).detach()
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.allclose(before[1], after[1])


@pytest.mark.parametrize("hidden", [(), (8, 4)])
def test_gates_are_softmax_over_experts(hidden):
    torch.manual_seed(3)
    gates = Gates(3, 10, 7, hidden)
    g = gates(torch.randn(16, 10))
    assert g.shape == (3, 16, 7)
    torch.testing.assert_close(g.sum(-1), torch.ones(3, 16))
    assert (g > 0).all()
    assert len(gates.net.weights) == len(hidden) + 1


def test_mix_experts_equals_weighted_sum_loop():
    torch.manual_seed(4)
    gates = torch.softmax(torch.randn(3, 9, 5), -1)
    experts = torch.randn(5, 9, 4)
    expected = torch.stack(
        [sum(gates[n, :, e, None] * experts[e] for e in range(5)) for n in range(3)]
    )
    torch.testing.assert_close(mix_experts(gates, experts), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [1, 3])
def test_mix_task_experts_uses_each_tasks_own_experts(k):
    torch.manual_seed(5)
    t = 4
    gates = torch.softmax(torch.randn(t, 9, k), -1)
    experts = torch.randn(t * k, 9, 6)
    expected = torch.stack(
        [sum(gates[i, :, j, None] * experts[i * k + j] for j in range(k)) for i in range(t)]
    )
    torch.testing.assert_close(mix_task_experts(gates, experts, k), expected, atol=1e-6, rtol=0)


def _pooling_batch() -> Batch:
    # sample 0: ids [2, 3, 4]; sample 1: ids [5]; sample 2: no id (pools to zeros)
    sparse = KeyedJaggedTensor.from_lengths_sync(
        keys=["user", "tags"],
        values=torch.tensor([1, 2, 3, 2, 3, 4, 5]),
        lengths=torch.tensor([1, 1, 1, 3, 1, 0]),
    )
    dense = torch.tensor([[0.5], [1.5], [2.5]])
    return Batch(sparse=sparse, dense=dense, labels=torch.zeros(3, 1), groups=torch.zeros(3).long())


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_multi_valued_pooling_honoured(pooling):
    spec = FeatureSpec(
        sparse=(SparseFeature("user", 4), SparseFeature("tags", 6, True, pooling)), dense=("x",)
    )
    emb = FeatureEmbedding(spec, embedding_dim=2)
    with torch.no_grad():  # row r of the tags table = [r, 10 r]
        rows = torch.arange(6, dtype=torch.float32)
        emb.ebc.embedding_bags["tags"].weight.copy_(torch.stack([rows, 10 * rows], dim=1))
    out = emb(_pooling_batch())
    assert out.shape == (3, 2 * 2 + 1)
    tags = out[:, 2:4]
    # sum: [2+3+4, 10*(2+3+4)] = [9, 90]; mean: [3, 30]; sample 1: row 5; sample 2: empty → 0
    first = [9.0, 90.0] if pooling == "sum" else [3.0, 30.0]
    torch.testing.assert_close(tags, torch.tensor([first, [5.0, 50.0], [0.0, 0.0]]))
    user_table = emb.ebc.embedding_bags["user"].weight
    torch.testing.assert_close(out[:, :2], user_table[[1, 2, 3]].detach())
    torch.testing.assert_close(out[:, 4], torch.tensor([0.5, 1.5, 2.5]))  # dense last


def test_embedding_tables_named_by_prefix_and_buildable_on_meta():
    spec = FeatureSpec(sparse=(SparseFeature("user", 10**6), SparseFeature("item", 10)))
    emb = FeatureEmbedding(spec, embedding_dim=16, table_prefix="shared__", device="meta")
    assert emb.table_names == ["shared__user", "shared__item"]
    assert emb.ebc.embedding_bags["shared__user"].weight.is_meta
    assert emb.out_dim == 32


def test_unknown_pooling_is_a_clear_error():
    spec = FeatureSpec(sparse=(SparseFeature("tags", 5, True, "avg"),))
    with pytest.raises(InputError, match="pooling 'avg'.*'tags'"):
        FeatureEmbedding(spec, embedding_dim=4)


@pytest.mark.parametrize("width", [3, 8, 40])
def test_short_softmax_equals_torch_softmax(width):
    torch.manual_seed(width)
    logits = (torch.randn(5, 7, width) * 30).requires_grad_()
    ours = short_softmax(logits)
    torch.testing.assert_close(ours, torch.softmax(logits, -1), atol=1e-6, rtol=0)
    weights = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
    (g_ref,) = torch.autograd.grad((torch.softmax(logits, -1) * weights).sum(), logits)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-6, rtol=0)
