"""One-gate Mixture-of-Experts, OMoE (Ma et al., 2018a): experts mixed by ONE gate, whose output
feeds every task tower.

Defaults from the STEM code's OMoE config: 8 experts [512, 512, 512], gate [128, 64], towers
[128, 64]. ``outputs.shared`` is the mixture ``[B, expert_dims[-1]]`` (experts and gate are shared).
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
class OMoEParams(ModelParams):
    NON_EMPTY = ("expert_dims",)

    num_experts: int = 8
    expert_dims: tuple[int, ...] = (512, 512, 512)
    gate_dims: tuple[int, ...] = (128, 64)
    tower_dims: tuple[int, ...] = (128, 64)


@register_model("omoe")
class OMoE(MultiTaskModel):
    Params = OMoEParams

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: OMoEParams,
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
        self.gate = Gates(1, in_dim, params.num_experts, params.gate_dims, dropout=params.dropout)
        self.towers = GroupedMLP(
            self.num_tasks,
            self.experts.out_dim,
            [*params.tower_dims, 1],
            shared_input=True,
            dropout=params.dropout,
            activate_last=False,
        )

    def shared_modules(self) -> list[nn.Module]:
        return [self.experts, self.gate]

    def forward(self, batch: Batch) -> MultiTaskOutput:
        x = self.embedding(batch)
        shared = mix_experts(self.gate(x), self.experts(x))[0]  # [B, H]
        return self.output(self.towers(shared).squeeze(-1), shared)
