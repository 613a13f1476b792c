"""DualProj (TorchJD ``torchjd.aggregation.DualProj``; Quinton & Rey 2024, "Jacobian Descent for
Multi-Objective Optimization", where it is one of the aggregators compared with UPGrad): the mean
gradient projected onto the dual cone of the task gradients, ``d = π_J(Jᵀu)`` with ``u = 1/K``
(π_J of Eq. 3; the solution of Eq. 11 of Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory").

By Proposition 1 of the JD paper, ``π_J(Jᵀu) = Jᵀv`` with ``v = argmin_{v ≥ u} vᵀ G v``, so
``d = Σ_i v_i g_i``: one K x K QP on the Gram matrix (:func:`~.upgrad.dual_cone_weights`). The
projection makes d non-conflicting, ``⟨g_i, d⟩ ≥ 0`` for every i, and it equals the mean when the
mean conflicts with no task.

``norm_eps`` / ``reg_eps`` as TorchJD's default ``QuadprogProjector`` (see :mod:`.upgrad`: the QP
is solved on ``G / tr(G) + reg_eps · I``, which relaxes the non-conflict to
``⟨g_i, d⟩ ≥ −reg_eps · tr(G) · v_i``; ``reg_eps = 0`` is the exact projection). Task-specific
parameters get their plain ∂L_i/∂θ_i, as with TorchJD's ``mtl_backward``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage
from .upgrad import dual_cone_weights, regularized_gram


@register_stage("dualproj")
class DualProjStage(GradientStage):
    """c = argmin_{v ≥ 1/K} vᵀ(G/tr G + reg_eps I)v; heads get ∂L_i/∂θ_i."""
    profile = StageProfile("gradients", "O(K²D) Gram + one active-set QP, O(n·K³)", "O(K·D)")

    def __init__(self, tasks: Sequence[str], norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> None:
        super().__init__(tasks)
        self.norm_eps = positive(self.name, "norm_eps", norm_eps, allow_zero=True)
        self.reg_eps = positive(self.name, "reg_eps", reg_eps, allow_zero=True)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        q, small = regularized_gram(gram, self.norm_eps, self.reg_eps)
        self._diagnostics["guard"] = float(small)
        k = self.num_tasks
        return dual_cone_weights(q, torch.full((k,), 1.0 / k, dtype=torch.float64))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, norm_eps={self.norm_eps}, reg_eps={self.reg_eps}"
