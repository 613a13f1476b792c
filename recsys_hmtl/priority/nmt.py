"""NMT, "No More Tuning": prioritised Lagrangian with differential multipliers (Cheng, Huang,
Zhang, Ou & Liu, AAAI 2025).

Our reading. NMT optimises tasks step-wise in priority order: task k is minimised subject to every
higher-priority task j < k keeping its loss at its optimum, L_j ≤ L_j*, and the constraints enter
through Lagrange multipliers updated by the differential multiplier method (gradient descent on
the model, projected gradient ascent on the multipliers). Merging the K stages into one training
step, with one multiplier λ_j ≥ 0 per constrained task j = 1..K−1, gives the Lagrangian

    Λ(θ, λ) = Σ_i L_i + Σ_{j<K} λ_j (L_j − L_j*)

and, after Λ is formed, λ_j ← max(0, λ_j + η_λ (L_j − L_j*)) with L_j detached. Because the optimum
L_j* is unknown during training we take the best value reached so far: L_j* = running minimum of an
EMA (``ema_decay``) of the detached L_j, this step included. With ``rescale`` (default) the objective
is Λ / (1 + Σ_j λ_j), NMT's re-scaling that keeps the step size bounded as multipliers grow.
No balancing weight is tuned; η_λ (``multiplier_lr``) only sets how fast violations are corrected.

Diagnostics: ``weight`` ∂objective/∂L_i, ``multiplier`` λ_i (0 for the last task),
``threshold`` L_i*, ``violation`` L_i − L_i*.
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


@register_stage("nmt")
class NoMoreTuningStage(LossStage):
    """NMT (Cheng et al. 2025), our reading above. Hyper-parameters: ``multiplier_lr`` (η_λ, 0.1),
    ``ema_decay`` (0.9; 0 = the raw running minimum), ``rescale`` (True)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(
        self,
        tasks: Sequence[str],
        multiplier_lr: float = 0.1,
        ema_decay: float = 0.9,
        rescale: bool = True,
    ) -> None:
        super().__init__(tasks)
        self.multiplier_lr = positive(self.name, "multiplier_lr", multiplier_lr)
        if not isinstance(rescale, bool):
            raise ValueError(f"stage '{self.name}': rescale must be true or false")
        self.rescale = rescale
        self.smoothed = RunningEMA(self.num_tasks, unit_interval(self.name, "ema_decay", ema_decay))
        self.register_buffer("optimum", torch.full((self.num_tasks,), float("inf")))
        self.register_buffer("multipliers", torch.zeros(self.num_tasks))  # last entry stays 0

    def objective(self, losses: Tensor) -> Tensor:
        detached = losses.detach().to(self.optimum)
        torch.minimum(self.optimum, self.smoothed.update(detached), out=self.optimum)
        lam = self.multipliers.clone().to(losses)   # the buffer moves after the objective
        optimum = self.optimum.to(losses)
        lagrangian = losses.sum() + (lam * (losses - optimum)).sum()
        scale = 1.0 + lam.sum() if self.rescale else losses.new_ones(())
        violation = detached - self.optimum
        constrained = torch.ones_like(violation)
        constrained[-1] = 0.0
        self.multipliers.add_(self.multiplier_lr * violation * constrained).clamp_(min=0.0)
        self.record("weight", (1.0 + lam) / scale)
        self.record("multiplier", lam)
        self.record("threshold", optimum)
        self.record("violation", violation)
        return lagrangian / scale
