"""Dynamic task prioritisation (Guo, Haque, Huang, Yeung & Fei-Fei, ECCV 2018).

DTP weighs task i by the focal term FL(κ_i; γ) = −(1 − κ_i)^γ log κ_i of a key-performance
indicator κ_i ∈ (0, 1] that is smoothed by an exponential moving average, so tasks that perform
worse get more weight. We use the loss itself as the KPI: κ_i = exp(−L̄_i), L̄_i the EMA of the
detached L_i (this step included, started at the first value), hence

    w_i = (1 − exp(−L̄_i))^γ · L̄_i,   objective Σ_i w_i L_i  (w detached).

Diagnostics: ``weight`` w_i, ``kpi`` κ_i.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive, unit_interval
from .base import LossStage
from .support import StageProfile
from .registry import register_stage
from .thresholds import RunningEMA


@register_stage("dtp")
class DynamicTaskPrioritizationStage(LossStage):
    """DTP (Guo et al. 2018). Hyper-parameters: ``gamma`` (focusing γ, 2.0), ``ema_decay`` (0.9)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(self, tasks: Sequence[str], gamma: float = 2.0, ema_decay: float = 0.9) -> None:
        super().__init__(tasks)
        self.gamma = positive(self.name, "gamma", gamma, allow_zero=True)
        self.smoothed = RunningEMA(self.num_tasks, unit_interval(self.name, "ema_decay", ema_decay))

    def objective(self, losses: Tensor) -> Tensor:
        negative = losses.detach() < 0
        if bool(negative.any()):
            i = int(negative.nonzero()[0])
            raise ValueError(
                f"stage '{self.name}': task '{self.tasks[i]}' has a negative loss "
                f"{float(losses[i].detach())}; DTP's KPI exp(−L) needs L >= 0"
            )
        smoothed = self.smoothed.update(losses.detach())
        kpi = torch.exp(-smoothed)                                   # κ_i = exp(−L̄_i)
        weights = (-torch.expm1(-smoothed)).pow(self.gamma) * smoothed  # −(1 − κ)^γ log κ
        self.record("weight", weights)
        self.record("kpi", kpi)
        return (weights.to(losses) * losses).sum()
