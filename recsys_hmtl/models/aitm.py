"""AITM (Xi et al., 2021): per-task bottoms, adaptive information transfer from task k-1 to task
k, and the behavioural-expectation calibrator.

Task k's bottom gives q_k; the transferred information is p_{k-1} = g_{k-1}(z_{k-1}) (one ReLU
layer per transition; z_1 = q_1), and z_k = AIT(p_{k-1}, q_k) is the paper's AIT module, an
attention over the pair u ∈ {p_{k-1}, q_k}: w_u = softmax_u(<h1(u), h2(u)>/√d),
z_k = Σ_u w_u h3(u), with h1..h3 one fused linear map shared by all transitions (as in the
authors' code). Tower k reads z_k. The chain makes a loop over tasks unavoidable; the bottoms and
towers of all tasks are batched.

Calibrator (the paper's label constraint): ``auxiliary_losses`` returns
``{"calibrator": α · Σ_{k≥2} mean_b(max(p_k − p_{k−1}, 0))}`` with p = σ(logit) and
α = ``calibrator_weight`` (0.6 as in the authors' code); the training step adds it to the combined
task loss. Defaults from the STEM code's AITM config: bottoms [512, 512, 512], towers [128, 128].
``outputs.shared`` is the embedding concat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data.batch import Batch
from ..data.spec import FeatureSpec
from .base import ModelParams, MultiTaskModel, MultiTaskOutput
from .layers import GroupedMLP
from .registry import register_model


@dataclass(frozen=True)
class AITMParams(ModelParams):
    NON_EMPTY = ("bottom_dims",)

    bottom_dims: tuple[int, ...] = (512, 512, 512)
    tower_dims: tuple[int, ...] = (128, 128)
    calibrator_weight: float = 0.6


class AttentionTransferUnit(nn.Module):
    """AIT(p, q): self-attention over the two vectors; ``[B, d]`` × 2 → ``[B, d]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)  # h1, h2, h3 in one GEMM

    def forward(self, transferred: Tensor, own: Tensor) -> Tensor:
        u = torch.stack([transferred, own], dim=1)  # [B, 2, d]
        query, key, value = self.qkv(u).chunk(3, dim=-1)
        weights = torch.softmax((query * key).sum(-1) / math.sqrt(self.dim), dim=1)  # [B, 2]
        return torch.bmm(weights.unsqueeze(1), value).squeeze(1)


def calibrator_loss(logits: Tensor, weight: float) -> Tensor:
    """α · Σ_{k≥2} mean(max(σ(z_k) − σ(z_{k−1}), 0)) for ``[T, B]`` logits (label constraint)."""
    if logits.shape[0] < 2:
        return logits.new_zeros(())
    p = torch.sigmoid(logits)
    return weight * torch.relu(p[1:] - p[:-1]).mean(dim=1).sum()


@register_model("aitm")
class AITM(MultiTaskModel):
    Params = AITMParams

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: AITMParams,
        *,
        embedding_device: torch.device | str | None = None,
    ) -> None:
        super().__init__(features, tasks, params, embedding_device=embedding_device)
        self.embedding = self.feature_embedding()
        self.bottoms = GroupedMLP(
            self.num_tasks,
            self.embedding.out_dim,
            params.bottom_dims,
            shared_input=True,
            dropout=params.dropout,
        )
        dim = self.bottoms.out_dim
        self.transfers = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU()) for _ in range(self.num_tasks - 1)
        )
        self.attention = AttentionTransferUnit(dim)
        self.towers = self.task_towers(dim, shared_input=False)

    def forward(self, batch: Batch) -> MultiTaskOutput:
        x = self.embedding(batch)
        q = self.bottoms(x)  # [T, B, d]
        z = [q[0]]
        for k, transfer in enumerate(self.transfers, start=1):
            z.append(self.attention(transfer(z[-1]), q[k]))
        return self.output(self.towers(torch.stack(z)).squeeze(-1), x)

    def auxiliary_losses(self, outputs: Mapping[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
        logits = torch.stack([outputs[task] for task in self.tasks])
        return {"calibrator": calibrator_loss(logits, self.params.calibrator_weight)}
