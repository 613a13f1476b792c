"""log-MGDA: MGDA (Sener & Koltun, NeurIPS 2018; Eq. 5 of seed 002, the min-norm point of the
convex hull) applied to the gradients of log L_i, as the ``log_mgda`` method of the FAMO code
(Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023; Cranial-XIX/FAMO
``methods/weight_methods.py``, class ``LOG_MGDA``), where the gradient methods are also run on the
log losses, whose gradients g_i / L_i are invariant to the losses' scales (FAMO balances the rates
of improvement of log L_i).

With s_i = L_i + ε (ε = 1e-8 as the reference), the log-loss gradients are g̃_i = ∇ log s_i = g_i / s_i,
so their Gram matrix is ``G̃ = G / (s sᵀ)`` and the min-norm weights are

    w = argmin_{w ∈ simplex} ‖Σ_i w_i g̃_i / n_i‖      (MGDA's Eq. 5 on g̃; n_i the ``normalize`` option)

The reference then back-propagates Σ_i w_i log s_i / C with C = Σ_i w_i / s_i (detached): the step is
the min-norm direction of the log gradients rescaled so that its coefficients on the raw gradients,

    c_i = w_i / (s_i C),      Σ_i c_i = 1,

sum to one (its ``sol * n_tasks`` rescaling of plain MGDA is commented out). The whole model is
trained on Σ_i c_i L_i (heads included), as the reference's objective.

As in the reference, ``normalize="loss"`` divides g̃_i by the raw loss L_i and ``"l2"`` by ‖g̃_i‖
(the reference's ``"norm"``; its ``"norm"``/``"loss+"`` code no longer runs on current torch). The
min-norm point is solved exactly (:mod:`.min_norm`); the reference's solver (Sener & Koltun's
``MinNormSolver``) clamps the two-task weight to [0.001, 0.999] and stops its projected-gradient
loop when the weights move less than 1e-5 (l1), so for three or more tasks it agrees only to
about 1e-5 unless the optimum lies on an edge of the simplex.

Diagnostics: ``weight`` c_i (the coefficients on g_i and L_i), ``log_weight`` w_i (the min-norm
weights of the g̃_i, the reference's ``weights``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .mgda import MGDAStage
from .registry import register_stage
from .support import StageProfile

LOG_EPS = 1e-8  # the reference's (loss + 1e-8).log()


def log_shift(stage: str, tasks: Sequence[str], losses: Tensor, eps: float) -> Tensor:
    """``s = L + eps`` (float64), refused unless every entry is > 0: log s must exist."""
    s = losses.to(torch.float64) + eps
    bad = ~(s > 0)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"stage '{stage}': task '{tasks[i]}' has loss {float(losses[i])}; the log-loss gradient "
            f"∇log(L + eps) needs L + eps > 0 (eps={eps})"
        )
    return s


@register_stage("log_mgda")
class LogMGDAStage(MGDAStage):
    """MGDA on ∇log(L_i + eps); coefficients rescaled to sum to 1; heads follow them.
    Hyper-parameters: ``normalize`` (``none``, as the reference), ``eps`` (1e-8)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K²) Frank-Wolfe", "O(K·D)")

    def __init__(self, tasks: Sequence[str], normalize: str = "none", eps: float = LOG_EPS) -> None:
        super().__init__(tasks, normalize=normalize)
        self.eps = positive(self.name, "eps", eps, allow_zero=True)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        s = log_shift(self.name, self.tasks, losses, self.eps)
        w = super().combine(gram / torch.outer(s, s), losses)
        self.record("log_weight", w)
        scaled = w / s
        return scaled / scaled.sum()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
