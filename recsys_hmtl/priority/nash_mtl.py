"""Nash-MTL (Navon et al., ICML 2022): the Nash bargaining solution d = Σ_i α_i g_i with
(G Gᵀ α)_i = 1/α_i, α > 0 (Sec. 3.2, Eq. 4), i.e. every task's utility g_iᵀd equals 1/α_i.

The reference code approximates α with 20 convex-concave iterations (cvxpy); here the system is
solved to round-off as the α = 1 case of FairGrad's α-fair allocation
(:func:`~.fairgrad.fair_weights`). The whole model is trained on Σ_i α_i L_i as in the reference;
its clipping of the shared gradient to norm 1 (``max_norm``) is the trainer's gradient clipping,
and its ``update_weights_every`` option is not offered (weights are computed every step).
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from .fairgrad import fair_weights
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage


@register_stage("nash_mtl")
class NashMTLStage(GradientStage):
    """Nash bargaining weights; the losses are scaled by them everywhere."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K³) Newton", "O(K·D)")

    heads_follow_coeffs = True

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        return fair_weights(gram, 1.0)
