"""log-CAGrad: CAGrad (Liu et al., NeurIPS 2021, Sec. 3.2; see :mod:`.cagrad`) applied to the
gradients of log L_i, as the ``log_cagrad`` method of the FAMO code (Liu et al., "FAMO: Fast
Adaptive Multitask Optimization", NeurIPS 2023; Cranial-XIX/FAMO ``methods/weight_methods.py``,
class ``LOG_CAGrad``).

With s_i = L_i + ε (ε = 0 as the reference, which takes ``losses[i].log()``), the log-loss gradients
are g̃_i = g_i / s_i with Gram matrix ``G̃ = G / (s sᵀ)``. CAGrad's dual on them (Sec. 3.2),

    w = argmin_{w ∈ simplex} g̃_wᵀ g̃_0 + √φ ‖g̃_w‖,   √φ = c ‖g̃_0‖,   g̃_0 = (1/K) Σ_i g̃_i,
    d̃ = (g̃_0 + (√φ / ‖g̃_w‖) g̃_w) / (1 + c²)                   (the reference's ``rescale=1``),

and the reference writes ``K · d̃`` into the shared parameters' gradients (its ``overwrite_grad``
multiplies by ``n_tasks`` "to match the sum loss"; the plain ``cagrad`` stage follows LibMTL and the
paper, without that factor). On the raw gradients the coefficients are therefore

    c_i = K · a_i / s_i,   d̃ = Σ_i a_i g̃_i,

and the task-specific parameters get ∂ log s_i/∂θ_i = (1/s_i) ∂L_i/∂θ_i (head weights 1/s_i): the
reference back-propagates every log L_i once to collect the task gradients, which is what the
heads keep. The reference clips the shared gradient to norm 1 afterwards (``max_norm``): that is
the trainer's gradient clipping here.

The dual is solved exactly (:func:`~.min_norm.solve_simplex`); the reference calls SciPy's SLSQP
from the uniform start and adds 1e-8 inside √(mean G̃), to √φ and to ‖g̃_w‖, so the two agree to the
solver's tolerance (see the tests). ``c`` defaults to the reference's 0.4 (``cagrad``: 0.5).

Diagnostics: ``weight`` c_i (the coefficients of the shared direction on g_i), ``log_weight`` w_i
(the dual's simplex weights, the reference's ``weights``; not recorded when c = 0 or g̃_w = 0).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .cagrad import CAGradStage
from .log_mgda import log_shift
from .registry import register_stage
from .support import StageProfile


@register_stage("log_cagrad")
class LogCAGradStage(CAGradStage):
    """CAGrad on ∇log(L_i + eps), times K as the reference; heads get ∇log(L_i + eps).
    Hyper-parameters: ``c`` (0.4), ``rescale`` (1), ``eps`` (0.0)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K²) dual", "O(K·D)")

    def __init__(self, tasks: Sequence[str], c: float = 0.4, rescale: int = 1, eps: float = 0.0) -> None:
        super().__init__(tasks, c=c, rescale=rescale)
        self.eps = positive(self.name, "eps", eps, allow_zero=True)
        self._inverse_scale: Tensor | None = None

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        s = log_shift(self.name, self.tasks, losses, self.eps)
        a = super().combine(gram / torch.outer(s, s), losses)
        # a·(1 + c²) = 1/K + (√φ/‖g̃_w‖) w: the dual weights w are the normalised excess over 1/K
        excess = a * self._divisor - 1.0 / self.num_tasks
        if float(excess.sum()) > 0:
            self.record("log_weight", excess / excess.sum())
        self._inverse_scale = 1.0 / s
        return self.num_tasks * a / s

    def head_weights(self, coeffs: Tensor) -> Tensor:
        """1/s_i: the heads get ∂ log s_i/∂θ_i (set by :meth:`combine` of the same step)."""
        return self._inverse_scale.to(coeffs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
