"""GetMTL (seed 002, Algorithm 1, Eq. 2-14): a gradient trade-off near the average gradient.

1. per-task gradients g_i, average g_0 = (1/K) Σ g_i (Eq. 16; Algorithm 1 line 2 prints a sum);
2. β = MGDA min-norm weights (Eq. 5-6, Frank-Wolfe), g_βi = β_i g_i;
3. w = argmin_{w ∈ simplex} J(w) = g_0·g_w + ε‖g_0‖²‖g_w‖ with g_w = Σ_i w_i g_βi (Eq. 14; the
   positive denominator 1 − ε²‖g_0‖² does not move the minimiser);
4. d = (g_0 + ε‖g_0‖² g_w/‖g_w‖) / (1 − ε²‖g_0‖²) (Eq. 13/16).

Step 4 divides only where 1 − ε²‖g_0‖² > 0; otherwise d = g_0 + ε‖g_0‖² g_w/‖g_w‖ (the reference
code has no guard; ``diagnostics()["guard"]`` is 1 when it applies).

What d solves: the Lagrangian of Eq. 19-22 differentiates the constraint as
‖d − g_0‖² ≤ ε²‖g_0‖²‖d‖², the ball of centre g_0/(1 − ε²‖g_0‖²) and radius
ε‖g_0‖²/(1 − ε²‖g_0‖²); d is the maximiser of min_i ⟨g_βi, d⟩ over that ball, lies on its boundary,
and min_i ⟨g_βi, d⟩ = J(w)/(1 − ε²‖g_0‖²) (Eq. 18). Eq. 8 as printed, ‖d − g_0‖ ≤ ε g_0ᵀd, is
the tighter cone that d meets only when g_w is parallel to g_0.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .min_norm import min_norm_weights, solve_simplex
from .registry import register_stage
from .task_grads import GradientStage


@register_stage("getmtl")
class GetMTLStage(GradientStage):
    """Task-specific parameters get their plain ∂L_i/∂θ_i (GetMTL acts on the shared θ^sh)."""

    def __init__(self, tasks: Sequence[str], eps: float = 0.0075) -> None:
        super().__init__(tasks)
        self.eps = positive(self.name, "eps", eps)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        k = self.num_tasks
        mean = torch.full((k,), 1.0 / k, dtype=gram.dtype)
        beta = min_norm_weights(gram)
        g0_sq = float(mean @ gram @ mean)  # ‖g_0‖²
        radius = self.eps * g0_sq  # ε‖g_0‖²
        # J(w) in Gram terms: g_βi·g_0 = β_i (M 1/K)_i, ‖g_w‖² = (w∘β)ᵀ M (w∘β)
        w = solve_simplex(gram * torch.outer(beta, beta), beta * (gram @ mean), radius)
        gw = w * beta  # g_w as coefficients over the raw gradients
        gw_sq = float(gw @ gram @ gw)
        denom = 1.0 - self.eps**2 * g0_sq
        self._diagnostics["guard"] = float(denom <= 0)
        self._diagnostics["constraint_denominator"] = denom
        self.record("beta", beta)
        self.record("trade_off", w)
        coeffs = mean + (radius / gw_sq**0.5) * gw if gw_sq > 0 else mean
        return coeffs / denom if denom > 0 else coeffs

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
