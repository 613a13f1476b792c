"""A small synthetic batch with a planted funnel, and tiny hyper-parameters for every tower.

Imported by the test modules as ``synthetic`` (a unique name; ``conftest`` is ambiguous)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recsys_hmtl.data.batch import Batch
from recsys_hmtl.data.spec import FeatureSpec, SparseFeature

TASKS = ("click", "like", "follow")
FEATURES = FeatureSpec(
    sparse=(
        SparseFeature("user", 40),
        SparseFeature("item", 60),
        SparseFeature("tags", 25, multi_valued=True, pooling="mean"),
    ),
    dense=("age", "duration"),
)

# Tiny sizes so every tower trains in well under a second on one core.
TINY = {
    "shared_bottom": dict(embedding_dim=4, bottom_dims=[16], tower_dims=[8]),
    "omoe": dict(embedding_dim=4, num_experts=3, expert_dims=[16], gate_dims=[], tower_dims=[8]),
    "mmoe": dict(
        embedding_dim=4, num_experts=3, expert_dims=[16, 8], gate_dims=[8], tower_dims=[8]
    ),
    "ple": dict(
        embedding_dim=4, num_levels=2, num_shared_experts=2, num_task_experts=2,
        expert_dims=[16], gate_dims=[8], tower_dims=[8],
    ),
    "esmm": dict(embedding_dim=4, tower_dims=[16, 8]),
    "aitm": dict(embedding_dim=4, bottom_dims=[16], tower_dims=[8]),
    "stem": dict(
        embedding_dim=4, num_levels=2, num_shared_experts=2, num_task_experts=2,
        expert_dims=[16], gate_dims=[8], tower_dims=[8],
    ),
}


def make_batch(batch_size: int = 256, seed: int = 0) -> Batch:
    """Labels follow a funnel planted in the features: click needs a good user×item score, like
    needs a click and a good item, follow needs a like and a keen user (deeper = rarer)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.Generator().manual_seed(1234)  # the planted scores are the same for every batch
    user_score = torch.randn(40, generator=scores)
    item_score = torch.randn(60, generator=scores)
    user = torch.randint(2, 40, (batch_size,), generator=g)
    item = torch.randint(2, 60, (batch_size,), generator=g)
    tag_lengths = torch.randint(0, 4, (batch_size,), generator=g)
    tags = torch.randint(2, 25, (int(tag_lengths.sum()),), generator=g)
    ones = torch.ones(batch_size, dtype=torch.long)
    sparse = KeyedJaggedTensor.from_lengths_sync(
        keys=FEATURES.sparse_names,
        values=torch.cat([user, item, tags]),
        lengths=torch.cat([ones, ones, tag_lengths]),
    )
    click = user_score[user] + item_score[item] > 0
    like = click & (item_score[item] > 0.3)
    follow = like & (user_score[user] > 0.3)
    labels = torch.stack([click, like, follow], dim=1).float()
    dense = torch.randn(batch_size, 2, generator=g)
    return Batch(sparse=sparse, dense=dense, labels=labels, groups=user)


def task_losses(outputs, labels: torch.Tensor) -> torch.Tensor:
    """Per-task BCE-with-logits ``[T]`` in one op (what the training step does)."""
    return F.binary_cross_entropy_with_logits(
        outputs.stacked, labels.T, reduction="none"
    ).mean(dim=1)
