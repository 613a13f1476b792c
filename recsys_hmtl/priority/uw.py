"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

Each task has a learnable log-variance s_i = log σ_i² (``stage.parameters()``, initialised to 0);
the objective is Σ_i ½·exp(−s_i)·L_i + ½·s_i: the paper's regression form 1/(2σ²)·L + log σ with
s = log σ², which LibMTL uses for every task type (LibMTL starts s at −0.5; we start at 0, weight ½).

Diagnostics: ``weight`` ½·exp(−s_i), ``log_var`` s_i.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .base import LossStage
from .support import StageProfile
from .registry import register_stage


@register_stage("uw")
class UncertaintyWeightingStage(LossStage):
    """Kendall et al. 2018; no hyper-parameters (the log-variances are learnt with the model)."""
    profile = StageProfile("learned", "O(K)", "O(K)")

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.log_var = nn.Parameter(torch.zeros(self.num_tasks))

    def objective(self, losses: Tensor) -> Tensor:
        log_var = self.log_var.to(losses)
        weights = 0.5 * torch.exp(-log_var)
        self.record("weight", weights)
        self.record("log_var", log_var)
        return (weights * losses + 0.5 * log_var).sum()
