"""CAGrad (Liu et al., NeurIPS 2021): conflict-averse gradient descent.

max_d min_i ⟨g_i, d⟩ s.t. ‖d − g_0‖ ≤ c ‖g_0‖ (g_0 the average gradient) is solved through its
dual (Sec. 3.2): w = argmin_{w ∈ simplex} g_wᵀg_0 + √φ ‖g_w‖ with √φ = c ‖g_0‖, and
d = g_0 + (√φ / ‖g_w‖) g_w, optionally rescaled by 1/(1 + c²) (``rescale=1``, the authors'
default) or 1/(1 + c) (``rescale=2``); ``rescale=0`` leaves d as is.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .min_norm import solve_simplex
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage

RESCALES = {0: lambda c: 1.0, 1: lambda c: 1.0 + c * c, 2: lambda c: 1.0 + c}


@register_stage("cagrad")
class CAGradStage(GradientStage):
    """Task-specific parameters get their plain ∂L_i/∂θ_i, as in the reference implementations."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K²) dual", "O(K·D)")

    def __init__(self, tasks: Sequence[str], c: float = 0.5, rescale: int = 1) -> None:
        super().__init__(tasks)
        self.c = positive(self.name, "c", c, allow_zero=True)
        if rescale not in RESCALES or isinstance(rescale, bool):
            raise ValueError(f"stage '{self.name}': rescale must be 0, 1 or 2, got {rescale!r}")
        self.rescale = int(rescale)
        self._divisor = RESCALES[self.rescale](self.c)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        k = self.num_tasks
        mean = torch.full((k,), 1.0 / k, dtype=gram.dtype)
        g0_norm = float(mean @ gram @ mean) ** 0.5
        radius = self.c * g0_norm  # √φ
        w = solve_simplex(gram, gram @ mean, radius)
        gw_sq = float(w @ gram @ w)
        coeffs = mean + (radius / gw_sq**0.5) * w if gw_sq > 0 else mean
        return coeffs / self._divisor

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, c={self.c}, rescale={self.rescale}"
