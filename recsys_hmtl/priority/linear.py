"""Linear scalarisation: ``sum`` (Σ L_i, the baseline of every table) and ``weighted`` (Σ w_i L_i)."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import per_task
from .base import LossStage
from .support import StageProfile
from .registry import register_stage


@register_stage("sum")
class SumStage(LossStage):
    """Σ_i L_i (linear scalarisation, SPEC §5)."""
    profile = StageProfile("fixed", "O(K)", "O(K)")

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)

    def objective(self, losses: Tensor) -> Tensor:
        self.record("weight", torch.ones_like(losses))
        return losses.sum()


@register_stage("weighted")
class WeightedStage(LossStage):
    """Σ_i w_i L_i with fixed weights (list in priority order or ``{task: weight}``; default 1 each)."""
    profile = StageProfile("fixed", "O(K)", "O(K)")

    def __init__(
        self, tasks: Sequence[str], weights: Sequence[float] | Mapping[str, float] | None = None
    ) -> None:
        super().__init__(tasks)
        values = [1.0] * len(self.tasks) if weights is None else weights
        w = per_task(self.name, "weights", values, self.tasks)
        if bool((w < 0).any()):
            raise ValueError(f"stage '{self.name}': weights must be >= 0, got {w.tolist()}")
        self.register_buffer("weights", w)

    def objective(self, losses: Tensor) -> Tensor:
        w = self.weights.to(losses)
        self.record("weight", w)
        return (w * losses).sum()
