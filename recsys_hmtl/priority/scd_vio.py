"""SCD-VIO: self-calibrated stratified gates (seed 001, Algorithm 1, Eq. 2-7).

Per step, in priority order i = 1..K:

1. ε_i ← threshold of the detached L_i *including this step* (Welford mean, Eq. 2 / Alg. 1 l. 4-7;
   or the Table 5 ablations ``ema`` | ``median`` | ``fixed``);
2. r_i = L_i − ε_i, ε_i detached, L_i not (Alg. 1 l. 8);
3. g_1 = 1 and, for i ≥ 2, g_i = Π_{j<i} σ(−r_j/α) (``recursive``, Eq. 5 / Alg. 1 l. 12-14),
   σ(−r_i/α) (``independent``, Table 5) or 1 (``none``, Table 5);
4. objective Σ_i g_i (1 + softplus(r_i/α)) L_i (Eq. 7 / Alg. 1 l. 17), or Σ_i g_i L_i with
   ``softplus_penalty=False`` (Table 5, "remove p_i / softplus penalty"); autograd flows through
   g_i and the softplus.

Diagnostics: ``gate`` g_i, ``violation`` p_i = σ(r_i/α) (Eq. 5), ``residual`` r_i, ``threshold`` ε_i,
``weight`` g_i·(1 + softplus(r_i/α)) and ``feasibility_gap`` = mean over i > 1 of max(0, r_i)
(App. B.3; 0 for a single task).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._hparams import choose, positive
from .base import LossStage
from .registry import register_stage
from .thresholds import build_threshold


def recursive_gates(residuals: Tensor, alpha: float) -> Tensor:
    """g_1 = 1, g_i = Π_{j<i} σ(−r_j/α) (Eq. 5 of seed 001)."""
    upstream = torch.sigmoid(-residuals[:-1] / alpha)
    return torch.cat([residuals.new_ones(1), torch.cumprod(upstream, dim=0)])


def independent_gates(residuals: Tensor, alpha: float) -> Tensor:
    """g_1 = 1, g_i = σ(−r_i/α) from the task's own residual (Table 5 of seed 001)."""
    return torch.cat([residuals.new_ones(1), torch.sigmoid(-residuals[1:] / alpha)])


def no_gates(residuals: Tensor, alpha: float) -> Tensor:
    """g_i ≡ 1 (Table 5 of seed 001, "no gating")."""
    return torch.ones_like(residuals)


GATES: dict[str, Callable[[Tensor, float], Tensor]] = {
    "recursive": recursive_gates,
    "independent": independent_gates,
    "none": no_gates,
}


@register_stage("scd_vio")
class ScdVioStage(LossStage):
    """SCD-VIO (seed 001). Hyper-parameters: ``alpha`` (α, 1.0), ``gate`` (recursive | independent |
    none), ``threshold`` (mean | ema | median | fixed), ``softplus_penalty`` (True), and the options
    of the chosen threshold: ``ema_decay`` (0.9, ema), ``window`` (1000 steps, median),
    ``fixed_thresholds`` (one per task, fixed)."""

    def __init__(
        self,
        tasks: Sequence[str],
        alpha: float = 1.0,
        gate: str = "recursive",
        threshold: str = "mean",
        softplus_penalty: bool = True,
        ema_decay: float | None = None,
        window: int | None = None,
        fixed_thresholds: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(tasks)
        self.alpha = positive(self.name, "alpha", alpha)
        self.gate = gate
        self._gates = choose(self.name, "gate", gate, GATES)
        if not isinstance(softplus_penalty, bool):
            raise ValueError(f"stage '{self.name}': softplus_penalty must be true or false")
        self.softplus_penalty = softplus_penalty
        self.thresholds = build_threshold(
            self.name, threshold, self.tasks,
            ema_decay=ema_decay, window=window, fixed_thresholds=fixed_thresholds,
        )

    def objective(self, losses: Tensor) -> Tensor:
        eps = self.thresholds.update(losses.detach()).to(losses)   # Alg. 1 l. 4-7 (this step included)
        residuals = losses - eps                                    # Alg. 1 l. 8, ε detached
        gates = self._gates(residuals, self.alpha)                  # Eq. 5 / Table 5
        if self.softplus_penalty:
            weights = gates * (1.0 + F.softplus(residuals / self.alpha))  # Eq. 7
        else:
            weights = gates
        r = residuals.detach()
        self.record("gate", gates)
        self.record("violation", torch.sigmoid(r / self.alpha))
        self.record("residual", r)
        self.record("threshold", eps)
        self.record("weight", weights)
        gap = r[1:].clamp_min(0).mean() if self.num_tasks > 1 else r.new_zeros(())
        self._diagnostics["feasibility_gap"] = float(gap)           # App. B.3
        return (weights * losses).sum()

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.tasks)}, alpha={self.alpha}, gate={self.gate!r}, "
            f"softplus_penalty={self.softplus_penalty}"
        )
