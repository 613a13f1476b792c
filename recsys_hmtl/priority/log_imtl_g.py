"""log-IMTL-G: IMTL-G (Liu et al., ICLR 2021, "Towards Impartial Multi-task Learning", Sec. 3.2;
see :mod:`.imtl_g`) applied to the gradients of log L_i, as the ``log_imtl`` method of the FAMO code
(Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023; Cranial-XIX/FAMO
``methods/weight_methods.py``, class ``LOG_IMTLG``).

With s_i = L_i + ε (ε = 1e-8, the reference's ``EPS``) the log-loss gradients are g̃_i = g_i / s_i
(Gram matrix ``G̃ = G / (s sᵀ)``), and IMTL-G's closed form on them (Sec. 3.2),

    α_{2:K} = g̃_1 Ũᵀ (D̃ Ũᵀ)⁻¹,  α_1 = 1 − Σ_{t≥2} α_t,
    D̃ = [g̃_1 − g̃_t]_{t≥2},  Ũ = [ũ_1 − ũ_t]_{t≥2},  ũ_i = g̃_i/‖g̃_i‖ = g_i/‖g_i‖,

gives d = Σ_i α_i g̃_i, whose projections on every unit gradient u_i are equal. The reference
back-propagates Σ_i α_i log s_i: no rescaling, and the whole model (heads included) follows

    c_i = α_i / s_i      (coefficients on g_i and on L_i).

Since u_i does not change when g_i is rescaled, d is the ``imtl_g`` direction up to a positive
factor (Σ_i α_i / s_i where ``imtl_g``'s coefficients sum to 1); the log transform changes its
length, and the head weights. A singular D̃Ũᵀ falls back to least squares (the reference inverts
D̃Ũᵀ + 1e-8·I there).

Diagnostics: ``weight`` c_i, ``log_weight`` α_i (the reference's ``weights``; they sum to 1 and
may be negative).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .imtl_g import IMTLGStage
from .log_mgda import LOG_EPS, log_shift
from .registry import register_stage
from .support import StageProfile


@register_stage("log_imtl_g")
class LogIMTLGStage(IMTLGStage):
    """IMTL-G on ∇log(L_i + eps); the losses are scaled by α_i / s_i everywhere.
    Hyper-parameter: ``eps`` (1e-8)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K³) solve", "O(K·D)")

    heads_follow_coeffs = True

    def __init__(self, tasks: Sequence[str], eps: float = LOG_EPS) -> None:
        super().__init__(tasks)
        self.eps = positive(self.name, "eps", eps, allow_zero=True)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        s = log_shift(self.name, self.tasks, losses, self.eps)
        alpha = super().combine(gram / torch.outer(s, s), losses)
        self.record("log_weight", alpha)
        return alpha / s

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
