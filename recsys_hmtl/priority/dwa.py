"""Dynamic weight average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention",
CVPR 2019).

w_i(t) = K·exp(r_i(t−1)/T) / Σ_j exp(r_j(t−1)/T),  r_i(t−1) = L̄_i(t−1) / L̄_i(t−2),

with L̄_i(e) the mean of task i's detached loss over epoch e and temperature T = 2. During the first
two epochs (no ratio yet) w_i = 1. Every call adds its detached losses to the running epoch sum;
:meth:`end_epoch` closes the epoch. The objective is Σ_i w_i L_i, weights detached.

Diagnostics: ``weight`` w_i, ``loss_ratio`` r_i (1 before two epochs have ended).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .base import LossStage
from .support import StageProfile
from .registry import register_stage


@register_stage("dwa")
class DynamicWeightAverageStage(LossStage):
    """DWA (Liu et al. 2019). Hyper-parameter: ``temperature`` (T, 2.0)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        self.temperature = positive(self.name, "temperature", temperature)
        k = self.num_tasks
        self.register_buffer("epoch_sum", torch.zeros(k))
        self.register_buffer("epoch_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("last_mean", torch.ones(k))       # L̄(t−1)
        self.register_buffer("before_last_mean", torch.ones(k))  # L̄(t−2)
        self.register_buffer("epochs_done", torch.zeros((), dtype=torch.int64))

    def objective(self, losses: Tensor) -> Tensor:
        if int(self.epochs_done) >= 2:
            ratio = self.last_mean / self.before_last_mean
            weights = self.num_tasks * torch.softmax(ratio / self.temperature, dim=0)
        else:
            ratio = torch.ones_like(self.last_mean)
            weights = torch.ones_like(self.last_mean)
        self.epoch_sum += losses.detach().to(self.epoch_sum)
        self.epoch_steps += 1
        self.record("weight", weights)
        self.record("loss_ratio", ratio)
        return (weights.to(losses) * losses).sum()

    def end_epoch(self) -> None:
        """Close the epoch: its mean loss becomes L̄(t−1). An epoch without steps changes nothing."""
        if int(self.epoch_steps) == 0:
            return
        self.before_last_mean.copy_(self.last_mean)
        self.last_mean.copy_(self.epoch_sum / self.epoch_steps.to(self.epoch_sum))
        self.epochs_done += 1
        self.epoch_sum.zero_()
        self.epoch_steps.zero_()
