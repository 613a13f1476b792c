"""Progressive Layered Extraction, PLE (Tang et al., 2020): stacked CGC levels with task-specific
and shared experts.

Level l (the paper's CGC module): task t's gate mixes its own ``num_task_experts`` experts and the
``num_shared_experts`` shared ones; the shared gate mixes all experts and feeds the next level's
shared experts; it is skipped at the last level (nothing reads it). At level 0 every expert and
gate reads the embedding concat (one GEMM per module); later levels read their own task's / the
shared output. Defaults from the STEM code's PLE config: 1 level, 8 shared + 1 task expert per
task, experts [512, 512, 512], gates [128, 64], towers [128, 64]. ``outputs.shared`` is the
embedding concat ``[B, F*dim + D]``. Task views (one level only): the shared experts' outputs.
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


@dataclass(frozen=True)
class PLEParams(ModelParams):
    NON_EMPTY = ("expert_dims",)

    num_levels: int = 1
    num_shared_experts: int = 8
    num_task_experts: int = 1
    expert_dims: tuple[int, ...] = (512, 512, 512)
    gate_dims: tuple[int, ...] = (128, 64)
    tower_dims: tuple[int, ...] = (128, 64)


class CGCLevel(nn.Module):
    """One Customized Gate Control level: ``(x_tasks, x_shared) → (out_tasks [T,B,H], out_shared)``.

    ``first``: every module reads one shared ``x [B, in]`` (then ``x_tasks`` is that same tensor).
    """

    def __init__(
        self, num_tasks: int, in_dim: int, params: PLEParams, *, first: bool, last: bool
    ) -> None:
        super().__init__()
        self.num_tasks, self.first = num_tasks, first
        self.experts_per_task = params.num_task_experts
        k, s, drop = params.num_task_experts, params.num_shared_experts, params.dropout
        self.task_experts = GroupedMLP(
            num_tasks * k, in_dim, params.expert_dims, shared_input=first, dropout=drop
        )
        self.shared_experts = GroupedMLP(
            s, in_dim, params.expert_dims, shared_input=True, dropout=drop
        )
        self.task_gates = Gates(
            num_tasks, in_dim, k + s, params.gate_dims, shared_input=first, dropout=drop
        )
        self.shared_gate = (
            None if last else Gates(1, in_dim, num_tasks * k + s, params.gate_dims, dropout=drop)
        )
        self.out_dim = self.shared_experts.out_dim

    def forward(self, x_tasks: Tensor, x_shared: Tensor,
                views: TaskViewRecorder | None = None) -> tuple[Tensor, Tensor | None]:
        """``views`` (a one-level PLE): task t's gate mixes its own view of the shared experts'
        outputs."""
        k, tk = self.experts_per_task, self.task_experts.num_groups
        task_in = x_tasks if self.first else repeat_per_expert(x_tasks, k)
        own = self.task_experts(task_in)  # [T*K, B, H]
        shared = self.shared_experts(x_shared)  # [S, B, H]
        gates = self.task_gates(x_tasks)  # [T, B, K+S]
        mixed_shared = (mix_experts(gates[..., k:], shared) if views is None
                        else views.mixture(gates[..., k:], shared))
        out_tasks = mix_task_experts(gates[..., :k], own, k) + mixed_shared
        if self.shared_gate is None:
            return out_tasks, None
        g = self.shared_gate(x_shared)  # [1, B, T*K+S]
        out_shared = mix_experts(g[..., :tk], own) + mix_experts(g[..., tk:], shared)
        return out_tasks, out_shared[0]


@register_model("ple")
class PLE(MultiTaskModel):
    Params = PLEParams

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: PLEParams,
        *,
        embedding_device: torch.device | str | None = None,
    ) -> None:
        super().__init__(features, tasks, params, embedding_device=embedding_device)
        self.embedding = self.feature_embedding()
        in_dim, levels = self.embedding.out_dim, []
        for level in range(params.num_levels):
            first, last = level == 0, level == params.num_levels - 1
            levels.append(CGCLevel(self.num_tasks, in_dim, params, first=first, last=last))
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
        x = self.embedding(batch)
        x_tasks: Tensor = x
        x_shared: Tensor | None = x
        for level in self.levels:
            x_tasks, x_shared = level(x_tasks, x_shared, views)
        return self.output(self.towers(x_tasks).squeeze(-1), x, views)
