"""IMTL-G (Liu et al., ICLR 2021, "Towards Impartial Multi-task Learning", Sec. 3.2): the
aggregated gradient d = Σ_i α_i g_i (Σ α_i = 1) has equal projections on every unit task gradient
u_i = g_i/‖g_i‖. With D = [g_1 − g_t]_{t≥2} and U = [u_1 − u_t]_{t≥2} the closed form is
α_{2:K} = g_1 Uᵀ (D Uᵀ)⁻¹ and α_1 = 1 − Σ_{t≥2} α_t.

All products are entries of the Gram matrix M: g_1·(u_1 − u_t) = M_11/n_1 − M_1t/n_t and
(g_1 − g_s)·(u_1 − u_t) = M_11/n_1 − M_1t/n_t − M_s1/n_1 + M_st/n_t (n = ‖g‖).
A singular D Uᵀ (parallel gradients) falls back to the least-squares solution.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage


@register_stage("imtl_g")
class IMTLGStage(GradientStage):
    """Task-specific parameters get their plain ∂L_i/∂θ_i (IMTL-G acts on shared parameters)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K³) solve", "O(K·D)")

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        k = self.num_tasks
        if k == 1:
            return torch.ones(1, dtype=gram.dtype)
        n = gram.diagonal().clamp_min(1e-300).sqrt()
        gu = gram / n  # gu[s, t] = g_s · u_t
        g1_u = gu[0, 0] - gu[0, 1:]  # g_1 · (u_1 − u_t), t ≥ 2
        d_u = g1_u.unsqueeze(0) - (gu[1:, 0:1] - gu[1:, 1:])  # (g_1 − g_s) · (u_1 − u_t)
        rhs = g1_u.unsqueeze(1)
        solution, info = torch.linalg.solve_ex(d_u.T, rhs)
        if int(info) != 0 or not bool(torch.isfinite(solution).all()):
            solution = torch.linalg.lstsq(d_u.T, rhs).solution
        alpha = solution.reshape(-1)
        return torch.cat([(1.0 - alpha.sum()).reshape(1), alpha])
