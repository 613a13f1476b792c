"""Multi-gate Mixture-of-Experts, MMoE (Ma et al., 2018a): shared experts, one softmax gate
per task, one tower per task.

Everything is batched: the experts' first layer and all task gates are one GEMM each on the
shared input, deeper expert layers one ``baddbmm``, the mixing of all tasks one ``bmm``, and all
task towers one ``baddbmm`` per layer (towers have equal shapes). Defaults from the STEM code's
MMoE config: 8 experts [512, 512, 512], gates [128, 64], towers [128, 64]. ``outputs.shared`` is
the embedding concat ``[B, F*dim + D]`` (the gates are task-specific, so no later tensor is shared
as a whole). Task views: the experts' outputs (each task's gate mixes its own view); the gates, task-specific,
read the embedding concat directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import FeatureSpec
from .base import ModelParams, MultiTaskModel, MultiTaskOutput
from .layers import Gates, GroupedMLP, mix_experts
from .registry import register_model


@dataclass(frozen=True)
class MMoEParams(ModelParams):
    NON_EMPTY = ("expert_dims",)

    num_experts: int = 8
    expert_dims: tuple[int, ...] = (512, 512, 512)
    gate_dims: tuple[int, ...] = (128, 64)
    tower_dims: tuple[int, ...] = (128, 64)


@register_model("mmoe")
class MMoE(MultiTaskModel):
    Params = MMoEParams
    # One gate per task (MMoE); OMoE sets False: one gate whose mixture feeds every tower.
    gate_per_task: bool = True

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: MMoEParams,
        *,
        embedding_device: torch.device | str | None = None,
    ) -> None:
        super().__init__(features, tasks, params, embedding_device=embedding_device)
        self.embedding = self.feature_embedding()
        in_dim = self.embedding.out_dim
        self.experts = GroupedMLP(
            params.num_experts,
            in_dim,
            params.expert_dims,
            shared_input=True,
            dropout=params.dropout,
        )
        num_gates = self.num_tasks if self.gate_per_task else 1
        self.gates = Gates(num_gates, in_dim, params.num_experts, params.gate_dims, dropout=params.dropout)
        self.towers = self.task_towers(self.experts.out_dim, shared_input=not self.gate_per_task)

    def shared_modules(self) -> list[nn.Module]:
        return [self.experts]

    @property
    def supports_task_views(self) -> bool:
        return True

    def forward(self, batch: Batch) -> MultiTaskOutput:
        views = self.view_recorder()
        x = self.embedding(batch)
        experts = self.experts(x)  # [E, B, H]
        if views is None:
            mixed = mix_experts(self.gates(x), experts)  # [T, B, H]
        else:  # each task's mixture of the shared experts is its view of them
            mixed = views.mixture(self.gates(x), experts)
        return self.output(self.towers(mixed).squeeze(-1), x, views)
