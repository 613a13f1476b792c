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

``eps_mode="relative"`` (an explicit option; the default ``"absolute"`` is the paper): ε is read
relative to ‖g_0‖, i.e. Algorithm 1 (line 151), Eq. 12-14 and Eq. 8 run with ε_eff = ε/‖g_0‖, so

    J(w) = g_0·g_w + ε‖g_0‖‖g_w‖,   d = (g_0 + ε‖g_0‖ g_w/‖g_w‖) / (1 − ε²),

and Eq. 8 becomes ‖d − g_0‖ ≤ ε ĝ_0ᵀd (ĝ_0 = g_0/‖g_0‖), a cone whose opening no longer depends on the
gradient scale. Why: in Eq. 8 ε multiplies g_0ᵀd, so ε carries units of 1/gradient, and the
correction ε‖g_0‖² g_w/‖g_w‖ is ε‖g_0‖ relative to g_0: with ε = 0.0075 (Sec. 6.4) and the
small gradient norms of mean BCE losses (shrinking further as the batch grows), that is a tiny
fraction of g_0 (measured at batch 4096: coefficients 1/K to within 4e-5, i.e. plain averaging). In relative mode the correction's size
relative to g_0 is ε itself. Default ε = 0.5 in this mode: the same trust region as this project's
CAGrad default (‖d − g_0‖ ≤ c‖g_0‖ before rescaling, c = 0.5), whose dual GetMTL's J(w) shares.
ε must lie in (0, 1) here, so the factor 1/(1 − ε²) (4/3 at ε = 0.5) is always defined and the
guard never applies; with ‖g_0‖ = 0 the correction is 0 (no division by ‖g_0‖ is made).
Diagnostic ``relative_correction`` = ε‖g_0‖²/‖g_0‖ (absolute) or ε (relative): the size of the
correction before the 1/(1 − ε²‖g_0‖²) factor, relative to ‖g_0‖.

What the relative mode does not change: where MGDA gives some β_i = 0, g_βi = 0 is a vertex with
J = 0 ≤ J(any w), so g_w = 0 and d = g_0/(1 − ε²‖g_0‖²), uniform coefficients, in either mode
(the degenerate case above). With many tasks β is often sparse: on the 8-task KuaiRand demo
(MMoE, 531 steps) some β_i was 0 on 479 steps, so the coefficients stayed uniform there.

``beta_support="positive"`` (an explicit option; the default ``"all"`` is the paper) takes the
minimum of J(w) over the simplex of the tasks with β_i > 0 only (Eq. 14 restricted to that face):
a task MGDA gives no weight contributes g_βi = 0, and Eq. 14's vertex at it is the degenerate
g_w = 0 above, which turns the method into plain averaging whenever β is sparse. With it, g_w is a
combination of the tasks MGDA keeps, and the correction of step 4 acts.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import choose, positive
from .min_norm import min_norm_weights, solve_simplex
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage


EPS_MODES = {"absolute": "absolute", "relative": "relative"}
BETA_SUPPORTS = {"all": "all", "positive": "positive"}
DEFAULT_EPS = {"absolute": 0.0075, "relative": 0.5}  # Sec. 6.4 | the CAGrad default c (see above)


@register_stage("getmtl")
class GetMTLStage(GradientStage):
    """Task-specific parameters get their plain ∂L_i/∂θ_i (GetMTL acts on the shared θ^sh).

    Hyper-parameters: ``eps`` (ε; 0.0075, or 0.5 with ``eps_mode="relative"``), ``eps_mode``
    (absolute = the paper | relative: ε in units of ‖g_0‖), ``beta_support`` (all = the paper |
    positive: w only over the tasks with β_i > 0); see the module docstring."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K²) dual", "O(K·D)")

    def __init__(
        self, tasks: Sequence[str], eps: float | None = None, eps_mode: str = "absolute",
        beta_support: str = "all",
    ) -> None:
        super().__init__(tasks)
        self.beta_support = choose(self.name, "beta_support", beta_support, BETA_SUPPORTS)
        self.eps_mode = choose(self.name, "eps_mode", eps_mode, EPS_MODES)
        self.eps = positive(self.name, "eps", DEFAULT_EPS[self.eps_mode] if eps is None else eps)
        if self.eps_mode == "relative" and self.eps >= 1.0:
            raise ValueError(
                f"stage '{self.name}': eps must lie in (0, 1) with eps_mode='relative' "
                f"(the factor 1/(1 − eps²)), got {eps!r}"
            )

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        k = self.num_tasks
        mean = torch.full((k,), 1.0 / k, dtype=gram.dtype)
        beta = min_norm_weights(gram)
        g0_sq = float(mean @ gram @ mean)  # ‖g_0‖²
        if self.eps_mode == "relative":  # ε_eff = ε/‖g_0‖: ε_eff‖g_0‖² = ε‖g_0‖, ε_eff²‖g_0‖² = ε²
            g0_norm = max(g0_sq, 0.0) ** 0.5
            radius, eps_g0_sq = self.eps * g0_norm, self.eps**2
            self._diagnostics["relative_correction"] = self.eps if g0_norm > 0 else 0.0
        else:
            radius, eps_g0_sq = self.eps * g0_sq, self.eps**2 * g0_sq  # ε‖g_0‖², ε²‖g_0‖²
            self._diagnostics["relative_correction"] = self.eps * max(g0_sq, 0.0) ** 0.5
        # J(w) in Gram terms: g_βi·g_0 = β_i (M 1/K)_i, ‖g_w‖² = (w∘β)ᵀ M (w∘β)
        keep = beta > 0 if self.beta_support == "positive" else torch.ones_like(beta, dtype=torch.bool)
        sub = gram[keep][:, keep] * torch.outer(beta[keep], beta[keep])
        w = torch.zeros_like(beta)
        w[keep] = solve_simplex(sub, (beta * (gram @ mean))[keep], radius)  # Eq. 14 (on the face kept)
        gw = w * beta  # g_w as coefficients over the raw gradients
        gw_sq = float(gw @ gram @ gw)
        denom = 1.0 - eps_g0_sq
        self._diagnostics["guard"] = float(denom <= 0)
        self._diagnostics["constraint_denominator"] = denom
        self.record("beta", beta)
        self.record("trade_off", w)
        coeffs = mean + (radius / gw_sq**0.5) * gw if gw_sq > 0 else mean
        return coeffs / denom if denom > 0 else coeffs

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, eps={self.eps}, eps_mode={self.eps_mode!r}, "
                f"beta_support={self.beta_support!r}")
