"""STEM (Su et al., AAAI 2024): shared and task-specific embeddings with all-forward, task-specific
backward gating.

Embeddings: T+1 TorchRec ``EmbeddingBagCollection``s, one shared (tables ``shared__<feature>``) and
one per task (``<task>__<feature>``), each shardable on its own. At a level, task t's experts read
task t's input, the shared experts read the shared input, and task t's gate (on task t's input +
the shared input) mixes ALL experts, with the outputs of the other tasks' experts detached
("all forward, task-specific backward"): task i's loss never reaches task j's embeddings, experts or
gate. The shared gate (on the shared input, over all experts; skipped at the last level) feeds the
next level's shared experts; it also sees the task experts detached, so the guarantee holds at every
level (with the default single level this is exactly the paper's model). Defaults from the STEM
code's config: 1 level, 8 shared + 1 task expert per task, experts [512, 512, 512], gates [128, 64],
towers [128, 64]. ``outputs.shared`` is the shared-embedding concat ``[B, F*dim + D]``. Task views (one level only):
the shared experts' outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..data.batch import Batch
from ..data.spec import FeatureSpec
from .base import ModelParams, MultiTaskModel, MultiTaskOutput, TaskViewRecorder
from .layers import (
    Gates,
    GroupedMLP,
    level_shared_modules,
    mix_experts,
    mix_task_experts,
    repeat_per_expert,
)
from .registry import register_model

SHARED_PREFIX = "shared__"


@dataclass(frozen=True)
class STEMParams(ModelParams):
    NON_EMPTY = ("expert_dims",)

    num_levels: int = 1
    num_shared_experts: int = 8
    num_task_experts: int = 1
    expert_dims: tuple[int, ...] = (512, 512, 512)
    gate_dims: tuple[int, ...] = (128, 64)
    tower_dims: tuple[int, ...] = (128, 64)


def task_table_prefix(task: str) -> str:
    return f"{task}__"


class STEMLevel(nn.Module):
    """``(x_tasks [T, B, in], x_shared [B, in])`` → ``(out_tasks [T, B, H], out_shared [B, H])``;
    ``out_shared`` is None at the last level."""

    def __init__(self, num_tasks: int, in_dim: int, params: STEMParams, *, last: bool) -> None:
        super().__init__()
        t, k, s = num_tasks, params.num_task_experts, params.num_shared_experts
        drop = params.dropout
        self.num_tasks, self.experts_per_task = t, k
        self.task_experts = GroupedMLP(
            t * k, in_dim, params.expert_dims, shared_input=False, dropout=drop
        )
        self.shared_experts = GroupedMLP(
            s, in_dim, params.expert_dims, shared_input=True, dropout=drop
        )
        self.task_gates = Gates(
            t, in_dim, t * k + s, params.gate_dims, shared_input=False, dropout=drop
        )
        self.shared_gate = (
            None if last else Gates(1, in_dim, t * k + s, params.gate_dims, dropout=drop)
        )
        # other_mask[t, 0, j*K + k] = 1 iff expert (j, k) belongs to another task than t.
        owner = torch.arange(t).repeat_interleave(k)
        other = (owner.unsqueeze(0) != torch.arange(t).unsqueeze(1)).float().unsqueeze(1)
        self.register_buffer("other_mask", other, persistent=False)
        self.out_dim = self.shared_experts.out_dim

    def forward(self, x_tasks: Tensor, x_shared: Tensor,
                views: TaskViewRecorder | None = None) -> tuple[Tensor, Tensor | None]:
        """``views`` (a one-level STEM): task t's gate mixes its own view of the shared experts'
        outputs."""
        t, k = self.num_tasks, self.experts_per_task
        own = self.task_experts(repeat_per_expert(x_tasks, k))  # [T*K, B, H]
        frozen = own.detach()  # what every OTHER task sees of these experts
        shared = self.shared_experts(x_shared)  # [S, B, H]
        gates = self.task_gates(x_tasks + x_shared)  # [T, B, T*K+S]
        g_task, g_shared = gates[..., : t * k], gates[..., t * k :]
        # Task t's weights on its own experts: the diagonal blocks of g_task.
        g_own = torch.diagonal(g_task.unflatten(-1, (t, k)), dim1=0, dim2=2).permute(2, 0, 1)
        out_tasks = (
            mix_task_experts(g_own, own, k)
            + mix_experts(g_task * self.other_mask, frozen)
            + (mix_experts(g_shared, shared) if views is None else views.mixture(g_shared, shared))
        )
        if self.shared_gate is None:
            return out_tasks, None
        g = self.shared_gate(x_shared)  # [1, B, T*K+S]
        out_shared = mix_experts(g[..., : t * k], frozen) + mix_experts(g[..., t * k :], shared)
        return out_tasks, out_shared[0]


@register_model("stem")
class STEM(MultiTaskModel):
    Params = STEMParams

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: STEMParams,
        *,
        embedding_device: torch.device | str | None = None,
    ) -> None:
        super().__init__(features, tasks, params, embedding_device=embedding_device)
        self.shared_embedding = self.feature_embedding(SHARED_PREFIX)
        self.task_embeddings = nn.ModuleList(
            self.feature_embedding(task_table_prefix(task)) for task in self.tasks
        )
        in_dim, levels = self.shared_embedding.out_dim, []
        for level in range(params.num_levels):
            levels.append(
                STEMLevel(self.num_tasks, in_dim, params, last=level == params.num_levels - 1)
            )
            in_dim = levels[-1].out_dim
        self.levels = nn.ModuleList(levels)
        self.towers = self.task_towers(in_dim, shared_input=False)

    def shared_modules(self) -> list[nn.Module]:
        return level_shared_modules(self.levels)

    @property
    def supports_task_views(self) -> bool:
        return self.params.num_levels == 1

    def forward(self, batch: Batch) -> MultiTaskOutput:
        views = self.view_recorder()
        x_shared = self.shared_embedding(batch)  # [B, F*dim + D]
        x_tasks = torch.stack([embedding(batch) for embedding in self.task_embeddings])
        shared_rep = x_shared
        for level in self.levels:
            x_tasks, x_shared = level(x_tasks, x_shared, views)
        return self.output(self.towers(x_tasks).squeeze(-1), shared_rep, views)
