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

import torch
from torch import Tensor

from .support import StageProfile
from .registry import register_stage
from .upgrad import UPGradStage


@register_stage("dualproj")
class DualProjStage(UPGradStage):
    """c = argmin_{v ≥ 1/K} vᵀ(G/tr G + reg_eps I)v; heads get ∂L_i/∂θ_i."""
    profile = StageProfile("gradients", "O(K²D) Gram + one active-set QP, O(n·K³)", "O(K·D)")

    def targets(self) -> Tensor:
        """One row: the mean, u = 1/K."""
        return torch.full((1, self.num_tasks), 1.0 / self.num_tasks, dtype=torch.float64)
