"""FairGrad (Ban & Ji, ICML 2024, "Fair Resource Allocation in Multi-Task Learning").

The update d = Σ_i w_i g_i maximises the α-fair utility Σ_i (g_iᵀd)^{1−α}/(1−α) over a ball; its
optimality condition is the non-linear system (G Gᵀ w)_i = w_i^{−1/α}, w > 0 (α = 1: proportional
fairness, the Nash bargaining solution of Nash-MTL, Navon et al. 2022). The reference codes solve
it with ``scipy.optimize.least_squares`` (FairGrad) or a sequence of convex programs (Nash-MTL).

Here: the system is the stationarity condition of the strictly convex
φ(w) = ½ wᵀMw + Σ_i h(w_i), h'(w) = −w^{−1/α} (h = −log w for α = 1), minimised by damped
Newton steps (Hessian M + diag(w^{−1/α−1}/α)) that stay in w > 0. A ridge of 1e−8 · mean(diag M)
keeps w finite when a gradient is zero or the gradients are linearly dependent.
The whole model is trained on Σ_i w_i L_i, as in both references; their clipping of the shared
gradient to norm 1 is the trainer's gradient clipping.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage

_F64 = torch.float64


def fair_weights(
    gram: Tensor, alpha: float = 1.0, *, max_iter: int = 100, tol: float = 1e-20
) -> Tensor:
    """w > 0 with (M w)_i = w_i^{−1/α} (M the Gram matrix plus the ridge), by damped Newton."""
    m = gram.detach().to("cpu", _F64)
    diag = m.diagonal().clamp_min(0)
    ridge = 1e-8 * float(diag.mean()) + 1e-300
    m = m + ridge * torch.eye(m.shape[0], dtype=_F64)
    power = -1.0 / alpha

    def phi(w: Tensor) -> float:
        barrier = -torch.log(w) if alpha == 1.0 else -(w ** (1.0 + power)) / (1.0 + power)
        return float(0.5 * w @ m @ w + barrier.sum())

    w = (diag + ridge) ** (-alpha / (alpha + 1.0))  # exact when the gradients are orthogonal
    value = phi(w)
    for _ in range(max_iter):
        grad = m @ w - w**power
        hess = m + torch.diag(w ** (power - 1.0) / alpha)
        step = -torch.linalg.solve(hess, grad)
        decrement = -float(grad @ step)  # Newton decrement λ²: φ − min φ ≈ λ²/2 near the optimum
        shrinking = step < 0
        t = 1.0  # fraction to the boundary: stay in w > 0
        if bool(shrinking.any()):
            t = min(1.0, 0.99 * float((w[shrinking] / -step[shrinking]).min()))
        if decrement <= tol * max(abs(value), 1.0):
            return w + t * step if t == 1.0 else w  # converged: the last full step is exact
        while t > 1e-12:  # Armijo backtracking
            candidate = w + t * step
            new_value = phi(candidate)
            if new_value <= value - 1e-4 * t * decrement:
                break
            t *= 0.5
        else:
            return w  # no decrease representable in float64
        w, value = candidate, new_value
    return w


@register_stage("fairgrad")
class FairGradStage(GradientStage):
    """α-fair weights (``alpha`` > 0; 1 gives Nash-MTL's solution, larger is closer to max-min)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K³) Newton", "O(K·D)")

    heads_follow_coeffs = True

    def __init__(self, tasks: Sequence[str], alpha: float = 1.0) -> None:
        super().__init__(tasks)
        self.alpha = positive(self.name, "alpha", alpha)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        return fair_weights(gram, self.alpha)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"
